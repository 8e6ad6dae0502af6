"""Figures of the Gradients view: pure builders, rnnviz.gradients results in, ``go.Figure`` out.

Nothing is silently dropped: exact zeros (underflow, dead ReLUs, truncation) are drawn as ▽ markers
along the bottom of a log axis and inf/NaN as ✕ markers along the top, each with a hover label and a
count in the legend; the gradient map colours zeros and infinities at the ends of its scale and
overlays ✕ on NaN cells. Character labels go through ``display_char`` and ``escape``.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ..gradients import GradientMap, JacobianChain, NormCurve, Spectrum
from ..names import act_name
from .common import SEQUENTIAL, display_char, escape, hline, log_axis, merge
from .gradient_depth import depth_flow_figure  # noqa: F401 (the depth × time figure, re-exported)

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
#: The gradient map shows at most this many rows/columns; larger maps are max-pooled for display.
MAP_DISPLAY_MAX = 400
#: At most this many ✕ markers for NaN cells on the map (the count is always in the title).
MAP_MAX_NAN_MARKERS = 4000


def _char_label(chars: list[str], t: int) -> str:
    return escape(display_char(chars[t])) if 0 <= t < len(chars) else "?"


def _title(main: str, notes: list[str]) -> str:
    """A title with one subtitle line per note (long one-line subtitles were cut off at the
    chart's right edge)."""
    return main + "".join(f"<br><sup>{note}</sup>" for note in notes)


def _axis(title: str | None = None, **props) -> dict:
    """An axis' layout dict (``title``: its text)."""
    return dict(props, title=dict(text=title)) if title is not None else props


def _layout(traces: list, title: str, height: int = 420, xaxis: dict | None = None,
            yaxis: dict | None = None, **extra) -> go.Figure:
    """The figure of ``traces``: title (and its subtitle lines) on top with room for every line; the
    legend *below* the plot, so however many entries truncation / clipping / special markers add,
    it never climbs into the title; axes make room for their tick labels before placing their
    titles. ``extra``: more layout, merged in last (common.merge)."""
    lines = title.count("<br>")
    n_legend = sum(1 for tr in traces if tr.showlegend is not False and tr.name)
    rows = (n_legend + 1) // 2                      # about two entries per legend line
    layout = dict(title=dict(text=title), height=height + 22 * lines + 22 * rows,
                  margin=dict(l=60, r=20, t=50 + 22 * lines, b=70 + 22 * rows),
                  legend=dict(orientation="h", yref="container", yanchor="bottom", y=0.0, x=0,
                              font=dict(size=11)),
                  hovermode="closest")
    merge(layout, xaxis=merge(dict(xaxis or {}), automargin=True, title=dict(standoff=12)),
          yaxis=merge(dict(yaxis or {}), automargin=True), **extra)
    return go.Figure(traces, layout=layout)


def _log_series(traces: list, x: np.ndarray, log10_y: np.ndarray, name: str, color: str,
                hover: list[str], dash: str | None = None, log_axis: bool = True,
                bottom: float = 0.0, top: float = 0.0, show_special: bool = True) -> dict[str, int]:
    """Append one curve given log10 values to ``traces``; zeros (−inf) and inf/NaN become separate marker traces.

    On a log axis the curve uses 10**log10; otherwise the y value is log10 itself.
    bottom/top: y positions (in log10 units) for the zero and non-finite markers.
    Returns counts {"zero": …, "inf": …, "nan": …}.
    """
    finite = np.isfinite(log10_y)
    y = np.where(finite, log10_y, np.nan)
    yv = np.power(10.0, y) if log_axis else y
    traces.append(go.Scatter(x=x, y=yv, mode="lines+markers" if len(x) <= 60 else "lines",
                             name=name, line=dict(color=color, dash=dash), marker=dict(size=5),
                             hovertext=hover, hovertemplate="%{hovertext}<br>‖·‖ = %{y:.3e}<extra>"
                             + escape(name) + "</extra>" if log_axis else
                             "%{hovertext}<br>log₁₀‖·‖ = %{y:.3f}<extra>" + escape(name) + "</extra>",
                             connectgaps=False))
    counts = {"zero": int(np.isneginf(log10_y).sum()), "inf": int(np.isposinf(log10_y).sum()),
              "nan": int(np.isnan(log10_y).sum())}
    if not show_special:
        return counts
    for kind, mask, ypos, symbol, label in (
            ("zero", np.isneginf(log10_y), bottom, "triangle-down", "exactly 0"),
            ("inf", np.isposinf(log10_y), top, "x", "inf"),
            ("nan", np.isnan(log10_y), top, "x-thin-open", "NaN")):
        if not mask.any():
            continue
        idx = np.nonzero(mask)[0]
        yy = np.full(len(idx), 10.0 ** ypos if log_axis else ypos)
        traces.append(go.Scatter(
            x=x[idx], y=yy, mode="markers", name=f"{name}: {label} ({len(idx)})",
            marker=dict(symbol=symbol, size=9, color=color, line=dict(width=1.5, color=color)),
            hovertext=[hover[i] + f"<br><b>{label}</b>" for i in idx],
            hovertemplate="%{hovertext}<extra>" + escape(name) + "</extra>"))
    return counts


def _bounds(arrays: list[np.ndarray]) -> tuple[float, float]:
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if vals.size == 0:
        return -1.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    pad = max(0.5, 0.05 * (hi - lo))
    return lo - pad, hi + pad


# ============================================================================= norm curve
def _fit_and_clip(traces: list, curve: NormCurve, x: np.ndarray, top: np.ndarray | None,
                  fit, clip_f: float | None) -> None:
    """The top layer's fitted per-step factor (dotted) and, with clipping, the clipped layer (``top``:
    the top one, or the what-if's layer) as the update sees it (dashed, × the clip factor)."""
    if fit is not None:
        d = np.arange(fit.d_min, fit.d_max + 1)
        traces.append(go.Scatter(
            x=d, y=fit.intercept * fit.factor ** d.astype(float), mode="lines",
            name=f"fit: × {fit.factor:.3g} per step", line=dict(color="black", dash="dot", width=1),
            hoverinfo="skip"))
    if clip_f and top is not None:
        which = "top layer" if curve.clip.layer is None else f"layer {curve.clip.layer}"
        traces.append(go.Scatter(x=x, y=np.power(10.0, np.where(np.isfinite(top), top, np.nan)) * clip_f,
                                 mode="lines", name=f"{which} as the update sees it (× {clip_f:.3g}, θ = "
                                 f"{curve.clip.theta:g})", line=dict(color="gray", dash="dash")))


def norm_curve_figure(curve: NormCurve, show_c: bool = True, show_fit: bool = True) -> go.Figure:
    """‖∂L/∂H_t‖ on a log y axis against the distance from the loss, one trace per layer (and C_t).

    Zeros/inf/NaN are drawn as markers (see module doc). With truncation a dotted line marks where
    gradients are cut; with global-norm clipping a dashed trace shows the top layer as the update
    sees it (× the clip factor). The fitted per-step factor of the top layer is a dotted line.
    """
    traces: list = []
    x = curve.distance.numpy()
    steps = curve.steps.numpy()
    hover = [f"t = {t} (‘{_char_label(curve.chars, t)}’), {d} step(s) before the loss"
             for t, d in zip(steps, x)]
    series = curve.series()
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = {k: np.log10(v.double().numpy()) for k, v in series.items()}
    if not show_c:
        logs = {k: v for k, v in logs.items() if k.endswith(".h")}
    fit = curve.fits.get(curve.top)
    show_fit = show_fit and fit is not None and math.isfinite(fit.factor) \
        and math.isfinite(fit.intercept) and fit.intercept > 0
    clip_f = (curve.clip.factor if curve.clip is not None and curve.clip.theta is not None
              and math.isfinite(curve.clip.factor) and 0 < curve.clip.factor < 1 else None)
    # The y range covers every line drawn (the clipped copy lies below the data, the fit may
    # reach past it), so the ▽ / ✕ markers sit at the very bottom / top, never mid-chart.
    clipped = act_name(curve.clip.layer, "h") if curve.clip is not None and curve.clip.layer is not None \
        else curve.top                          # the layer whose update the clipping scales
    extra = [logs[clipped] + math.log10(clip_f)] if clip_f and clipped in logs else []
    if show_fit:
        extra.append(np.log10(fit.intercept) + np.array([fit.d_min, fit.d_max]) * np.log10(fit.factor))
    lo, hi = _bounds(list(logs.values()) + extra)
    totals = {"zero": 0, "inf": 0, "nan": 0}
    for i, (name, ly) in enumerate(logs.items()):
        layer = int(name[5:name.index(".")])
        is_c = name.endswith(".c")
        label = f"‖∂L/∂{'C' if is_c else 'H'}_t‖ layer {layer}"
        counts = _log_series(traces, x, ly, label, _COLORS[layer % len(_COLORS)], hover,
                                  dash="dash" if is_c else None, bottom=lo, top=hi)
        for k in totals:
            totals[k] += counts[k]
    _fit_and_clip(traces, curve, x, logs.get(clipped), fit if show_fit else None, clip_f)
    what = {"last": "the last step", "step": f"step s = {curve.loss_step}", "sum": "all steps (sum)"}[curve.loss]
    notes = []
    if totals["inf"] or totals["nan"]:
        notes.append(f"{totals['inf']} inf, {totals['nan']} NaN (✕ at top)")
    if totals["zero"]:
        notes.append(f"{totals['zero']} exact zeros (▽ at bottom)")
    title = _title(f"Gradient norm vs distance from the loss at {what}", ["; ".join(notes)] if notes else [])
    fig = _layout(traces, title, xaxis=_axis("distance from the loss (steps back in time)"),
                  yaxis=_axis("‖∂L/∂H_t‖ (log scale)", **log_axis(log10_range=(lo, hi), range=[lo - 0.3, hi + 0.3])))
    k, where = curve.whatif.truncate, curve.whatif.layer
    if k and curve.loss != "sum":
        fig.add_vline(x=k - 0.5, line=dict(color="gray", dash="dot"), annotation_position="top",
                      annotation_text=f"{'' if where is None else f'layer {where} '}truncated: k = {k}")
    return fig


# ============================================================================= Jacobian chain
def jacobian_chain_figure(chain: JacobianChain) -> go.Figure:
    """‖∂H_T/∂H_t‖₂ and ‖∂H_T/∂H_t‖_F against T − t, with the fitted per-step factors.

    Uses a log axis when every value fits in float64 (10^±300); else plots log₁₀ on a linear axis.
    LSTM: also ‖∂H_T/∂C_t‖ (dashed).
    """
    traces: list = []
    x = chain.distance.numpy()
    steps = chain.steps.numpy()
    hover = [f"t = {t} (‘{_char_label(chain.chars, t)}’), T − t = {d}" for t, d in zip(steps, x)]
    arrays = {"‖∂H_T/∂H_t‖₂ (spectral)": (chain.log10_spectral.numpy(), None, 0),
              "‖∂H_T/∂H_t‖_F (Frobenius)": (chain.log10_frobenius.numpy(), None, 1)}
    if chain.log10_spectral_c is not None:
        arrays["‖∂H_T/∂C_t‖₂"] = (chain.log10_spectral_c.numpy(), "dash", 0)
        arrays["‖∂H_T/∂C_t‖_F"] = (chain.log10_frobenius_c.numpy(), "dash", 1)
    lo, hi = _bounds([a for a, _, _ in arrays.values()])
    use_log = lo > -300 and hi < 300
    for name, (ly, dash, ci) in arrays.items():
        _log_series(traces, x, ly, name, _COLORS[ci], hover, dash=dash, log_axis=use_log, bottom=lo, top=hi)
    for fit, name, ci in ((chain.fit_spectral, "spectral", 0), (chain.fit_frobenius, "Frobenius", 1)):
        if math.isfinite(fit.factor) and fit.intercept > 0:
            d = np.arange(fit.d_min, fit.d_max + 1).astype(float)
            ly = math.log10(fit.intercept) + d * fit.log10_factor
            traces.append(go.Scatter(x=d, y=np.power(10.0, ly) if use_log else ly, mode="lines",
                                     name=f"fit ({name}): × {fit.factor:.3g} per step",
                                     line=dict(color=_COLORS[ci], dash="dot", width=1), hoverinfo="skip"))
    yaxis = (_axis("norm (log scale)", **log_axis(log10_range=(lo, hi), range=[lo - 0.3, hi + 0.3])) if use_log
             else _axis("log₁₀ norm (values beyond float64 range)"))
    notes = []
    if chain.nonfinite.any:
        notes.append(f"{chain.nonfinite.describe()} (✕ at top)")
    if chain.forward.any:
        notes.append(f"forward pass overflowed from step t = {chain.forward.steps[0]} on")
    if chain.zeros:
        notes.append(f"{chain.zeros} exact zeros (▽)")
    gap = _spectral_gap(chain)
    if gap:
        notes.append(gap)
    return _layout(traces, _title(f"Jacobian chain ∂H_T/∂H_t, layer {chain.layer}, T = {chain.end}",
                                  [escape(n) for n in notes]),
                   xaxis=_axis("T − t (steps back from H_T)"), yaxis=yaxis,
                   annotations=[_method_note(chain.method)])


def _spectral_gap(chain: JacobianChain) -> str:
    """Why the spectral line has gaps where the Frobenius line goes on ("" when it has none)."""
    spec, fro = chain.log10_spectral.numpy(), chain.log10_frobenius.numpy()
    missing = ~np.isfinite(spec) & np.isfinite(fro)
    if not missing.any():
        return ""
    first = int(chain.distance.numpy()[missing].min())
    why = ("the SVD did not converge there" if np.isnan(spec[missing]).any()
           else "the product underflowed below the float range")
    return f"spectral norm missing at {int(missing.sum())} step(s) from T − t = {first}: {why}"


def _method_note(method: str) -> dict:
    """How the norms were computed ("block Krylov Rayleigh–Ritz …"): jargon for a tooltip, not the
    title: a small "ℹ how computed" note in the corner whose hover says it. ℹ (U+2139), not ⓘ:
    Debian's default fonts (DejaVu) have it, as do Windows' and macOS's symbol fonts; ⓘ drew as
    an empty box in headless Chromium."""
    return dict(text="ℹ how computed", hovertext=escape(method), showarrow=False,
                xref="paper", yref="paper", x=1.0, y=1.0, xanchor="right", yanchor="bottom",
                font=dict(size=11, color="#555"))


# ============================================================================= gradient map
def _pool(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Max-pool a 2-D array to at most rows × cols; a NaN anywhere in a block makes it NaN."""
    R, C = a.shape
    fr, fc = max(1, math.ceil(R / rows)), max(1, math.ceil(C / cols))
    if fr == 1 and fc == 1:
        return a
    Rp, Cp = math.ceil(R / fr) * fr, math.ceil(C / fc) * fc
    pad = np.full((Rp, Cp), -np.inf)
    pad[:R, :C] = a
    blocks = pad.reshape(Rp // fr, fr, Cp // fc, fc)
    has_nan = np.isnan(blocks).any(axis=(1, 3))
    out = np.nanmax(np.where(np.isnan(blocks), -np.inf, blocks), axis=(1, 3))
    out[has_nan] = np.nan
    return out


def _map_notes(gmap: GradientMap, fr: int, fc: int, n_zero: int, n_inf: int, n_nan: int) -> list[str]:
    """The subtitle lines of the gradient map: thinning, pooling, zeros, inf/NaN, overflow."""
    notes = [gmap.message] if gmap.message else []
    if fr > 1 or fc > 1:
        notes.append(f"display max-pooled {fr}×{fc}")
    if n_zero:
        notes.append(f"{n_zero} exact zeros (bottom colour)")
    if n_inf or n_nan:
        notes.append(f"{n_inf} inf (top colour), {n_nan} NaN (✕)")
    if gmap.forward.any:
        notes.append(f"forward pass overflowed from step t = {gmap.forward.steps[0]} on")
    return notes


def gradient_map_figure(gmap: GradientMap, layer: int | None = None) -> go.Figure:
    """Heatmap of log₁₀ G[t, k] = log₁₀ ‖∂ℓ_t/∂H_k‖ (rows: loss step t, columns: step k ≤ t).

    Cells with k > t are blank (ℓ_t does not depend on H_k). Exact zeros take the bottom colour,
    +inf the top colour (both named in the hover), NaN cells get ✕ markers. Maps above
    MAP_DISPLAY_MAX rows/columns are max-pooled for display (the title says so).
    """
    layer = gmap.num_layers - 1 if layer is None else layer
    G = gmap.maps[layer].double().numpy()
    up = gmap.upstream.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.log10(G)
    L[~up] = np.nan
    n_zero = int(((G == 0) & up).sum())
    n_inf = int((np.isposinf(G) & up).sum())
    n_nan = int((np.isnan(G) & up).sum())
    pooled = _pool(np.where(up, L, -np.inf), MAP_DISPLAY_MAX, MAP_DISPLAY_MAX)
    R, C = G.shape
    fr, fc = max(1, math.ceil(R / MAP_DISPLAY_MAX)), max(1, math.ceil(C / MAP_DISPLAY_MAX))
    rows_t = gmap.loss_steps.numpy()[::fr]
    cols_k = np.arange(0, C, fc)
    up_p = rows_t[:, None] >= cols_k[None, :]
    finite = pooled[np.isfinite(pooled) & up_p]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    if hi <= lo:
        hi = lo + 1
    z = pooled.copy()
    z[np.isneginf(z) & up_p] = lo                  # exact zero → bottom colour
    z[np.isposinf(z)] = hi                         # inf → top colour
    nan_cells = np.isnan(z) & up_p
    z[~up_p] = np.nan                              # not upstream: blank
    special = (np.isneginf(pooled) & up_p) | np.isposinf(pooled) | nan_cells
    note = None                                    # only the special cells get a note (if any)
    if special.any():
        note = np.full(z.shape, "", dtype=object)
        note[np.isneginf(pooled) & up_p] = " — actually exactly 0 (bottom colour)"
        note[np.isposinf(pooled)] = " — actually inf (top colour)"
        note[nan_cells] = "NaN"
    xl = [escape(f"{k}:{display_char(gmap.chars[k])}") for k in cols_k]
    yl = [escape(f"{t}:{display_char(gmap.chars[t])}") for t in rows_t]
    # float32: the colours and the 2-decimal hover need no more, and the page gets half the bytes
    traces = [go.Heatmap(
        z=z.astype(np.float32), x=xl, y=yl, colorscale=SEQUENTIAL, zmin=lo, zmax=hi, text=note,
        hovertemplate="loss ℓ at %{y}<br>H at %{x}<br>log₁₀‖∂ℓ_t/∂H_k‖ = %{z:.2f}"
                      + ("%{text}" if note is not None else "") + "<extra></extra>",
        colorbar=dict(title="log₁₀ G"))]
    if nan_cells.any():
        yy, xx = np.nonzero(nan_cells)
        shown = min(len(yy), MAP_MAX_NAN_MARKERS)
        traces.append(go.Scatter(x=[xl[i] for i in xx[:shown]], y=[yl[i] for i in yy[:shown]], mode="markers",
                                 name=f"NaN ({int(nan_cells.sum())} cells)",
                                 marker=dict(symbol="x", size=5, color="red"), hoverinfo="skip"))
    notes = _map_notes(gmap, fr, fc, n_zero, n_inf, n_nan)
    title = _title(f"Gradient map G[t, k] = ‖∂ℓ_t/∂H_k‖, layer {layer}", [escape(n) for n in notes])
    return _layout(traces, title, height=520,
                   xaxis=_axis("k: the hidden state H_k", type="category", nticks=20),
                   yaxis=_axis("t: the loss ℓ_t", type="category", nticks=20, autorange="reversed"))


# ============================================================================= spectrum
def eigenvalue_figure(spectrum: Spectrum, layer: int = 0, block: str | None = None) -> go.Figure:
    """Eigenvalues λ of one W_hh block in the complex plane, with the unit circle |λ| = 1."""
    block = block or spectrum.main
    bs = spectrum.blocks[layer][block]
    ev = bs.eigenvalues.numpy()
    theta = np.linspace(0, 2 * np.pi, 361)
    r = bs.spectral_radius
    traces = [go.Scatter(x=np.cos(theta), y=np.sin(theta), mode="lines", name="|λ| = 1",
                         line=dict(color="gray", dash="dash"), hoverinfo="skip"),
              go.Scatter(x=r * np.cos(theta), y=r * np.sin(theta), mode="lines",
                         name=f"spectral radius ρ = {r:.3g}", line=dict(color="#d62728", width=1),
                         hoverinfo="skip"),
              go.Scatter(x=ev.real, y=ev.imag, mode="markers", name=f"eigenvalues of {block}",
                         marker=dict(size=6, color=np.abs(ev), colorscale=SEQUENTIAL, showscale=False),
                         hovertemplate="λ = %{x:.3f} %{y:+.3f}i<br>|λ| = %{marker.color:.3f}<extra></extra>")]
    m = max(1.1, r * 1.1)
    verdict = "> 1: powers of W grow" if r > 1 else "< 1: powers of W shrink" if r < 1 else "= 1"
    return _layout(traces, f"Eigenvalues of {escape(block)}, layer {layer}<br><sup>ρ = {r:.3g} {verdict}</sup>",
                   height=480, xaxis=_axis("Re λ", range=[-m, m], zeroline=True),
                   yaxis=_axis("Im λ", range=[-m, m], scaleanchor="x", scaleratio=1, zeroline=True),
                   **LEGEND_BELOW)


#: For the narrow side charts: the legend under the x-axis title, so in a narrow column its
#: wrapped lines never climb into the title (and the title stays clear of the modebar).
LEGEND_BELOW = dict(legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, font=dict(size=11)),
                    margin=dict(b=110))


def singular_values_figure(spectrum: Spectrum, layer: int = 0, block: str | None = None) -> go.Figure:
    """Singular values of one W_hh block, descending, with the line σ = 1."""
    block = block or spectrum.main
    bs = spectrum.blocks[layer][block]
    sv = bs.singular_values.numpy()
    trace = go.Scatter(x=np.arange(1, len(sv) + 1), y=sv, mode="lines+markers" if len(sv) <= 64 else "lines",
                       name=f"σ_i of {block}", hovertemplate="σ_%{x} = %{y:.4g}<extra></extra>")
    return _layout([trace], f"Singular values of {escape(block)}, layer {layer}<br><sup>‖W‖₂ = σ₁ = "
                        f"{bs.spectral_norm:.3g}</sup>", height=320, xaxis=_axis("i"),
                   yaxis=_axis("singular value σ_i", rangemode="tozero"), **hline(1.0, "σ = 1", "gray"))
