"""Coloured text that updates in place (issue 14): app_pages/ui/colored_text in a real browser
(Debian's Chromium), on the tiny app tests/inplace_text_app.py. It shows what st.html of
rnnviz.plots.text.colored_text_html shows (text, colours, underlines, tooltips), keeps its DOM nodes
across updates (spans added or removed as the text grows or shrinks), and user text stays text."""

from __future__ import annotations

import pytest

from .conftest import SLOW_MS, REPO, AppServer

playwright = pytest.importorskip("playwright.sync_api")

# Per coloured-text box on the page: the in-place one (inside the component) first, then st.html's.
BOXES = """() => [...document.querySelectorAll('.rnnviz-text')].map(root => {
  const spans = [...root.querySelectorAll('span')];
  return {inplace: !!root.closest('[data-testid="stBidiComponentRegular"]'), mark: root.__mark || null,
          first: spans.length ? (spans[0].__mark || null) : null, text: root.innerText,
          n: spans.length, imgs: root.querySelectorAll('img, script').length,
          caption: root.firstElementChild.innerText, size: getComputedStyle(root).fontSize,
          look: [root, root.firstElementChild].map(e => { const c = getComputedStyle(e);
            return [c.fontFamily, c.fontSize, c.lineHeight, c.whiteSpace, c.wordBreak, c.padding,
                    c.borderTop, c.color, c.marginBottom]; }),
          spans: spans.map(s => { const c = getComputedStyle(s);
            return [s.textContent.replace('\\n', ''), c.backgroundColor, c.color, c.textDecorationLine,
                    c.textDecorationStyle, s.title]; })};
})"""


def ready(n: int) -> str:
    return f"""() => {{ const r = [...document.querySelectorAll('.rnnviz-text')];
      return r.length === 2 && r.every(e => e.firstElementChild.innerText.startsWith('update {n} ')); }}"""


@pytest.fixture(scope="module")
def server():
    srv = AppServer(REPO / "tests" / "inplace_text_app.py", timeout=180)
    yield srv
    srv.stop()


def test_text_updates_in_place_and_matches_the_html(server, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 1200})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append("dialog " + d.message), d.dismiss()))
    seen = []
    try:
        page.goto(server.url + "/?ref=1")
        for n in range(3):
            page.wait_for_function(ready(n), timeout=SLOW_MS)
            seen.append(page.evaluate(BOXES))
            page.evaluate("""() => { const r = document.querySelector('[data-testid="stBidiComponentRegular"] .rnnviz-text');
                                     r.__mark = 'root'; r.querySelector('span').__mark = 'span0'; }""")
            page.get_by_role("button", name="next").click()
        xss = page.evaluate("() => window.__xss || 0")
    finally:
        page.close()
    from tests.inplace_text_app import TEXTS

    for n, (ours, ref) in enumerate(seen):
        assert ours["inplace"] and not ref["inplace"]
        # The same characters, colours, white-on-dark, underlines and tooltips as the HTML version.
        assert ours["n"] == ref["n"] == len(TEXTS[n])
        assert ours["spans"] == ref["spans"]
        assert ours["text"] == ref["text"] and ours["caption"] == ref["caption"] == f"update {n} <b>not bold</b>"
        assert ours["size"] == ref["size"] == "15px"
        assert ours["look"] == ref["look"]                   # box and caption styled alike
        assert ours["look"][1][4] == "normal"                # the caption wraps at words
        # Kept mounted: the root and the first span are the nodes of the previous update.
        assert (ours["mark"], ours["first"]) == ((None, None) if n == 0 else ("root", "span0"))
    # User text stayed text: shown literally, no element made from it, nothing ran.
    assert '<img src=x onerror="window.__xss=1">' in seen[0][0]["text"]
    assert seen[0][0]["imgs"] == 0 and xss == 0
    # Colours and underlines really are there (not all blank): a sanity check on the comparison.
    spans = seen[1][0]["spans"]
    assert len({s[1] for s in spans}) > 3 and any(s[2] == "rgb(255, 255, 255)" for s in spans)
    assert spans[1][3] == "underline" and spans[1][4] == "wavy"
    assert spans[0][5] == "t=0 n=1 't'"
    assert not errors, errors
