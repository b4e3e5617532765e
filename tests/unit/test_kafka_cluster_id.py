"""The test broker's cluster id never starts with "-", which kafka-storage's argument parser takes for an option."""

from __future__ import annotations

import uuid

import pytest

from deploy.services import kafka


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])  # 0xf8...: "-A..." in base64
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))  # deploy.services.kafka calls uuid.uuid4()
    assert kafka.new_cluster_id() == "AQEBAQEBAQEBAQEBAQEBAQ"  # the second draw
