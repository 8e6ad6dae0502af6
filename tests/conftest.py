"""Shared fixtures: tiny models of every cell type, and a real Streamlit server + headless Chromium."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import rnnviz
from rnnviz import CELLS, ModelConfig, Vocab, build_model
from tools.serve import CHROMIUM, CHROMIUM_ARGS, AppServer, free_port  # noqa: F401 (re-exported)

# The app's start-up warm-up (building every shipped checkpoint's unit index in a background
# thread) would compete with the many app starts of the suite; tests that need it call it directly.
# Servers get the script argument (StreamlitServer, below); AppTest runs app.py in this process,
# where it reads this process's arguments: the same switch, `streamlit run app.py -- --no-warmup`.
NO_WARMUP = ("--no-warmup",)
if NO_WARMUP[0] not in sys.argv:
    sys.argv.append(NO_WARMUP[0])

# Tests use small models: one intra-op thread each avoids OpenMP spin contention between the pytest
# process, the Streamlit server and the browser on our 2-core machines.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
SMALL_TEXT = "hello world, the time machine by h. g. wells\n"


def read_payload(data: bytes) -> tuple[dict, str]:
    """(the head: ``config``, ``plotly``, ``meta``, ``height``; the figure's JSON) of the in-place
    chart's data (app_pages/ui/plotly_component.payload: one line of JSON, a newline, the figure)."""
    import json
    head, _, spec = bytes(data).decode("utf-8").partition("\n")
    return json.loads(head), spec


def chart_specs(at) -> list[dict]:
    """Every Plotly figure on an AppTest page, in page order: st.plotly_chart elements and the charts
    drawn in place (app_pages/ui/plotly_component: the figure travels as the component's data)."""
    import json
    out = []
    for el in at.main:
        if el.type == "plotly_chart":
            out.append(json.loads(el.proto.spec))
        elif el.type == "bidi_component" and el.proto.component_name == "rnnviz_plotly_inplace":
            out.append(json.loads(read_payload(el.proto.bytes)[1]))
    return out


def colored_texts(at) -> list[dict]:
    """The data of every coloured-text block on an AppTest page, in page order
    (app_pages/ui/colored_text: rnnviz.plots.text.colored_text_data plus its ``sig``)."""
    import json
    return [json.loads(el.proto.json) for el in at.main
            if el.type == "bidi_component" and el.proto.component_name == "rnnviz_colored_text"]


#: Seconds one AppTest script run may take: generous, so a busy machine makes a test slower, not red.
APP_S = 300


def app_on(ckpt_dir, monkeypatch, script: Path = REPO / "app.py"):
    """An AppTest of ``script`` whose checkpoint folder (RNNVIZ_CHECKPOINT_DIR) is ``ckpt_dir``."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpt_dir))
    return AppTest.from_file(str(script), default_timeout=APP_S)


def open_view(at, page: str, text: str | None = None, **query):
    """Open ``page`` on an AppTest app with URL parameters (``text``: the sidebar text), run it and
    assert no exception: how a user lands on a view from a link."""
    if text is not None:
        at.query_params["text"] = text
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun_until(at, shown, timeout: float | None = None):
    """Rerun an AppTest until ``shown(at)`` holds, as a browser's page does by itself for a part
    drawn when its heavy result is ready (app_pages/ui/later.py polls, then reruns the page):
    wait on what the user sees. A slow machine makes this slower, never red (up to ``timeout``,
    default APP_S); a page that never shows it fails."""
    import time
    end = time.monotonic() + (APP_S if timeout is None else timeout)
    while not shown(at):
        assert time.monotonic() < end, "the page never showed it"
        time.sleep(0.25)             # the page's own polling interval is app_pages.ui.later.POLL_S
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at, name: str, data: bytes):
    """Put ``data`` into the sidebar's checkpoint uploader as file ``name``; assert no exception."""
    at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def tiny_model(cell: str, layers: int = 1, hidden: int = 8, text: str = SMALL_TEXT, seed: int = 0):
    """A small randomly initialised model (float32, eval mode)."""
    cfg = ModelConfig(cell, hidden, layers, tuple(Vocab.from_text(text).tokens))
    return build_model(cfg, seed=seed)


@pytest.fixture(params=[(c, n) for c in CELLS for n in (1, 2)], ids=lambda p: f"{p[0]}-{p[1]}L")
def any_model(request):
    cell, layers = request.param
    return tiny_model(cell, layers)


#: Rough CPU seconds of the suite's longest files on the quiet 2-core machine (only their order
#: matters). Two workers take whole files (pyproject: --dist loadfile --no-loadscope-reorder): the
#: longest start first, so no long browser file starts last while the other worker has run dry.
FILE_COST = {"test_slider_keys_browser.py": 180, "test_url_fuzz_browser.py": 60, "test_browser.py": 57,
             "test_docs.py": 56, "test_hostile_text.py": 48, "test_hostile_checkpoints.py": 44,
             "test_gradients.py": 25, "test_jacobian_chain.py": 12, "test_load_protocol.py": 43, "test_readonly_model.py": 41,
             "test_shipped_checkpoints.py": 39, "test_presenter_browser.py": 35, "test_xss_browser.py": 33,
             "test_heavy_models.py": 33, "test_train_browser.py": 30, "test_loadtest_smoke.py": 30,
             "test_timeline_browser.py": 28, "test_app_overflow.py": 27, "test_inplace_chart.py": 25,
             "test_app_features.py": 21, "test_pin_browser.py": 16, "test_later_browser.py": 15,
             "test_app_views.py": 15}


def pytest_collection_modifyitems(items):
    """Longest files first (FILE_COST), the others after in their usual order; a file's tests
    keep their order (a stable sort on a key shared by the whole file)."""
    items.sort(key=lambda item: -FILE_COST.get(item.path.name, 0))


class StreamlitServer(AppServer):
    """The app on 127.0.0.1 at a free port, one torch thread (see tools.serve.AppServer); its
    output goes to a temporary file, whose end :meth:`log_tail` gives for a failure's message."""

    def __init__(self, env: dict | None = None):
        self._log = tempfile.TemporaryFile()
        super().__init__(REPO / "app.py", {"OMP_NUM_THREADS": "1", **(env or {})}, timeout=180,
                         args=NO_WARMUP, log=self._log)

    def log_tail(self, chars: int = 3000) -> str:
        """The last ``chars`` characters the server wrote (its log lines, any traceback)."""
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - chars))
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        super().stop()
        self._log.close()


@pytest.fixture(autouse=True)
def _fresh_settings():
    """The app reads its environment settings once per process (app_pages.ui.settings); tests set
    RNNVIZ_* with monkeypatch, so each test starts from a fresh read."""
    from app_pages.ui.settings import settings
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture(scope="session")
def streamlit_server():
    server = StreamlitServer()
    yield server
    server.stop()


#: How long a browser test waits for what the user should see (ms): generous, so a busy machine
#: makes a test slower, never red; a page that never shows it still fails.
SLOW_MS = 180_000


class _Browser:
    """Playwright's Browser whose new contexts wait SLOW_MS by default (Playwright's own: 30 s)."""

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        context.set_default_timeout(SLOW_MS)
        return context

    def new_page(self, **kwargs):
        page = self._browser.new_page(**kwargs)
        page.set_default_timeout(SLOW_MS)
        return page

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (no Playwright browser download needed); its
    contexts' actions and waits time out after SLOW_MS."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed: apt-get install -y chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield _Browser(b)
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def wait_for_app(page, timeout: float = SLOW_MS):
    """Wait until Streamlit finished running the script on ``page``.

    While a script runs, Streamlit 1.67's status widget shows "Running…" and a "Stop" button; the
    app is idle when the widget is gone or shows neither.
    """
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !/Running|Stop/.test(w.innerText); }",
        timeout=timeout)
