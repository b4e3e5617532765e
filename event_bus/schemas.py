"""JSON Schemas of the event types: exported from the pydantic models, committed, and used to validate.

The committed files under ``event_bus/schemas/`` are the published contract
for consumers written in any language; the models are the source of truth for
producers. :func:`check` (and a unit test) fails when the two drift, so a
model change cannot ship without its schema file changing in the same commit.
Files of older versions that consumers still read (:mod:`event_bus.versions`)
are frozen: no model generates them any more, they stay as published, and the
check only requires that they are there.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from event_bus.events import EVENT_TYPES, Event
from event_bus.versions import readable_versions

SCHEMA_DIR = Path(__file__).with_name("schemas")
_ID_BASE = "urn:kuzet:schema"


class SchemaValidationError(ValueError):
    """A document does not match its event's published JSON Schema (the message names the failing field)."""


def version_of(model: type[Event]) -> int:
    """The ``schema_version`` a model declares (its default; each model pins it with a Literal)."""
    field = model.model_fields.get("schema_version")
    if field is None or not isinstance(field.default, int):
        raise TypeError(f"{model.__name__} has no integer schema_version default")
    return field.default


def file_name(name: str, version: int) -> str:
    return f"{name}.v{version}.json"


def build(name: str) -> dict[str, Any]:
    """The JSON Schema of one event type as generated from its model now."""
    model = EVENT_TYPES[name]
    version = version_of(model)
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_ID_BASE}:{name}:v{version}",
        **schema,
    }


def render(schema: dict[str, Any]) -> str:
    """Stable text form (sorted keys, trailing newline) so diffs of committed files are meaningful."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every event type's current schema file (and copy the frozen older ones); returns the paths written.

    The older files are copied when exporting elsewhere so that the exported
    set is the whole contract: a consumer built from it can read every
    version still in circulation.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in EVENT_TYPES.items():
        path = directory / file_name(name, version_of(model))
        path.write_text(render(build(name)), encoding="utf-8")
        written.append(path)
        for old in readable_versions(name):
            target = directory / file_name(name, old)
            if target.resolve() != (SCHEMA_DIR / file_name(name, old)).resolve():
                target.write_text((SCHEMA_DIR / file_name(name, old)).read_text(encoding="utf-8"), encoding="utf-8")
                written.append(target)
    return written


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """Problems between the committed schema files and the models; empty when they agree."""
    problems = []
    for name, model in EVENT_TYPES.items():
        path = directory / file_name(name, version_of(model))
        if not path.exists():
            problems.append(f"{path}: missing (run `kuzet schemas export`)")
        elif path.read_text(encoding="utf-8") != render(build(name)):
            problems.append(f"{path}: differs from the {model.__name__} model (run `kuzet schemas export`)")
        for old in readable_versions(name):
            if not (directory / file_name(name, old)).exists():
                problems.append(f"{directory / file_name(name, old)}: missing (v{old} is still read; restore it)")
    return problems


@cache
def load(name: str, version: int | None = None) -> dict[str, Any]:
    """The committed (published) schema of an event type; the latest version when none is given."""
    if name not in EVENT_TYPES:
        raise KeyError(f"unknown event type {name!r}; known: {sorted(EVENT_TYPES)}")
    if version is None:
        version = version_of(EVENT_TYPES[name])
    path = SCHEMA_DIR / file_name(name, version)
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@cache
def _validator(name: str, version: int | None) -> Draft202012Validator:
    schema = load(name, version)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(name: str, doc: Any, version: int | None = None) -> None:
    """Raise :class:`SchemaValidationError` unless ``doc`` (parsed JSON) matches the published schema."""
    error = best_match(_validator(name, version).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(document)"
        raise SchemaValidationError(f"{name} v{version or 'latest'}: {where}: {error.message[:300]}")
