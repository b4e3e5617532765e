"""A folded feed card's "Acknowledge all N" in Chromium: one click acknowledges every alert of the card.

Four alerts of one camera, type and zone start within the feed's fold window, so the feed shows one
card "+3" whose button says "Acknowledge all 4" (dispatch/static/feed.js). A colleague acknowledged
one of them already. The click goes through ``POST /api/feed/cards/actions``: the three still new
are acknowledged by this dispatcher, each in its own history, the colleague's stays his, and an alert
of another camera (its own card) is untouched. A second dispatcher's open feed follows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.bus_ingest import detection_update
from dispatch.testing import make_incident
from storage.incident_rules import Action
from tests.browser.conftest import make_console

pytestmark = [pytest.mark.slow]

CARD = 'article.card[data-id="{}"]'
STATUS = "([sel, want]) => document.querySelector(sel)?.textContent.trim() === want"


def test_acknowledge_all_on_a_folded_card_acknowledges_every_alert(browser: Any, tmp_path: Path) -> None:
    console = make_console(tmp_path, consume=False, feed_group_window_s=300.0)
    store = console.store
    now = datetime.now(UTC).replace(microsecond=0)
    folded = [uuid.uuid4() for _ in range(4)]
    other = uuid.uuid4()
    events = [
        make_incident(incident_id=iid, camera_id="gate-1", started_at=now - timedelta(seconds=40 - 10 * k))
        for k, iid in enumerate(folded)
    ]
    events.append(make_incident(incident_id=other, camera_id="yard-2", started_at=now))
    store.ingest([detection_update(e) for e in events])
    colleague = store.user("dispatcher2")
    assert colleague is not None
    store.act(str(folded[1]), Action.ACKNOWLEDGE, colleague)
    newest = str(folded[-1])
    try:
        page = console.login(browser, "dispatcher")
        watcher = console.login(browser, "dispatcher", user="dispatcher2")
        for p in (page, watcher):
            p.goto(f"{console.url}/feed")
            p.wait_for_selector('#conn[data-state="live"]')
            p.wait_for_selector(f'{CARD.format(newest)} [data-testid="card-fold"]')
        card = page.locator(CARD.format(newest))
        assert card.locator('[data-testid="card-fold"]').inner_text() == "+3"
        assert page.locator("article.card").count() == 2  # the four folded into one, and yard-2's own
        button = card.locator('button[data-action="acknowledge"]')
        assert button.inner_text() == "Acknowledge all 4"

        with page.expect_response(lambda r: r.url.endswith("/api/feed/cards/actions")) as answer:
            button.click()
        body = answer.value.json()
        assert answer.value.status == 200
        assert sorted(d["incident_id"] for d in body["incidents"]) == sorted(str(i) for i in folded if i != folded[1])
        assert [s["incident_id"] for s in body["skipped"]] == [str(folded[1])]  # the colleague was first

        sel = f'{CARD.format(newest)} [data-testid="card-status"]'
        for p in (page, watcher):
            p.wait_for_function(STATUS, arg=[sel, "acknowledged"], timeout=10_000)
        assert card.locator('button[data-action="resolve"]').inner_text() == "Resolve all 4"
        assert str(page.locator(f'{CARD.format(other)} [data-testid="card-status"]').text_content()).strip() == "new"
        by = {str(i): store.get(str(i)) for i in [*folded, other]}
        assert {k: (r.status.value, r.acknowledged_by) for k, r in by.items() if r is not None} == {
            **{str(i): ("acknowledged", "dispatcher") for i in folded},
            str(folded[1]): ("acknowledged", "dispatcher2"),
            str(other): ("new", None),
        }
        page.context.close()
        watcher.context.close()
    finally:
        console.served.stop()
        console.store.close()
