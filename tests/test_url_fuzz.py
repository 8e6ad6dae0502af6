"""Hostile links (issue 15): every URL key of every view, taken from the declarations in
app_pages/ui/params.py (a new key is covered without touching this file), gets wrong types, empty,
negative, zero, 40-digit integers, 1e308, 1e-320, nan, inf, 100 kB strings, unicode and repeated
keys. No exception element; a value that is not used as given is named on the page; no hang.

Two tiers, to stay under a minute: a few AppTest runs per view with every key set, the kinds of bad
value spread over the keys so that each run tries many kinds and every kind is tried on each view;
and the full matrix (every key × every kind) through the validation layer itself, under the limits
the page runs checked each key against. Plus targeted single-key checks, and a view's settings
surviving a visit to another view (issue 16)."""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import rnnviz
from app_pages.ui.params import PAGE_OF_PREFIX, PARAMS
from app_pages.ui.url import Multi, Text, from_link

from .conftest import REPO, tiny_model


def url_keys(prefix: str) -> list[str]:
    """The URL keys of the view with this prefix ("": the sidebar's)."""
    if prefix:
        return [k for k in PARAMS if k.startswith(prefix)]
    return [k for k in PARAMS if "." not in k]


TEXT = ("the time machine by h. g. wells\n" * 12)[:360]
BAD = {"word": "abc", "empty": "", "negative": "-1", "zero": "0", "huge": "1" * 40, "big": "1e308",
       "denormal": "1e-320", "nan": "nan", "inf": "-inf", "long": "x" * 100_000,
       "unicode": "ü€😀\u202e", "repeated": ["1", "2"]}
#: Kinds no number, flag or choice may accept.
NEVER_A_NUMBER = ("huge", "big", "denormal", "nan", "inf", "long", "repeated", "unicode")
#: Keys that decide what the page shows; set to a valid value so the other keys are reached.
STRUCTURE = {"units.tab": ("Unit finder", "Hypothesis", "Counterfactual", "Ablation", "Projection"),
             "units.src": ("typed",), "cmp.what": ("models", "layers")}


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_ckpts")
    for name, cell, layers, hidden in (("timemachine-lstm", "lstm", 2, 24), ("timemachine-gru", "gru", 1, 8),
                                       ("timemachine-rnn", "rnn_tanh", 1, 8)):
        rnnviz.save_checkpoint(tiny_model(cell, layers, hidden, text=TEXT), d / f"{name}.safetensors",
                               {"corpus": "not-here"})
    return d


@pytest.fixture
def app(ckpt_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpt_dir))
    monkeypatch.setenv("RNNVIZ_CORPORA", str(tmp_path))      # no corpus: Units uses the typed text
    st.cache_data.clear()
    st.cache_resource.clear()

    def new(page: str, params: dict) -> tuple[AppTest, float]:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        if page.endswith("step_through.py"):   # its url_path ("step") is not its file name: AppTest
            at.run()                            # finds it only once st.navigation has run
        at.switch_page(page)
        for k, v in params.items():
            at.query_params[k] = v
        t0 = time.perf_counter()
        at.run()
        return at, time.perf_counter() - t0
    return new


MAX_RUN_S = 30.0


def ignored_line(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption if "Ignored from the link" in c.value)


def named(line: str, key: str) -> bool:
    return any(f"{key}{sep}" in line for sep in ("=", " (given", ":"))


def used_as_given(param, value, raw) -> bool:
    """The link's text was taken as the setting (``value`` is the widget's value)."""
    if isinstance(raw, list):
        return False
    text = param.encode(value)
    if text == raw:
        return True
    try:
        return float(text) == float(raw)
    except ValueError:
        return False


def assignments(keys: list[str], runs: int) -> list[dict[str, str]]:
    """Runs of one view: key j of run r gets kind (j + r·n) mod K (a view of six keys or more
    gets every kind in two runs; the matrix below tries every kind on every key)."""
    kinds, n = list(BAD), len(keys)
    return [{k: kinds[(j + r * n) % len(kinds)] for j, k in enumerate(keys)} for r in range(runs)]


@pytest.fixture
def seen_limits(monkeypatch) -> dict[str, dict]:
    """The limits each URL key was last validated against in the app's runs: spies on
    ``url.from_link`` and on the ``check`` of every parameter type (the app keeps no record)."""
    from app_pages.ui import url
    seen: dict[str, dict] = {}

    def link_spy(param, values, limits):
        seen[param.name] = limits
        return from_link(param, values, limits)
    monkeypatch.setattr(url, "from_link", link_spy)
    for cls in {type(p) for p in PARAMS.values()}:
        def check_spy(self, value, limits, _real=cls.check):
            seen[self.name] = limits
            return _real(self, value, limits)
        monkeypatch.setattr(cls, "check", check_spy)
    return seen


@pytest.mark.parametrize("prefix", list(PAGE_OF_PREFIX))
def test_every_key_of_the_view_survives_every_bad_value(app, seen_limits, prefix):
    page, keys = PAGE_OF_PREFIX[prefix], url_keys(prefix)
    fuzzed = [k for k in keys if k not in STRUCTURE]
    base = {} if not prefix else {"text": TEXT}
    read: set[str] = set()
    limits = seen_limits
    runs = max([2] + [len(choices) for key, choices in STRUCTURE.items() if key in keys])
    for r, kinds in enumerate(assignments(fuzzed, runs)):
        params = {**base, **{k: BAD[kind] for k, kind in kinds.items()}}
        params.update({key: choices[r % len(choices)] for key, choices in STRUCTURE.items() if key in keys})
        at, seconds = app(page, params)
        assert not at.exception, (kinds, [e.value for e in at.exception])
        line = ignored_line(at)
        read |= set(at.session_state["_url_kept"]) & set(fuzzed)
        for key in set(at.session_state["_url_kept"]) & set(fuzzed):
            value = at.session_state[PARAMS[key].widget]
            check(key, kinds[key], value, named(line, key))
        assert seconds < MAX_RUN_S, f"{prefix} run {r}: {seconds:.1f} s"
    missing = set(fuzzed) - read
    assert not missing, f"keys never read by {page}: {sorted(missing)}"
    for key in fuzzed:                       # the full matrix, through the validation layer itself
        for kind in BAD:
            raw = BAD[kind]
            found, value, complaint = from_link(PARAMS[key], raw if isinstance(raw, list) else [raw],
                                                limits[key])
            if not found:
                value = None
            check(key, kind, value, complaint is not None)


def check(key: str, kind: str, value, was_named: bool) -> None:
    """A bad value of the link is either named on the page or a legal value used as given."""
    raw, param = BAD[kind], PARAMS[key]
    if was_named:
        return
    assert used_as_given(param, value, raw), f"{key}={raw!r:.40} ({kind}) silently became {value!r:.40}"
    textual = isinstance(param, (Text, Multi))
    assert kind not in NEVER_A_NUMBER or (textual and kind not in ("long", "repeated")), (key, kind)


def test_a_query_string_over_streamlits_limit_is_dropped_whole(app):
    at, _ = app("app_pages/hidden_states.py", {f"hs.{k}": "x" * 100_000 for k in ("layer", "what", "order",
                                                                                  "win", "unit", "start")})
    assert not at.exception and at.radio(key="hs_kind").value == "h"


def test_denormal_temperature_is_ignored_and_named(app):
    at, _ = app("app_pages/generate.py", {"gen.temp": "1e-320", "gen.len": "20"})
    assert not at.exception
    assert "gen.temp=1e\\-320 (must be a number 0–3)" in ignored_line(at)
    assert at.slider(key="gen_temp").value == 1.0
    assert at.query_params["gen.temp"] == "1.0" and at.query_params["gen.len"] == "20"


def test_huge_unit_index_is_ignored_quickly(app):
    at, seconds = app("app_pages/units.py", {"text": TEXT, "units.tab": "Ablation", "units.unit": "9" * 40})
    assert not at.exception and seconds < 30
    assert "units.unit=" in ignored_line(at) and at.number_input(key="u_unit").value == 0


def test_repeated_key_and_markup_in_a_value_are_named_literally(app):
    at, _ = app("app_pages/hidden_states.py", {"hs.layer": ["1", "0"], "hs.what": "**b**<i>x</i>"})
    line = ignored_line(at)
    assert "hs.layer (given 2 times)" in line
    assert "hs.what=\\*\\*b\\*\\*\\<i\\>x\\<" in line                 # Markdown-escaped
    assert at.selectbox(key="hs_layer").value == 0 and at.radio(key="hs_kind").value == "h"


def test_old_links_still_open_the_same_view(app):
    at, _ = app("app_pages/hidden_states.py", {"text": TEXT, "hs.layer": "1", "hs.what": "c",
                                               "hs.order": "variance", "hs.unit": "20", "hs.win": "120"})
    assert not at.exception and not ignored_line(at)
    assert (at.selectbox(key="hs_layer").value, at.radio(key="hs_kind").value) == (1, "c")
    assert (at.selectbox(key="hs_order").value, at.selectbox(key="hs_unit").value) == ("variance", 20)


def test_settings_survive_a_visit_to_another_view(app):
    at, _ = app("app_pages/hidden_states.py", {"text": TEXT})
    at.radio(key="hs_kind").set_value("c").run()
    at.selectbox(key="hs_order").set_value("variance").run()
    at.selectbox(key="hs_unit").set_value(20).run()
    at.switch_page("app_pages/predictions.py").run()
    assert not at.exception and "hs.what" not in at.query_params
    at.switch_page("app_pages/hidden_states.py").run()
    assert not at.exception
    assert at.radio(key="hs_kind").value == "c"
    assert at.selectbox(key="hs_order").value == "variance"
    assert at.selectbox(key="hs_unit").value == 20
    assert (at.query_params["hs.what"], at.query_params["hs.order"], at.query_params["hs.unit"]) == \
        ("c", "variance", "20")


def test_lesson_tab_is_in_the_link(app):
    at, _ = app("app_pages/lesson.py", {"lesson.tab": "(c) The four problems of §6.3.5"})
    assert not at.exception and not ignored_line(at)
    assert at.session_state["l_tab"] == "(c) The four problems of §6.3.5"
    assert at.query_params["lesson.tab"] == "(c) The four problems of §6.3.5"


def test_the_ignored_line_stays_for_the_visit_and_goes_with_the_view(tmp_path, monkeypatch):
    """A run the page starts by itself (a result drawn when ready) or a widget's rerun keeps the
    line naming the link's ignored values; another view does not show it."""
    from .conftest import app_on, open_view
    rnnviz.save_checkpoint(tiny_model("rnn_tanh", 1, 8), tmp_path / "timemachine-lstm.safetensors", {"corpus": "t"})
    at = open_view(app_on(tmp_path, monkeypatch), "app_pages/hidden_states.py", **{"hs.tstep": "zz"})
    assert named(ignored_line(at), "hs.tstep")
    at.run()
    assert named(ignored_line(at), "hs.tstep"), "the line went with a rerun of the same visit"
    at.switch_page("app_pages/predictions.py").run()
    assert not ignored_line(at)
    at.switch_page("app_pages/hidden_states.py").run()
    assert not ignored_line(at), "a later visit names only what its own link ignored"
