"""Credentials in stream URLs never reach logs: URL and free-text redaction, and the logging filter."""

from __future__ import annotations

import io
import json
import logging

from core.logs import setup_logging
from core.redact import redact_text, redact_url


def test_redact_url_masks_userinfo_and_secret_params() -> None:
    url = "rtsp://admin:Pa55w0rd@10.0.0.7:554/Streaming/101?token=abc123&channel=2"
    out = redact_url(url)
    assert "Pa55w0rd" not in out and "admin" not in out and "abc123" not in out
    assert out.startswith("rtsp://***@10.0.0.7:554/Streaming/101")
    assert "channel=2" in out


def test_redact_url_leaves_clean_urls_alone() -> None:
    assert redact_url("rtsp://10.0.0.7/stream1") == "rtsp://10.0.0.7/stream1"


def test_redact_text_inside_error_messages() -> None:
    msg = "Connection to rtsp://u:secret%40x@cam.local/live failed; retry http://a:b@h/?password=zz"
    out = redact_text(msg)
    for leaked in ("secret", "u:", "a:b", "zz"):
        assert leaked not in out
    assert "rtsp://***@cam.local/live" in out


def test_logging_filter_redacts_message_args_extras_and_tracebacks() -> None:
    buf = io.StringIO()
    setup_logging("info", stream=buf)
    log = logging.getLogger("kuzet.test")
    log.info("opening %s", "rtsp://op:hunter2@cam/1", extra={"url": "rtsp://op:hunter2@cam/1"})
    try:
        raise ConnectionError("cannot open rtsp://op:hunter2@cam/1")
    except ConnectionError:
        log.exception("camera failed")
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(lines) == 2
    assert "hunter2" not in buf.getvalue()
    assert lines[0]["msg"] == "opening rtsp://***@cam/1" and lines[0]["url"] == "rtsp://***@cam/1"
    assert "ConnectionError" in lines[1]["exc"]
