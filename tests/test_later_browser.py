"""In Chromium, a heavy part of a view fills in by itself (issue 27, app_pages/ui/later.py): Units
opens with a placeholder where the verdict panel goes ("Scoring units against controls…", its
place in the queue), the page's polling fragment asks again every second, and the verdict appears
without any action of the user; then the page stops polling (no more fragment reruns are sent).

Its own server (no warm-up, nothing computed yet), so the first visit cannot find the verdict made
by another test."""

from __future__ import annotations

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg

from .conftest import StreamlitServer, wait_for_app

TIMEOUT = 180_000


@pytest.fixture(scope="module")
def fresh_server():
    server = StreamlitServer()
    yield server
    server.stop()


def _fragment_reruns(sent: list[bytes]) -> int:
    """Rerun requests of a fragment (the polling) among the websocket messages the page sent."""
    count = 0
    for data in sent:
        try:
            msg = BackMsg.FromString(data)
        except Exception:  # noqa: BLE001 — not a BackMsg (e.g. a text frame)
            continue
        if msg.WhichOneof("type") == "rerun_script" and msg.rerun_script.fragment_id:
            count += 1
    return count


def test_units_verdict_fills_in_by_itself_and_polling_stops(fresh_server, page):
    sent: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda data: sent.append(
        data if isinstance(data, bytes) else b"")))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{fresh_server.url}/units?ckpt=timemachine-rnn&units.feat=vowel", timeout=TIMEOUT)
    waiting = page.get_by_text("Scoring units against controls", exact=False)
    waiting.first.wait_for(state="visible", timeout=TIMEOUT)          # the page is there, the verdict not yet
    assert "queue" in waiting.first.inner_text() or "running" in waiting.first.inner_text()
    page.get_by_text("Unit finder: ranked by correlation").wait_for(state="visible", timeout=TIMEOUT)
    verdict = page.get_by_text("at chance level", exact=False)
    verdict.first.wait_for(state="visible", timeout=TIMEOUT)          # no click, no key: it came by itself
    waiting.first.wait_for(state="detached", timeout=TIMEOUT)
    wait_for_app(page, TIMEOUT)
    assert _fragment_reruns(sent) >= 1                                # it was the polling that brought it
    polls = _fragment_reruns(sent)
    page.wait_for_timeout(3_000)      # a negative check: three poll intervals with nothing pending
    assert _fragment_reruns(sent) == polls, "the page kept polling after the verdict was drawn"
    assert not errors
