"""Check evidence against its chain-of-custody manifests: one camera-day in the store, or an exported bundle.

What a camera-day check proves, and how:

* every artifact (clip, snapshot) under ``<camera>/<yyyy>/<mm>/<dd>/`` has a
  manifest, and its bytes have the manifest's sha256 and size;
* every manifest's ``previous`` link resolves to a manifest whose bytes hash
  to the recorded value, so neither a manifest nor (through it) its artifact
  was removed or changed after the fact;
* the day's last manifest has a successor (a later day's manifest links to
  it) or is the camera's chain head, so deleting the *newest* evidence of the
  day shows too.

A link to a day older than ``expired_before`` is reported as expired by
retention, not as tampering. The bundle check recomputes every file's
sha256 against the manifests shipped in the zip and the clip reference of the
incident's events.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from storage.clips import MANIFEST_SUFFIX
from storage.manifests import FORMAT, ManifestChain, is_manifest
from storage.snapshots import SnapshotStore

_DATE_IN_KEY = re.compile(r"^[^/]+/(\d{4})/(\d{2})/(\d{2})/")


@dataclass
class VerifyReport:
    """Outcome of a check; ``ok`` when there is no error (warnings are informational)."""

    scope: str
    artifacts: int = 0
    manifests: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "ok": self.ok,
            "artifacts": self.artifacts,
            "manifests": self.manifests,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def day_prefix(camera_id: str, day: date) -> str:
    return f"{camera_id}/{day:%Y}/{day:%m}/{day:%d}/"


def key_day(key: str) -> date | None:
    m = _DATE_IN_KEY.match(key)
    return date(int(m[1]), int(m[2]), int(m[3])) if m else None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_camera_day(
    store: SnapshotStore,
    camera_id: str,
    day: date,
    *,
    incident_id: str | None = None,
    expired_before: date | None = None,
    look_ahead_days: int = 31,
) -> VerifyReport:
    """Verify one camera-day (optionally only the artifacts of one incident, with the whole day's chain)."""
    scope = f"camera {camera_id} on {day:%Y-%m-%d}" + (f", incident {incident_id}" if incident_id else "")
    report = VerifyReport(scope)
    keys = store.list_keys(day_prefix(camera_id, day))
    manifest_keys = [k for k in keys if is_manifest(k)]
    artifacts = {k for k in keys if not is_manifest(k)}
    raw: dict[str, bytes] = {}
    docs: dict[str, dict[str, Any]] = {}
    for mkey in manifest_keys:
        data = store.read_object(mkey)
        if data is None:
            report.errors.append(f"{mkey}: listed but unreadable")
            continue
        try:
            doc = json.loads(data)
        except ValueError:
            report.errors.append(f"{mkey}: not JSON")
            continue
        if doc.get("format") != FORMAT:
            report.errors.append(f"{mkey}: unknown manifest format {doc.get('format')!r}")
            continue
        raw[mkey], docs[mkey] = data, doc
    selected = {k: d for k, d in docs.items() if incident_id is None or d.get("incident_id") == incident_id}
    if incident_id is not None and not selected:
        report.errors.append(f"no manifest of incident {incident_id} in {day_prefix(camera_id, day)}")
    for mkey, doc in selected.items():
        _check_artifact(store, mkey, doc, report)
    if incident_id is None:
        described = {k.removesuffix(MANIFEST_SUFFIX) for k in docs}
        for orphan in sorted(artifacts - described):
            report.errors.append(f"{orphan}: stored without a manifest")
    _check_links(store, docs, raw, report, expired_before)
    _check_tail(store, camera_id, day, docs, report, look_ahead_days)
    return report


def _check_artifact(store: SnapshotStore, mkey: str, doc: dict[str, Any], report: VerifyReport) -> None:
    report.manifests += 1
    art = doc.get("artifact") or {}
    key = str(art.get("key", ""))
    if key != mkey.removesuffix(MANIFEST_SUFFIX):
        report.errors.append(f"{mkey}: describes {key!r}, not the object beside it")
        return
    data = store.read_object(key)
    if data is None:
        report.errors.append(f"{key}: missing (its manifest is there: the artifact was deleted)")
        return
    report.artifacts += 1
    if len(data) != art.get("size") or _sha(data) != art.get("sha256"):
        report.errors.append(f"{key}: bytes differ from the manifest (sha256 or size)")
    if art.get("status") == "incomplete":
        report.warnings.append(f"{key}: recorded incomplete (see the incident's clip reference for why)")


def _check_links(
    store: SnapshotStore,
    docs: dict[str, dict[str, Any]],
    raw: dict[str, bytes],
    report: VerifyReport,
    expired_before: date | None,
) -> None:
    for mkey, doc in docs.items():
        prev = doc.get("previous")
        if not prev:
            report.warnings.append(f"{mkey}: starts the camera's chain")
            continue
        pkey, psha = str(prev.get("key", "")), prev.get("sha256")
        data = raw.get(pkey)
        if data is None:
            data = store.read_object(pkey)
        if data is None:
            pday = key_day(pkey)
            if expired_before is not None and pday is not None and pday < expired_before:
                report.warnings.append(f"{mkey}: previous manifest {pkey} expired by retention")
            else:
                report.errors.append(f"{mkey}: previous manifest {pkey} is missing (evidence deleted)")
        elif _sha(data) != psha:
            report.errors.append(f"{mkey}: previous manifest {pkey} was changed (sha256 differs)")


def _check_tail(
    store: SnapshotStore,
    camera_id: str,
    day: date,
    docs: dict[str, dict[str, Any]],
    report: VerifyReport,
    look_ahead_days: int,
) -> None:
    """The day's newest manifest must be the chain head or the previous of a later day's manifest."""
    linked = {str((d.get("previous") or {}).get("key")) for d in docs.values()}
    tails = sorted(k for k in docs if k not in linked)
    if not tails:
        return
    if len(tails) > 1:
        report.errors.append(f"chain of {camera_id} splits on {day:%Y-%m-%d} at {', '.join(tails)}")
    tail = tails[-1] if len(tails) == 1 else None
    if tail is None:
        return
    head = ManifestChain(store).head(camera_id)
    if head is not None and head.get("key") == tail:
        return
    for ahead in range(1, look_ahead_days + 1):
        later = store.list_keys(day_prefix(camera_id, day + timedelta(days=ahead)))
        for mkey in (k for k in later if is_manifest(k)):
            data = store.read_object(mkey)
            if data and (json.loads(data).get("previous") or {}).get("key") == tail:
                return
        if any(is_manifest(k) for k in later):
            break  # the next day with evidence does not link back: something between was removed
    report.errors.append(f"{tail}: newest manifest of the day has no successor and is not the chain head")


def verify_bundle(path: Path) -> VerifyReport:
    """Verify an evidence bundle (zip) exported by the console: every file against its manifest."""
    report = VerifyReport(f"bundle {path.name}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.errors.append(f"not a readable zip: {exc}")
        return report
    with zf:
        names = set(zf.namelist())
        manifests = sorted(n for n in names if n.startswith("manifests/") and n.endswith(MANIFEST_SUFFIX))
        if not manifests:
            report.errors.append("the bundle holds no manifest")
        by_key: dict[str, dict[str, Any]] = {}
        derived = json.loads(zf.read("derived.json")) if "derived.json" in names else []
        masked_sources = {str(d.get("source_key")) for d in derived}
        for name in manifests:
            doc = json.loads(zf.read(name))
            report.manifests += 1
            art = doc.get("artifact") or {}
            by_key[str(art.get("key"))] = doc
            member = _member_for(names, str(art.get("key", "")))
            if member is None:
                if str(art.get("key")) in masked_sources:
                    report.warnings.append(f"{art.get('key')}: shipped as a masked copy (see derived.json)")
                else:
                    report.errors.append(f"{name}: its artifact {art.get('key')} is not in the bundle")
                continue
            report.artifacts += 1
            data = zf.read(member)
            if _sha(data) != art.get("sha256") or len(data) != art.get("size"):
                report.errors.append(f"{member}: bytes differ from its manifest")
        for d in derived:
            member = str(d.get("file", ""))
            if member not in names:
                report.errors.append(f"derived file {member} is missing")
            elif _sha(zf.read(member)) != d.get("sha256"):
                report.errors.append(f"derived file {member}: bytes differ from derived.json")
            elif str(d.get("source_key")) not in by_key:
                report.errors.append(f"derived file {member}: its source has no manifest in the bundle")
            else:
                report.artifacts += 1
        if "events.json" in names:
            for event in json.loads(zf.read("events.json")):
                clip = event.get("clip")
                if clip and clip.get("key") in by_key and by_key[clip["key"]]["artifact"]["sha256"] != clip["sha256"]:
                    report.errors.append(f"event {event.get('event_id')}: clip sha256 differs from its manifest")
        else:
            report.errors.append("events.json is missing")
    return report


def _member_for(names: set[str], key: str) -> str | None:
    base = key.rsplit("/", 1)[-1]
    for folder in ("clips/", "snapshots/"):
        if folder + base in names:
            return folder + base
    return None
