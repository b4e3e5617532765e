"""Reading one YAML file with a clear error: the config, the model manifest and the plate formats all do it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """The document in ``path``; an unreadable file or invalid YAML raises ``error`` naming ``what`` and the path.

    Why the caller picks the exception: each reader already has the error its own callers catch
    (ConfigError, ManifestError, ValueError), and a traceback from PyYAML tells an operator nothing.
    """
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
