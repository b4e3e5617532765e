"""Analytics incidents in the console (Chromium): a line crossing, a crowd and a speeding vehicle arrive over
Kafka; their cards show direction, count, plate and speed, and the detail page shows the section figures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.config import KafkaConfig
from dispatch.testing import make_incident, record_of
from event_bus.analytics_events import AnalyticsDetails, CrowdDetails, LineCrossingDetails, TrafficDetails
from event_bus.kafka_publisher import KafkaPublisher
from tests.browser.conftest import Console

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_feed_and_detail_show_direction_count_plate_and_speed(
    browser: Any, kafka_console: Console, kafka_bootstrap: str
) -> None:
    now = datetime.now(UTC)
    entered = now - timedelta(seconds=2)
    kinds = {
        "line_crossing": AnalyticsDetails(
            line_crossing=LineCrossingDetails(line="gate", direction="in", label="person", count=7)
        ),
        "crowding": AnalyticsDetails(crowd=CrowdDetails(count=14, peak=17, limit=12)),
        "speeding": AnalyticsDetails(
            traffic=TrafficDetails(
                plate="123ABC02", plate_confidence=0.93, section="km-12", speed_kmh=88.2, limit_kmh=60.0,
                distance_m=24.5, entered_at=entered, exited_at=entered + timedelta(seconds=24.5 / (88.2 / 3.6)),
            )
        ),
    }  # fmt: skip
    ids: dict[str, str] = {}
    records = []
    for kind, details in kinds.items():
        new_id = uuid.uuid4()
        ids[kind] = str(new_id)
        inc = make_incident(incident_id=new_id, camera_id="cam-an-1", type=kind, started_at=now)
        inc = inc.model_copy(update={"analytics": details})
        records.append(record_of(inc))
    pub = KafkaPublisher(KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id="console-analytics-test"))
    try:
        assert all(err is None for err in pub.publish(records))
    finally:
        pub.close()

    page = kafka_console.login(browser, "dispatcher")
    page.goto(f"{kafka_console.url}/feed")
    for iid in ids.values():
        page.wait_for_selector(f'article.card[data-id="{iid}"] [data-testid="card-facts"]', timeout=15_000)

    def facts(kind: str) -> str:
        sel = f'article.card[data-id="{ids[kind]}"] [data-testid="card-facts"]'
        return str(page.locator(sel).text_content())

    assert "in over gate" in facts("line_crossing") and "#7" in facts("line_crossing")
    assert "14 people" in facts("crowding") and "peak 17" in facts("crowding")
    assert "plate 123ABC02 (93 %)" in facts("speeding") and "88.2 km/h (limit 60" in facts("speeding")

    page.goto(f"{kafka_console.url}/incidents/{ids['speeding']}")
    assert "123ABC02" in str(page.locator('[data-testid="detail-plate"]').text_content())
    speed = str(page.locator('[data-testid="detail-speed"]').text_content())
    assert "88.2 km/h" in speed and "24.5 m" in speed and "km-12" in speed
    page.goto(f"{kafka_console.url}/incidents/{ids['line_crossing']}")
    assert "in over gate" in str(page.locator('[data-testid="detail-crossing"]').text_content())
    page.context.close()
