"""Every view and every URL key of the app, declared once.

:data:`VIEWS` is the registry of views (title, URL path, key prefix, page file): app.py's
``st.navigation``, the URL layer (:func:`app_pages.ui.url.view_params`), the tests and the load tools
read it, so a new view is one line here (and its keys below). A URL key has its widget, type,
default and range. A field that depends on the model or the text is a function of the ``limits`` the view passes to
:func:`app_pages.ui.url.use` (``lim("T")`` reads ``limits["T"]``). The URL fuzz test
(tests/test_url_fuzz.py) tries hostile values on every key listed here, view by view (:data:`PAGE_OF_PREFIX`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from app_pages.ui.text import DEFAULT_TEXT, MAX_PAGE_CHARS, MAX_URL_TEXT
from app_pages.ui.pin import SESSION_KEY, URL_KEY, link_pin
from app_pages.ui.url import Checked, Choice, Flag, Float, Int, Multi, Param, Text
from rnnviz.features import MAX_PATTERN_CHARS
from rnnviz.units.names import unit_name


@dataclass(frozen=True)
class View:
    """One view of the app. ``page``: its script, relative to the repository root; ``url_path``:
    its path in the URL ("" for the default view, the one the app opens on); ``prefix``: the prefix
    of its URL keys ("" for a view with none)."""

    title: str
    page: str
    url_path: str
    prefix: str = ""

    @property
    def default(self) -> bool:
        return self.url_path == ""


#: Every view, in the sidebar's order.
VIEWS: tuple[View, ...] = (
    View("Hidden states", "app_pages/hidden_states.py", "", "hs."),
    View("Predictions", "app_pages/predictions.py", "predictions", "pr."),
    View("Gradients", "app_pages/gradients.py", "gradients", "gr."),
    View("Step-through", "app_pages/step_through.py", "step", "st."),
    View("Compare", "app_pages/compare.py", "compare", "cmp."),
    View("Units", "app_pages/units.py", "units", "units."),
    View("Lesson §6.3", "app_pages/lesson.py", "lesson", "lesson."),
    View("Generate", "app_pages/generate.py", "generate", "gen."),
    View("Train", "app_pages/train.py", "train"),
)
#: The URL-key prefixes of the views (a view drops the other views' keys from the URL).
VIEW_PREFIXES: tuple[str, ...] = tuple(v.prefix for v in VIEWS if v.prefix)


def view_of(page: str) -> View:
    """The view whose script is ``page`` (KeyError for none)."""
    for v in VIEWS:
        if v.page == page:
            return v
    raise KeyError(page)


def lim(key: str, minus: int = 0) -> Callable[[dict], Any]:
    """The view's ``limits[key]`` (minus ``minus``)."""
    return lambda m: m[key] - minus if minus else m[key]


def _range(key: str) -> Callable[[dict], range]:
    return lambda m: range(m[key])


_DECLARED: tuple[Param, ...] = (
    # the sidebar (every view)
    Flag("lecture", "lecture", False),
    Choice("ckpt", "ckpt", lim("default"), choices=lim("ckpts")),
    Text("text", "text", DEFAULT_TEXT, max_len=MAX_PAGE_CHARS, url_len=MAX_URL_TEXT),
    # the pinned unit or feature ("L0 h[203]", "L0 feat[17]"), checked against the view's model by pin.py
    Checked(URL_KEY, SESSION_KEY, None, parser=link_pin),
    # Hidden states
    Choice("hs.layer", "hs_layer", 0, choices=_range("L")),
    Choice("hs.what", "hs_kind", "h", choices=lim("kinds")),
    # default "pattern": similar units next to each other, so the heatmap shows bands, not noise
    Choice("hs.order", "hs_order", "pattern", choices=lim("orders")),
    Choice("hs.win", "hs_width", lambda m: m["widths"][0], choices=lim("widths")),
    Int("hs.start", "hs_start", 0, lo=0, hi=lim("last_start")),
    Choice("hs.tstep", "hs_tstep", lambda m: m["tsteps"][-1], choices=lim("tsteps")),  # training step
    Choice("hs.unit", "hs_unit", lim("unit"), choices=lambda m: {u: unit_name(m.get("layer", 0), m.get("kind", "h"), u) for u in range(m["H"])}),
    # Predictions
    Int("pr.k", "pr_k", 5, lo=1, hi=lim("k_max")),
    Choice("pr.win", "pr_width", 40, choices=lim("widths")),
    Flag("pr.log", "pr_log", False),
    Int("pr.start", "pr_start", 0, lo=0, hi=lim("last_start")),
    Int("pr.step", "pr_step", lim("start"), lo=0, hi=lim("T", 1)),
    # Step-through
    Int("st.t", "st_t", 0, lo=0, hi=lim("T", 1)),
    # a layer, or "all": every layer at the step (multi-layer models)
    Choice("st.layer", "st_layer", 0, choices=lambda m: [*range(m["L"])] + (["all"] if m["L"] > 1 else [])),
    # Generate
    Text("gen.prefix", "gen_prefix", lim("prefix"), max_len=500),
    Float("gen.temp", "gen_temp", 1.0, lo=0.0, hi=3.0, step=0.05),
    Int("gen.len", "gen_len", 200, lo=1, hi=2_000),
    Int("gen.topk", "gen_topk", 0, lo=0, hi=lim("V")),
    Int("gen.seed", "gen_seed", 0, lo=0, hi=2**31 - 1),
    Choice("gen.tstep", "gen_tstep", lambda m: m["tsteps"][-1], choices=lim("tsteps")),  # training step
    # Gradients
    Int("gr.len", "g_len", 200, lo=2, hi=MAX_PAGE_CHARS),
    Choice("gr.loss", "g_loss", "last", choices=lim("losses")),
    Int("gr.step", "g_step", 0, lo=0, hi=MAX_PAGE_CHARS),
    Float("gr.scale", "g_scale", 1.0, lo=0.05, hi=5.0, step=0.05),
    Choice("gr.act", "g_act", "as trained", choices=lim("activations")),
    Int("gr.trunc", "g_trunc", 0, lo=0, hi=MAX_PAGE_CHARS),
    Float("gr.clip", "g_clip", 0.0, lo=0.0, hi=1e6),
    Float("gr.clipv", "g_clipv", 0.0, lo=0.0, hi=1e6),
    Choice("gr.layer", "g_layer", lim("L", 1), choices=_range("L")),
    # the layer the W_hh scale, truncation and clipping act on, or "all"
    Choice("gr.klayer", "g_klayer", "all", choices=lambda m: ["all", *range(m["L"])]),
    Choice("gr.tstep", "gr_tstep", lambda m: m["tsteps"][-1], choices=lim("tsteps")),
    # Compare
    Multi("cmp.models", "c_models", lim("default"), choices=lim("available"), max_items=3),
    Choice("cmp.state", "c_state", "top", choices=lim("layers")),
    Int("cmp.start", "c_start", 0, lo=0, hi=lim("last_start")),
    Int("cmp.units", "c_units", 64, lo=8, hi=128, multiple=8),
    Choice("cmp.what", "c_what", "models", choices=("models", "layers")),   # checkpoints, or one model's layers
    Choice("cmp.deep", "c_deep", lim("default"), choices=lim("deep")),
    Choice("cmp.kind", "c_kind", "h", choices=lim("kinds")),
    # Units
    Choice("units.tab", "u_tab", lambda m: m["tabs"][0], choices=lim("tabs")),
    Choice("units.src", "u_src", "corpus", choices=("corpus", "typed", "own", "stdlib")),
    Choice("units.n", "u_n", lim("n"), choices=lim("sizes")),
    Choice("units.feat", "u_feat", "vowel", choices=lim("features")),
    Text("units.re", "u_regex", r"th\w*", max_len=MAX_PATTERN_CHARS),
    Choice("units.by", "u_by", "auc", choices=("auc", "r")),
    Int("units.top", "u_top", 10, lo=3, hi=30),
    Choice("units.how", "u_how", "slider", choices=("slider", "find")),
    Text("units.find", "u_find", "time", max_len=200),
    Int("units.a", "u_a", lambda m: min(4, m["T"] - 1), lo=0, hi=lim("T", 1)),
    Int("units.b", "u_b", lambda m: min(8, m["T"]), lo=1, hi=lim("T")),
    Flag("units.auto", "u_auto", True),
    Float("units.thr", "u_thr", 0.3, lo=0.0, hi=1.0, step=0.01),
    Float("units.frac", "u_frac", 1.0, lo=0.5, hi=1.0, step=0.05),
    Int("units.es", "u_es", 0, lo=0, hi=lim("T")),
    Int("units.ee", "u_ee", lambda m: min(1, m["T"]), lo=0, hi=lim("T")),
    Text("units.rep", "u_rep", lim("rep"), max_len=200),
    Choice("units.layer", "u_layer", 0, choices=_range("L")),
    Choice("units.kind", "u_kind", "h", choices=lim("kinds")),
    Int("units.unit", "u_unit", 0, lo=0, hi=lim("H", 1)),
    Choice("units.mode", "u_mode", "zero", choices=("zero", "clamp")),
    Float("units.val", "u_val", 1.0, lo=-100.0, hi=100.0),
    Multi("units.pca", "u_pca", lim("default"), choices=lim("states"), max_items=64),
    Choice("units.tstep", "units_tstep", lambda m: m["tsteps"][-1], choices=lim("tsteps")),  # training step
    # Lesson §6.3
    Choice("lesson.tab", "l_tab", lambda m: m["tabs"][0], choices=lim("tabs")),
    Choice("lesson.act", "l_act", "relu", choices=lim("acts")),
    Choice("lesson.toy", "l_preset", "dead", choices=lim("presets")),
    Int("lesson.h", "l_wh", 4, lo=2, hi=16),
    Int("lesson.steps", "l_ws", 100, lo=0, hi=400, multiple=10),
    Int("lesson.seed", "l_wseed", 0, lo=0, hi=999),
    Int("lesson.pos", "l_cfpos", 0, lo=0, hi=lim("top")),
    Text("lesson.char", "l_cfchar", lim("char"), min_len=1, max_len=1),
)

#: URL key → its declaration.
PARAMS: dict[str, Param] = {p.name: p for p in _DECLARED}

#: The page of each view's URL prefix ("" : the sidebar, read on every page: the default view's).
PAGE_OF_PREFIX = {"": next(v.page for v in VIEWS if v.default),
                  **{v.prefix: v.page for v in VIEWS if v.prefix}}

