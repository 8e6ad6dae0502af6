"""Lecture mode's chart titles, in Chromium (item 5 of the 2026-12-08 polish): on the smallest
projector lecture mode is made for (1280 × 720) no title is wider than its chart (Plotly cuts it at
the edge), and on a 1920 × 1080 one a title is not wrapped into a narrow column of three or four
short lines (they were wrapped for a 1,000 px window: after ~19 characters)."""

from __future__ import annotations

import pytest

#: Every drawn chart's title: its chart, its lines, and how far its right end is from the chart's.
TITLES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(g => {
  const t = g.querySelector('.gtitle'); if (!t) return null;
  const r = t.getBoundingClientRect(), p = g.getBoundingClientRect();
  return {chart: (g.layout.meta || {}).chart, lines: t.querySelectorAll('tspan.line').length || 1,
          gap: p.right - r.right, text: t.textContent};
}).filter(Boolean)"""
#: The views' charts that are drawn at the top of the page (above the fold), by their keys.
CHARTS = {"gradients": ("g_curve", "g_eig"), "step": ("st_onehot", "st_terms", "st_softmax")}


def _titles(page, url: str, path: str) -> dict[str, dict]:
    page.goto(f"{url}/{path}?lecture=1")
    keys = list(CHARTS[path])
    page.wait_for_function("""keys => keys.every(k => [...document.querySelectorAll('.js-plotly-plot')]
        .some(g => g.layout && g.layout.meta && g.layout.meta.chart === k && g.querySelector('.gtitle')))""",
                           arg=keys, polling=250)
    return {t["chart"]: t for t in page.evaluate(TITLES) if t["chart"] in keys}


@pytest.mark.parametrize("path", list(CHARTS))
def test_lecture_titles_fit_a_1280_projector_and_are_not_a_narrow_column_at_1920(streamlit_server, page, path):
    page.set_viewport_size({"width": 1280, "height": 720})
    small = _titles(page, streamlit_server.url, path)
    for key, t in small.items():
        assert t["gap"] >= 0, f"{key}: its title {t['text']!r} runs {-t['gap']:.0f} px past the chart at 1280 × 720"
    page.set_viewport_size({"width": 1920, "height": 1080})
    big = _titles(page, streamlit_server.url, path)
    for key, t in big.items():
        assert t["gap"] >= 0, key
        # a title line and at most one line its subtitle (<br>) adds: not 3-4 lines of ~19 characters
        assert t["lines"] <= 2 + ("ρ" in t["text"]), f"{key}: {t['lines']} lines at 1920 × 1080: {t['text']!r}"
