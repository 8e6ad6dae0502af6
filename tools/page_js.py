"""What a driven page is asked: the page-side checks (Playwright ``wait_for_function`` /
``evaluate``) that the page benchmarks, the load scripts and the browser tests share, in one place.

* :data:`ARM_JS` right before an action; :data:`UPDATE_JS` (argument: :func:`update_arg`) then says
  whether the page shows the update: a script run since the action is over, the view and the link
  are the new ones, no chart flagged by :data:`MARK_OLD_JS` is left, and every chart element holds a
  drawn chart that carries the text's digest (``layout.meta.rnnviz``, app_pages/ui/charts.show_chart)
  or is marked text_independent; a chart out of sight may instead keep such a figure for when it is
  scrolled to (in-place charts draw only what is in sight).
* :data:`RUN_STARTED_JS`: a script run has started since :data:`ARM_JS` (Streamlit's own script-state
  attribute; for a rerun that changes nothing on the page, where nothing else can tell).
* :data:`RUN_OVER_JS`: only that no script run is under way (status widget idle, no skeleton);
  :data:`SETTLED_JS`: that, and no stale element of the previous run left.
* :data:`PAINT_JS` / :data:`IDLE_JS`: the next painted frame / the next idle moment.
* :data:`STATE_JS`: what the page shows, for a timeout's message.
"""

from __future__ import annotations

# Lines of a JS function body: false while a script run is under way or its elements are pending.
_RUN_OVER = """
  const w = document.querySelector('[data-testid="stStatusWidget"]');
  if (w && /Running|Stop/.test(w.innerText)) return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;"""

#: Before an action: note when the next script run starts (any change of the app's script state; the
#: whole body is observed, since on a view switch the app root can be a new element).
ARM_JS = """() => {
  window.__rnnvizRun = false;
  if (window.__rnnvizObs) window.__rnnvizObs.disconnect();
  window.__rnnvizObs = new MutationObserver(() => { window.__rnnvizRun = true; });
  window.__rnnvizObs.observe(document.body, {attributes: true, subtree: true,
                                             attributeFilter: ['data-test-script-state']});
}"""

#: After ARM_JS: a script run has started since (a run that changes nothing on the page, where
#: UPDATE_JS's chart checks pass before the run begins).
RUN_STARTED_JS = "() => window.__rnnvizRun === true"

#: Flag the charts on the page as old (before a view switch: UPDATE_JS waits until none is left).
MARK_OLD_JS = "() => document.querySelectorAll('.js-plotly-plot').forEach(e => e.classList.add('rnnviz-old'))"

#: Whether the page shows the update; its argument is :func:`update_arg`'s. Waiting on the status
#: widget and on the charts present is not enough after a view switch's click: neither the widget
#: nor any of the new view's charts is there yet. Chart elements: st.plotly_chart's and the
#: components' (app_pages/ui/plotly_component), except the coloured text's (ui/colored_text).
UPDATE_JS = """({digest, minCharts, viewPath, textParam, armed}) => {
  if (textParam !== null && new URLSearchParams(location.search).get('text') !== textParam) return false;
  const norm = p => p.replace(/\\/$/, '');
  if (viewPath !== null && norm(location.pathname) !== norm(viewPath)) return false;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState !== 'notRunning') return false;
""" + _RUN_OVER + """
  if (document.querySelector('.js-plotly-plot.rnnviz-old')) return false;
  const boxes = [...document.querySelectorAll('[data-testid="stPlotlyChart"], [data-testid="stBidiComponentRegular"]')]
      .filter(b => !b.querySelector('.rnnviz-text'));
  // What each chart shows: a drawn chart's layout.meta, or the meta of the figure a chart out of
  // sight keeps for when it is scrolled to (data-rnnviz-pending, app_pages/ui/plotly_inplace.js).
  const shown = b => {
    const w = b.querySelector('[data-rnnviz-pending]');
    if (w) return JSON.parse(w.dataset.rnnvizPending) || {};
    const e = b.matches('.js-plotly-plot') ? b : b.querySelector('.js-plotly-plot');
    return e && e._fullLayout && e.layout && e.layout.meta && e.querySelector('.main-svg') ? e.layout.meta : null;
  };
  const metas = boxes.map(shown);
  if (metas.length < minCharts) return false;
  if (!metas.every(m => m && (m.rnnviz === digest || m.text_independent === true))) return false;
  const carried = metas.some(m => m.rnnviz === digest);
  if (minCharts > 0 && !carried) return false;
  // A run since ARM_JS: the script state changed, or the charts carrying the digest are new ones
  // (no old one left), or the address bar shows what only the new run writes there: the view's path
  // (a view switch: Streamlit sets it when the view's run starts) or the committed text (the run
  // writes it into the link). A quick run can be over within one React render, which then never
  // writes its script state to the page (a cached view on a tiny model was missed so).
  return !armed || window.__rnnvizRun || viewPath !== null || textParam !== null || (minCharts > 0 && carried);
}"""

#: No script run under way; with a selector argument, also an element matching it is shown.
RUN_OVER_JS = "(selector) => {" + _RUN_OVER + "\n  return !selector || !!document.querySelector(selector);\n}"
#: No script run under way and no element of the previous run still dimmed as stale (a run's
#: elements replace the old ones as they arrive; the last stale ones go when the run is over).
SETTLED_JS = "() => {" + _RUN_OVER + "\n  return !document.querySelector('[data-stale=\"true\"]');\n}"
PAINT_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
IDLE_JS = "() => new Promise(r => requestIdleCallback(() => r(true), {timeout: 3000}))"
#: What the page shows when an update did not finish (for the timeout's message).
STATE_JS = """() => ({path: location.pathname, run: window.__rnnvizRun,
  state: (document.querySelector('[data-testid="stApp"]') || {dataset: {}}).dataset.testScriptState,
  status: (document.querySelector('[data-testid="stStatusWidget"]') || {}).innerText,
  errors: [...document.querySelectorAll('[data-testid="stException"], [data-testid="stAlert"]')]
      .map(e => e.innerText.slice(0, 200)),
  charts: [...document.querySelectorAll('.js-plotly-plot')].map(e => [e.classList.contains('rnnviz-old'),
      JSON.stringify((e.layout || {}).meta)])})"""


def update_arg(digest: str, min_charts: int = 0, view_path: str | None = None,
               text_param: str | None = None, armed: bool = False) -> dict:
    """UPDATE_JS's argument. digest: the text's (tools.bench_page.digest); min_charts: at least this
    many charts, one of them carrying the digest (0: any number, none required to carry it);
    view_path: the view's URL path (None: any); text_param: the ``text`` in the URL (None: any);
    armed: a script run since ARM_JS."""
    return {"digest": digest, "minCharts": int(min_charts), "viewPath": view_path,
            "textParam": text_param, "armed": bool(armed)}
