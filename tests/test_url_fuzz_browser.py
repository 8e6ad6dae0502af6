"""Hostile links in a real browser (issue 15, the short pass beside tests/test_url_fuzz.py): every
view opened in Chromium from a link whose every key (found from app_pages/ui/params.py) holds a bad
value: the page finishes, shows no exception element and no browser error, names what it ignored,
and a normal link opened right after on the same server still works (the server kept serving)."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest

import rnnviz
from app_pages.ui.params import VIEWS
from tools.page_js import RUN_OVER_JS

from .conftest import StreamlitServer, tiny_model
from .test_url_fuzz import BAD, STRUCTURE, TEXT, url_keys

#: The view of each URL-key prefix (app_pages/ui/params.py).
BY_PREFIX = {v.prefix: v for v in VIEWS if v.prefix}
#: Bad values for a real URL: 100 kB strings are left to the AppTest tier (Streamlit drops a
#: query string over its limit whole, which that tier checks), the rest are all tried.
KINDS = [k for k in BAD if k != "long"]
PAGE_S = 60          # generous: the suite may share the 2 cores with other work


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_browser_ckpts")
    for name, cell, layers in (("timemachine-lstm", "lstm", 2), ("timemachine-rnn", "rnn_tanh", 1)):
        rnnviz.save_checkpoint(tiny_model(cell, layers, 12, text=TEXT), d / f"{name}.safetensors",
                               {"corpus": "not-here"})
    srv = StreamlitServer(env={"RNNVIZ_CHECKPOINT_DIR": str(d), "RNNVIZ_CORPORA": str(d)})
    yield srv
    srv.stop()


def hostile_query(prefix: str, shift: int) -> list[tuple[str, str]]:
    """Every key of the view with a bad value (kinds spread over the keys, shifted per view)."""
    pairs: list[tuple[str, str]] = [("text", TEXT)] if prefix else []
    for j, key in enumerate(url_keys(prefix)):
        if key in STRUCTURE:
            pairs.append((key, STRUCTURE[key][0]))
            continue
        raw = BAD[KINDS[(j + shift) % len(KINDS)]]
        pairs += [(key, v) for v in raw] if isinstance(raw, list) else [(key, raw)]
    return pairs


def open_and_wait(page, url: str) -> float:
    t0 = time.monotonic()
    page.goto(url, timeout=PAGE_S * 1000)
    page.wait_for_selector("h1", timeout=PAGE_S * 1000)
    page.wait_for_timeout(300)                     # let the first script run start
    page.wait_for_function(RUN_OVER_JS, arg="h1", timeout=PAGE_S * 1000, polling=200)
    return time.monotonic() - t0


@pytest.mark.parametrize("prefix", list(BY_PREFIX))
def test_a_hostile_link_to_each_view_in_a_real_browser(server, page, prefix):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)[:200]))
    # Streamlit's frontend looks for its server under a deep link's path first (404 on
    # /<view>/_stcore/health and host-config, then found at /): those misses are not errors; the
    # browser logs every failed request as a console error too, so requests are judged here.
    page.on("console", lambda m: errors.append(m.text[:200])
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url[:200]}")
            if r.status >= 400 and not re.search(r"/_stcore/(health|host-config)$", r.url) else None)
    path = BY_PREFIX[prefix].url_path
    query = hostile_query(prefix, shift=len(prefix))
    seconds = open_and_wait(page, f"{server.url}/{path}?{urlencode(query)}")
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()[:500]
    assert not errors, errors
    ignored = page.get_by_text("Ignored from the link", exact=False)
    assert ignored.count() >= 1, f"{prefix}: nothing named as ignored"
    named = ignored.first.inner_text()
    assert any(key in named for key, _ in query if key.startswith(prefix)), named[:300]
    assert seconds < PAGE_S


def test_after_the_hostile_links_a_clean_link_still_works(server, page):
    """The server kept serving: a clean link (after every hostile one above) draws the default view."""
    open_and_wait(page, f"{server.url}/?{urlencode({'text': TEXT})}")
    page.wait_for_selector(".js-plotly-plot", timeout=PAGE_S * 1000)
    assert page.locator("[data-testid='stException']").count() == 0
    assert not page.get_by_text("Ignored from the link", exact=False).count()
