"""Hidden states: H_t (and the LSTM's C_t, and the gates) as units × characters heatmaps."""

from __future__ import annotations

import streamlit as st

from app_pages.ui.charts import controls, show_chart, window_start
from app_pages.ui.colored_text import colored_text
from app_pages.ui.context import context
from app_pages.ui.pin import Pin, pin_button, pin_point, pinned_panel
from app_pages.ui.scorecard import checked_names
from app_pages.ui.features import current_pin, feature_over_text, named_features, pin_values
from app_pages.ui.settings import settings
from app_pages.ui.text import notices
from app_pages.ui.timeline import play_next, training_step
from app_pages.ui.url import sync, use, view_params
from app_pages.ui.work import LIMITS, limit_message, run_heavy
from rnnviz import views
from rnnviz.names import act_name
from rnnviz.plots import states as splots
from rnnviz.plots.layers import Block, stacked_layers_figure
from rnnviz.ref import ModelRef
from rnnviz.serving import cost
from rnnviz.units.names import name_units, unit_name

WIDTHS = (60, 120, 250, 500, 1000)
#: Coloured text: the whole text up to this many characters, else this many around the window.
TEXT_MAX = 2_000


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _unit_order(ref: ModelRef, text: str, name: str, method: str, _values) -> list[int]:
    limit = cost.op_budget("unit_order", request_seconds=settings().request_seconds)
    cost.check_order(method, *_values.shape, limit=limit)
    return run_heavy("unit_order", views.unit_order, _values, method,
                     estimate=cost.order_seconds(method, *_values.shape))


def unit_order(ref: ModelRef, text: str, name: str, method: str, _values) -> list[int]:
    """The chosen order, priced (h³ for 'pattern') and run in its lane of the heavy-work pool under its own
    deadline; over budget or stopped: the units as trained, with a note."""
    try:
        return _unit_order(ref, text, name, method, _values)
    except LIMITS as err:
        st.info(f"Units shown as trained instead: {limit_message('unit order', err)}")
        return list(range(_values.shape[1]))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def named_units(ref: ModelRef, text: str, name: str, _values, _chars: str) -> dict[int, str]:
    """unit → what it tracks on this text (a feature ranking of the traced text)."""
    return {n.unit: n.label for n in name_units(_values, _chars)}


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def overview(ref: ModelRef, text: str, name: str, _values):
    means, edges = views.downsample_steps(_values)
    return means.numpy(), edges


#: Named dictionary features drawn at most (the Units view lists every one).
MAX_FEATURE_ROWS = 24


def feature_rows(ctx, pin: Pin | None, layer: int, kind: str, start: int, stop: int, chars: list[str]) -> None:
    """The named rows of dictionary features (#29): features of this state's shipped SAE that pass
    the scorecard (bold, with their verdicts) and the pinned one, as a heatmap of their own."""
    found = named_features(ctx, layer, kind, pin)
    if found is None:
        return
    sae, named = found
    rows = list(named)[:MAX_FEATURE_ROWS]
    acts = sae.encode(ctx.trace[act_name(layer, kind)][start:stop].float())
    more = f" (the first {len(rows)} of {len(named)})" if len(named) > len(rows) else ""
    fig = splots.feature_heatmap(acts, chars, rows, layer=layer, state=kind, start=start, named=named,
                                 font_size=ctx.font_size,
                                 title=f"Named dictionary features of the SAE on {act_name(layer, kind)}{more}: "
                                       "features, not units")
    show_chart(fig, ctx, key="hs_features", filename=f"rnnviz-{act_name(layer, kind)}-features", on_click=pin_point)
    st.caption("These rows are dictionary features (a_f = ReLU(W_enc (h − b_dec) + b_enc) of a sparse "
               "autoencoder on the state), not units: named where the scorecard on held-out text calls "
               "the feature causal or correlational for a feature of the text. White: off; the darker, "
               "the stronger. Click a row to pin the feature.")


ctx = context()
view_params("hs.")
st.title("Hidden states")
ctx = training_step(ctx, "hs")          # a checkpoint with a training timeline: the model at a step
if not notices(ctx):
    st.stop()

tr = ctx.trace
cfg = ctx.model.config
T, H, L = len(tr), cfg.hidden_size, cfg.num_layers
kinds = {"h": "H_t (hidden state)"}
if ctx.model.has_cell_state:
    kinds["c"] = "C_t (memory cell)"
if ctx.model.spec.gate_view:
    kinds["gates"] = "gates (" + ", ".join(g.upper() for g in ctx.model.spec.gate_view) + ")"
max_w = views.max_window(H)
widths = [w for w in WIDTHS if w <= max_w] or [max_w]

ROWS = {"all": "all units", "top": f"top {views.READABLE_ROWS} by variance",
        "named": "named and pinned units"}
ORDER_LABELS = {"trained": "as trained", "variance": "by variance",
                "clustered": "clustered (similar units together)",
                "pattern": "by pattern (bands of similar time courses)"}
use("hs.layer", "hs.what", "hs.order", "hs.win", L=L, kinds=kinds, widths=widths,
    orders={o: ORDER_LABELS.get(o, o) for o in views.ORDERINGS})

with controls("hs", navigation=True):
    c1, c2, c3, c4 = st.columns([1, 2, 3, 2])
    layer = c1.selectbox("Layer", list(range(L)), key="hs_layer", disabled=L == 1)
    kind = c2.radio("Show", list(kinds), format_func=kinds.get, key="hs_kind", horizontal=True)
    order_method = c3.selectbox("Unit order", views.ORDERINGS, key="hs_order",
                                format_func=ORDER_LABELS.get)
    # Readable from the back row: lecture mode opens on 32 labelled rows (#28).
    rows_mode = c3.selectbox("Rows", list(ROWS), format_func=ROWS.get, key="hs_rows",
                             index=1 if ctx.lecture else 0,
                             help="All units, the 32 that vary most over the text, or only the units "
                                  "named after a feature and the pinned one.")
    if T > widths[0]:
        width = c4.select_slider("Window (characters)", widths, key="hs_width",
                                 help="Characters shown at full resolution; the strip above shows all.")
    else:
        width = st.session_state["hs_width"]
sync("hs.layer", "hs.what", "hs.order", "hs.win")

width = min(width, T)
start, stop = window_start("hs", T, width)
chars = tr.chars[start:stop]

pin = current_pin(ctx)                   # a unit or a dictionary feature (#28, #29)
if pin is not None and pin.feature:      # a feature has no row among the units: its own panel
    pinned_panel(pin, tr.chars[:TEXT_MAX], pin_values(ctx, pin, tr)[:TEXT_MAX],
                 ctx.font_size + 2, "Its row is bold among the named features below when this layer and state are shown.")
h_name = act_name(layer, "h")
base_name = h_name if kind == "gates" else act_name(layer, kind)
order = unit_order(ctx.ref, ctx.text, base_name, order_method, tr[base_name])

if kind in ("h", "c"):
    name = base_name
    values = tr[name]
    symbol = "H" if kind == "h" else "C"
    zmax = splots.symmetric_range(values)
    if T > width:
        means, edges = overview(ctx.ref, ctx.text, name, values)
        rows = views.overview_units(order, values)
        show_chart(splots.overview_heatmap(means, edges, units=rows, window=(start, stop),
                                                  zmax=zmax, name=symbol, font_size=ctx.font_size),
                          ctx, key="hs_overview", filename=f"rnnviz-{name}-overview")
    named, checked = checked_names(ctx, name, named_units(ctx.ref, ctx.text, name, values, tr.text))
    named = dict(named)
    mine = pin.on(layer, kind) if pin is not None else None
    if mine is not None:                                        # the pinned unit, highlighted
        named[mine] = "★ pinned" + (f" · {named[mine]}" if mine in named else "")
    shown = views.heatmap_rows(order, rows_mode, views.unit_variance(values),
                               ([mine] if mine is not None else []) + list(named))
    what = f"{H} units" if len(shown) == H else f"{len(shown)} of {H} units ({ROWS[rows_mode]})"
    fig = splots.state_heatmap(values[start:stop], chars, start=start, units=shown, name=symbol,
                               zmax=zmax, font_size=ctx.font_size, named=named, layer=layer, kind=kind,
                               title=f"{kinds[kind]} of layer {layer}: {what} × steps {start}–{stop - 1}")
    show_chart(fig, ctx, key="hs_heatmap", filename=f"rnnviz-{name}", on_click=pin_point)
    st.caption(f"Colour: {symbol} from −{zmax:.3g} (blue) through 0 (white) to +{zmax:.3g} (red); "
               "hover a cell for step, character, unit and value; click a row to pin its unit (★)."
               + (" Bold units follow a feature of this text (the largest correlation with it; "
                  "the Units view ranks them on the training corpus)." + checked if named else ""))
    feature_rows(ctx, pin, layer, kind, start, stop, chars)
else:
    sat_rows = views.saturation_table(tr, layer)
    lows, highs = {}, {}
    for row in sat_rows:
        s = views.saturation(tr[row["name"]])
        lows[row["gate"]], highs[row["gate"]] = s["unit_low"].numpy(), s["unit_high"].numpy()
    st.subheader("Saturation")
    st.dataframe([{"gate": r["gate"], "fraction < 0.1": f"{r['< 0.1']:.1%}",
                   "fraction > 0.9": f"{r['> 0.9']:.1%}", "saturated": f"{r['saturated']:.1%}",
                   "mean": f"{r['mean']:.3f}"} for r in sat_rows], hide_index=True)
    show_chart(splots.saturation_figure(sat_rows, lows, highs, font_size=ctx.font_size),
                      ctx, key="hs_saturation", filename=f"rnnviz-layer{layer}-saturation")
    for row in sat_rows:
        g = row["gate"]
        fig = splots.state_heatmap(tr[row["name"]][start:stop], chars, start=start, units=order,
                                   name=g.upper(), gate=True, font_size=ctx.font_size, layer=layer, kind=g,
                                   title=f"gate {g.upper()}_t of layer {layer} (0 closed … 1 open), "
                                         f"steps {start}–{stop - 1}")
        show_chart(fig, ctx, key=f"hs_gate_{g}", filename=f"rnnviz-{row['name']}")

if L > 1 and kind in ("h", "c"):
    st.subheader("All layers on one time axis")
    kinds_all = ("h", "c") if ctx.model.has_cell_state else ("h",)
    blocks = [Block(f"layer {l} · {k.upper()}_t", tr[act_name(l, k)][start:stop],
                    unit_order(ctx.ref, ctx.text, act_name(l, k), order_method, tr[act_name(l, k)]),
                    k.upper(), l, k) for l in reversed(range(L)) for k in kinds_all]
    show_chart(stacked_layers_figure(blocks, chars, start=start, font_size=ctx.font_size), ctx,
               key="hs_layers", filename="rnnviz-all-layers", on_click=pin_point)
    st.caption("Top layer on top. Each block has its own colour range (±its largest |value|, shown "
               "on hover) and its units in the chosen order; the columns are the same characters.")

# ----------------------------------------------------------------- one unit over the text
st.subheader("One unit over the text")
unit_src = tr[base_name] if kind in ("h", "c") else tr[h_name]
var = views.unit_variance(unit_src)
default_unit = int(var.argmax()) if H else 0
sym_kind = kind if kind in ("h", "c") else "h"
if pin is not None and pin.on(layer, sym_kind) is not None:
    default_unit = pin.index                           # a pinned unit opens here
# Until the user picks a unit, follow the default (the largest-variance unit of *this* text).
if st.session_state.get("hs_unit") == st.session_state.get("_hs_unit_auto", default_unit):
    st.session_state["hs_unit"] = default_unit
st.session_state["_hs_unit_auto"] = default_unit
use("hs.unit", H=H, unit=default_unit, layer=layer, kind=sym_kind)
with controls("hs-unit", navigation=True):
    unit = st.selectbox("Unit (listed in the current order)", order, key="hs_unit",
                        format_func=lambda u: unit_name(layer, sym_kind, u),
                        help="Default: the pinned unit, else the one with the largest variance over the text.")
    pin_button(Pin(layer, sym_kind, unit), pin, key="hs_pin")
sync("hs.unit")
sym = "C" if kind == "c" else "H"
vals = unit_src[:, unit]
lo, hi = (0, T) if T <= TEXT_MAX else views.window_bounds(T, (start + stop) // 2 - TEXT_MAX // 2, TEXT_MAX)
m = splots.symmetric_range(vals)
values = [float(v) for v in vals[lo:hi]]
tips = [f"t={lo + i} {v:+.4f}" for i, v in enumerate(values)]
colored_text(
    tr.chars[lo:hi], values, vmin=-m, vmax=m, tooltips=tips, font_size=ctx.font_size + 3,
    marked=[t - lo for t in tr.unknown_positions if lo <= t < hi],
    caption=f"{unit_name(layer, sym_kind, unit)} (variance {float(var[unit]):.3g}): {sym} coloured from −{m:.3g} (blue) to +{m:.3g} (red); hover a character for its step and value"
            + (f"; characters {lo}–{hi - 1} of {T}" if (lo, hi) != (0, T) else ""), key="hs_text")
if kind in ("h", "c"):
    feature_over_text(ctx, layer, kind, pin)            # a shipped SAE's feature (rnnviz.units.sae)
play_next("hs")
