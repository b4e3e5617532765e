"""Property test: no generated credential in a URL survives any output path (#10.12).

Credentials are drawn from the letters ``QXJKWVY`` joined by the characters that broke redaction before
(``@ / # ?``, a space, ``:``, ``%``, ``&``, ``=``); nothing else in the generated URLs uses those capital
letters, so *any* of them in an output is a leaked piece of a secret. The paths: the logging filter
(message, extras, traceback), a camera-status reason scrubbed at the source and shown by the console's
API model, a dead letter (value and headers), the relay's last error (exported in health and metrics),
and the exception messages of the Kafka publisher and the camera registry.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import CameraConfig
from core.logs import setup_logging
from core.redact import redact_text, redact_url
from event_bus import topics
from event_bus.consume import dead_letter
from event_bus.interfaces import DeliveryError, InRecord, OutRecord
from event_bus.relay import Relay
from event_bus.spool import Spool

SECRET_LETTERS = "QXJKWVY"
_piece = st.text(alphabet=SECRET_LETTERS, min_size=1, max_size=6)
_sep = st.sampled_from(["@", "/", "#", "?", " ", ":", "%", "&", "=", "@@", "/#?"])


@st.composite
def secrets_(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(_piece, min_size=1, max_size=5))
    seps = draw(st.lists(_sep, min_size=len(pieces) - 1, max_size=len(pieces) - 1))
    out = pieces[0]
    for sep, piece in zip(seps, pieces[1:], strict=True):
        out += sep + piece
    return out


PARAMS = ["apikey", "api_key", "token", "sig", "access_token", "x-amz-signature", "password", "client-secret"]


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, str]:
    """A URL with inline credentials and a secret query parameter; returns (url, password)."""
    user = draw(_piece)
    password = draw(secrets_())
    token = draw(_piece)
    param = draw(st.sampled_from(PARAMS))
    scheme = draw(st.sampled_from(["rtsp", "rtsps", "http", "https"]))
    host = draw(st.sampled_from(["cam-gate.example", "10.0.0.7", "[fd00::1]"]))
    url = f"{scheme}://{user}:{password}@{host}:554/live/ch1?{param}={token}&channel=2"
    return url, password


def _leaks(text: str) -> bool:
    return any(c in text for c in SECRET_LETTERS)


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(case=urls())
def test_redact_url_and_text(case: tuple[str, str]) -> None:
    url, _ = case
    assert not _leaks(redact_url(url)), redact_url(url)
    assert not _leaks(redact_text(f"camera failed: cannot open {url} (timeout)")), url
    assert not _leaks(redact_text(json.dumps({"url": url})))


@FAST
@given(case=urls())
def test_logs(case: tuple[str, str]) -> None:
    url, _ = case
    buf = io.StringIO()
    setup_logging("info", stream=buf)
    log = logging.getLogger("kuzet.test.property")
    log.warning("opening %s", url, extra={"url": url})
    try:
        raise ConnectionError(f"cannot open {url}")
    except ConnectionError:
        log.exception("camera failed")
    assert not _leaks(buf.getvalue()), buf.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=urls())
def test_camera_status_reason_and_console_api(case: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.bus_ingest import camera_health
    from event_bus.events import CameraStatus
    from ingest.source import build_stream_url

    url, password = case
    monkeypatch.setenv("KUZET_CAM_PROPERTY", f"operator:{password}")
    base = url.rsplit("@", 1)[1].split("?", 1)[0]
    cam = CameraConfig(id="cam-1", url=f"rtsp://{base}", credentials="env:KUZET_CAM_PROPERTY")
    full, scrub = build_stream_url(cam)
    reason = scrub(f"Server returned 401 Unauthorized for {full}; raw secret operator:{password}")
    status = CameraStatus(
        camera_id="cam-1",
        state="down",
        reason=reason[:512],
        input_fps=0.0,
        analysed_fps=0.0,
        reconnects=1,
        worker_id="w1",
        at=datetime.now(UTC),
    )
    assert not _leaks(status.model_dump_json()), reason
    assert not _leaks(json.dumps(asdict(camera_health(status))))


@FAST
@given(case=urls())
def test_dead_letter(case: tuple[str, str]) -> None:
    url, _ = case
    value = json.dumps({"camera": {"url": url}}).encode()
    rec = InRecord(topics.CAMERAS, 0, 1, "cam-1", value, 0)
    dl = dead_letter(rec, f"camera cam-1: bad url {url}")
    assert not _leaks(dl.value.decode("utf-8", errors="replace"))
    assert not any(_leaks(v.decode("utf-8", errors="replace")) for _, v in dl.headers)


class _Failing:
    def __init__(self, message: str) -> None:
        self.message = message

    def publish(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        return [DeliveryError(self.message)] * len(records)

    def close(self) -> None:
        pass


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=urls())
def test_relay_last_error_metrics_and_health(case: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    url, _ = case
    spool = Spool(tmp_path_factory.mktemp("spool") / "s.sqlite3", durability="normal")
    try:
        spool.append(OutRecord(topics.INCIDENTS, "cam-1", b"{}"))
        relay = Relay(spool, _Failing(f"broker said no to {url}"))
        relay.step()
        assert relay.stats().last_error and not _leaks(relay.stats().last_error or "")
    finally:
        spool.close()


@FAST
@given(case=urls())
def test_exception_messages(case: tuple[str, str]) -> None:
    from event_bus.kafka_publisher import _err
    from worker.registry import InvalidCameraRecord, validate_camera

    url, _ = case
    assert not _leaks(str(_err("send failed", ConnectionError(f"to {url}"))))
    with pytest.raises(InvalidCameraRecord) as err:
        validate_camera({"id": "cam-1", "url": url})
    assert not _leaks(str(err.value))
