// A Plotly chart that stays mounted and is updated in place (Streamlit Components v2).
//
// Streamlit calls this default export on mount and again, with the same parentElement, every time
// the Python side sends new data. The first call draws with Plotly.newPlot; later calls hand the
// new figure to Plotly.react on the same <div>, which diffs it against what is drawn: no remount,
// no new DOM node, and (layout.uirevision kept constant) the user's zoom and pan survive.
//
// data: bytes (plotly_component.payload): one line of JSON {config: Plotly config, plotly: URL of
// the installed plotly package's plotly.min.js, served by this Streamlit server from static/}, a newline, then
// the figure as JSON text (plotly.io.to_json).
//
// Styles are set on the elements themselves: a component's `css` would put one more <style> element
// into the page (the chart lives in the page's DOM) for every chart mounted, and each restyles the
// whole page.

const charts = new WeakMap(); // parentElement -> {box, div, seq, drawn, ident, cleanup, full, ...}

// Charts out of sight wait: a figure that arrives for a chart scrolled out of the window (or in a
// hidden tab) is kept and drawn when any of the chart comes into the window, so a text update
// costs the browser only the charts in view (the Gradients view's map and chain, below the fold,
// were 0.29 of its 0.5 Chromium CPU-s per update). Until then the chart's frame carries the waiting
// figure's layout.meta as data-rnnviz-pending (JSON), for page scripts that check what a chart shows.
const sight = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const chart = entry.target.__rnnvizChart;
    if (!chart) continue;
    chart.inSight = entry.isIntersecting;
    if (chart.inSight && chart.waiting) draw(chart);
  }
});

// Streamlit's Python side gives figures its "streamlit" Plotly template, whose colours are
// placeholders (#000001...) that st.plotly_chart's frontend replaces. For theme=None it puts in
// Plotly's own colours (colorway, plasma, PiYG) and a few theme colours and leaves the rest of the
// layout to Plotly's defaults; we do the same, so a chart looks as under st.plotly_chart(theme=None)
// (tests/test_inplace_chart.py compares the two).
const PLOTLY_COLORS = [
  // categorical #000001-#000010
  "#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
  // sequential #000011-#000020
  "#0d0887", "#46039f", "#7201a8", "#9c179e", "#bd3786", "#d8576b", "#ed7953", "#fb9f3a", "#fdca26", "#f0f921",
  // diverging #000021-#000031
  "#8e0152", "#c51b7d", "#de77ae", "#f1b6da", "#fde0ef", "#f7f7f7", "#e6f5d0", "#b8e186", "#7fbc41", "#4d9221", "#276419",
];

function themeOf(el) {
  // Components v2 sets the app theme as --st-* CSS variables on the component's container.
  const css = getComputedStyle(el);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const bg = v("--st-background-color", "#ffffff");
  const dark = /^#([0-9a-f]{2})/i.test(bg) && parseInt(bg.slice(1, 3), 16) < 0x80;
  return {
    bg, dark, green: v("--st-green-color", "#21c354"), red: v("--st-red-color", "#ff2b2b"), blue: v("--st-blue-color", "#1c83e1"),
  };
}

function replacePlaceholders(spec, t) {
  // Theme colours used only by the template's waterfall/candlestick/table defaults (#000032-#000040).
  const go = [t.green, t.red, t.blue, t.dark ? "#31333F" : "#e6eaf1", t.dark ? "#e6eaf1" : "#808495",
              t.dark ? "#fafafa" : "#262730", t.bg, t.dark ? "#fafafa0d" : "#31333f0d", t.bg];
  const colors = PLOTLY_COLORS.concat(go);
  return spec.replace(/#0000([0-3][0-9]|40)\b/g, (m, n) => colors[Number(n) - 1] || m);
}

const UTF8 = new TextDecoder();

function readData(data) {
  // -> {config, plotly, spec}, or null when there is no figure.
  if (!data || !data.byteLength) return null;
  const text = UTF8.decode(data);
  const cut = text.indexOf("\n");
  return cut < 0 ? null : Object.assign(JSON.parse(text.slice(0, cut)), { spec: text.slice(cut + 1) });
}

function loadPlotly(url) {
  // One <script> per page, shared by every chart; Plotly stays loaded across view switches.
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__rnnvizPlotly) {
    window.__rnnvizPlotly = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = url;
      s.async = true;
      s.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("plotly.min.js did not define Plotly")));
      s.onerror = () => { window.__rnnvizPlotly = undefined; reject(new Error("could not load " + url)); };
      document.head.appendChild(s);
    });
  }
  return window.__rnnvizPlotly;
}

// Fullscreen, as st.plotly_chart's element toolbar offers: a modebar button lays the chart over the
// whole window (fixed, on the page's background) and redraws it at that size; the button again or
// Escape puts it back. Updates that arrive meanwhile are drawn at the fullscreen size.
const FULLSCREEN_ICON = {
  width: 1000, height: 1000,
  path: "M0 0H400V130H130V400H0Z M600 0H1000V400H870V130H600Z M0 600H130V870H400V1000H0Z M1000 600V1000H600V870H870V600Z",
};
const FULLSCREEN_PAD = 16; // px around the chart in fullscreen
const FULLSCREEN_STYLE = { position: "fixed", inset: "0", zIndex: "1000100", padding: FULLSCREEN_PAD + "px",
                           boxSizing: "border-box", overflow: "auto" };

function sized(chart) {
  // The chart's figure as drawn: in fullscreen, both sizes given (Plotly.relayout of one size alone
  // would freeze the other, and Plots.resize skips a chart whose layout sets both). Always a copy of
  // the layout: Plotly keeps the object it is given, and Plots.resize deletes its width and height.
  const { figure } = chart;
  const size = chart.full ? { width: chart.div.clientWidth, height: Math.max(200, innerHeight - 2 * FULLSCREEN_PAD) } : {};
  return Object.assign({}, figure, { layout: Object.assign({}, figure.layout, size) });
}

function setFullscreen(chart, on) {
  const Plotly = window.Plotly;
  if (!Plotly || !chart.drawn || chart.full === on) return;
  chart.full = on;
  for (const [k, v] of Object.entries(FULLSCREEN_STYLE)) chart.box.style[k] = on ? v : "";
  chart.box.style.background = on ? chart.bg : "";
  chart.box.classList.toggle("rnnviz-fullscreen", on);
  const listen = on ? addEventListener : removeEventListener;
  listen("keydown", chart.onKey);
  listen("resize", chart.onResize);
  // Back in the page: the figure's own layout, then the width follows the element again (autosize).
  Plotly.react(chart.div, sized(chart))
    .then(() => (on ? null : Plotly.Plots.resize(chart.div)))
    .catch((err) => console.error("rnnviz chart:", err));
}

function newChart(parentElement) {
  const box = document.createElement("div"); // the chart's frame: what fullscreen lays over the page
  const div = document.createElement("div");
  div.className = "rnnviz-inplace";
  box.style.width = div.style.width = "100%";
  box.appendChild(div);
  parentElement.appendChild(box);
  const chart = { box, div, seq: 0, drawn: false, full: false, inSight: false, waiting: null };
  box.__rnnvizChart = chart;
  sight.observe(box);
  chart.onKey = (ev) => { if (ev.key === "Escape") setFullscreen(chart, false); };
  chart.onResize = () => { if (chart.full && window.Plotly) window.Plotly.react(chart.div, sized(chart)); };
  // One object for the chart's life: Plotly.react redraws from scratch when its config changes, and
  // a new click function would be a change.
  chart.fullscreenButton = { name: "rnnviz-fullscreen", title: "Fullscreen (Esc to leave)", icon: FULLSCREEN_ICON,
                             click: () => setFullscreen(chart, !chart.full) };
  return chart;
}

function figureOf(chart, { spec, theme, given }) {
  // The figure and config handed to Plotly, from a waiting figure's JSON text.
  const fig = JSON.parse(replacePlaceholders(spec, theme));
  const layout = fig.layout || {};
  // Keep user interaction (zoom, pan, legend clicks) across updates unless the figure sets its own.
  if (layout.uirevision === undefined) layout.uirevision = "rnnviz";
  // As st.plotly_chart: no selection tools (nothing reads selections). Never the "Share chart"
  // button of Plotly.js 4, which uploads the chart to Plotly's cloud.
  const config = Object.assign({ responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] }, given,
                               { showSendToCloud: false,
                                 modeBarButtonsToAdd: (given.modeBarButtonsToAdd || []).concat([chart.fullscreenButton]) });
  return { data: fig.data || [], layout, frames: fig.frames, config };
}

function listenClicks(chart) {
  // A click on a point (a heatmap cell, a bar) goes back to Python as the one-time trigger "click"
  // ({x, y}: the point's category labels, e.g. the unit's name "L0 h[203]"), on charts whose page
  // asked for clicks (the payload's head: clicks). Attached once: Plotly.react keeps the listener.
  chart.div.on("plotly_click", (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p || !chart.clicks || !chart.setTrigger) return;
    chart.setTrigger("click", { x: String(p.x), y: String(p.y) });
  });
}

function draw(chart) {
  // Draw the waiting figure: Plotly.newPlot the first time, Plotly.react on the same <div> after.
  // One draw at a time per chart: a Plotly.react started while the previous one was still running
  // (figures arriving at key-repeat speed, a slider held down) failed inside Plotly ("reading
  // '_rehover'"). A figure that arrives meanwhile waits, and the running draw draws it when done.
  if (chart.drawing || !chart.waiting) return;
  const waiting = chart.waiting;
  chart.waiting = null;
  delete chart.box.dataset.rnnvizPending;
  const seq = ++chart.seq;
  chart.box.dataset.rnnvizDrawing = "1";   // for page scripts: a draw is under way (zoom waits)
  chart.drawing = loadPlotly(waiting.plotly).then((Plotly) => {
    // The chart was unmounted meanwhile (a remount into the same element starts a new chart:
    // drawing here too left two charts in it).
    if (seq !== chart.seq || chart.dead) return;
    const first = !chart.drawn;
    chart.drawn = true;
    chart.figure = figureOf(chart, waiting);
    chart.box.style.minHeight = "";
    const drawn = (first ? Plotly.newPlot : Plotly.react)(chart.div, sized(chart));
    return first ? drawn.then(() => listenClicks(chart)) : drawn;
  }).catch((err) => console.error("rnnviz chart:", err)).finally(() => {
    chart.drawing = null;
    delete chart.box.dataset.rnnvizDrawing;
    if (!chart.dead && chart.waiting && (chart.inSight || chart.full)) draw(chart);
  });
}

export default function (component) {
  const { parentElement } = component;
  let chart = charts.get(parentElement);
  if (!chart) {
    chart = newChart(parentElement);
    charts.set(parentElement, chart);
  }
  const data = readData(component.data);
  if (!data || !data.spec) return undefined;
  chart.clicks = Boolean(data.clicks);
  chart.setTrigger = component.setTriggerValue;
  const theme = themeOf(parentElement);
  chart.bg = theme.bg;
  // Streamlit calls again with the same figure on other reruns (a widget elsewhere moved, a theme
  // switch): nothing to draw then, and the chart is not redrawn (a chart that does not depend on
  // the text is drawn once per page visit).
  const ident = theme.bg + "\u0000" + data.spec + "\u0000" + JSON.stringify(data.config || {});
  if (ident === chart.ident) return chart.cleanup;
  chart.ident = ident;
  // Nothing is parsed before the chart is drawn; the head's meta says what the figure shows.
  chart.waiting = { spec: data.spec, theme, given: data.config || {}, plotly: data.plotly };
  chart.box.dataset.rnnvizPending = JSON.stringify(data.meta === undefined ? null : data.meta);
  // The drawn chart's height, kept before it is drawn: charts below stay where they will be (out of
  // sight, so they wait too) and the page does not jump when it is drawn.
  if (!chart.drawn) chart.box.style.minHeight = (data.height || 450) + "px";
  // In sight (or fullscreen): now; otherwise when it comes into sight (the observer calls draw).
  if (chart.inSight || chart.full) draw(chart);
  chart.cleanup = () => {
    // Unmounted by Streamlit (view switch, chart no longer shown): free Plotly's listeners and take
    // the chart out of the element, which Streamlit may mount the component into again.
    if (charts.get(parentElement) === chart) charts.delete(parentElement);
    chart.dead = true;
    sight.unobserve(chart.box);
    removeEventListener("keydown", chart.onKey);
    removeEventListener("resize", chart.onResize);
    const purge = () => { if (window.Plotly && chart.drawn) window.Plotly.purge(chart.div); chart.box.remove(); };
    if (chart.drawing) chart.drawing.then(purge); else purge();    // never under a running draw
  };
  return chart.cleanup;
}
