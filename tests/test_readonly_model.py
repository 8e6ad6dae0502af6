"""The cached, shared model is read-only (issue 7): after every view and every knob has been exercised
(AppTest over all pages of app.py's navigation, every widget pushed to its extremes, every tab), the
parameters of every shipped model are bit-identical to the file, and no parameter was even modified
in place and restored (the same holds for every trace in the shared trace cache) (PyTorch's per-tensor version counter is unchanged): a view that scaled W_hh
"temporarily" would corrupt other sessions running at the same moment.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
from streamlit.proto.WidgetStates_pb2 import WidgetState

import rnnviz

from app_pages.ui.params import VIEWS

from . import hostile
from .conftest import REPO

PAGES = [v.page for v in VIEWS]   # every view (app_pages/ui/params.py)
#: A text long enough for the knobs to matter (windows, steps, what-if over many steps).
TEXT = ("the time traveller as we shall call him for now was explaining a curious "
        "idea to us. his dark eyes were bright, and his face was eager and flushed. ") * 2
MAX_ACTIONS_PER_PAGE = 30


def _fingerprint(model) -> tuple[str, dict[str, int]]:
    """(sha256 of every parameter and buffer's bytes, name → in-place version counter)."""
    h = hashlib.sha256()
    versions = {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(name.encode())
        h.update(t.detach().contiguous().view(torch.uint8).numpy().tobytes())
        versions[name] = t._version
    return h.hexdigest(), versions


def _widgets(at):
    """Every interactive widget on the current run, in page order (download buttons excluded)."""
    out = []
    for kind in ("slider", "select_slider", "number_input", "selectbox", "radio", "multiselect",
                 "checkbox", "toggle", "button", "segmented_control", "pills", "text_input"):
        for w in getattr(at, kind):
            if not getattr(w.proto, "disabled", False):  # a user cannot touch disabled ones
                out.append((kind, w))
    return out


def _extremes(kind, w) -> list:
    """Values to push a widget to: its ends, or its last options (indices for option widgets)."""
    if kind == "slider":
        lo, hi = w.min, w.max
        if isinstance(w.value, (list, tuple)):
            return [(lo, hi), (lo, lo)]
        return [hi, lo]
    if kind == "number_input":
        vals = [v for v in (w.max,) if v is not None]
        return vals or ([w.value * 5] if isinstance(w.value, (int, float)) else [])
    if kind in ("select_slider", "selectbox", "radio", "segmented_control", "pills"):
        n = len(w.options)
        return [n - 1] if n > 1 else []
    if kind == "multiselect":
        return ["all"]
    if kind in ("checkbox", "toggle"):
        return [not w.value]
    if kind == "button":
        return ["click"]
    if kind == "text_input":
        return ["the", "ÆØ<script>x</script>"]
    return []


def _stage(w, fill) -> None:
    """Stage a widget value exactly as the browser sends it (formatted option labels), which
    AppTest's own setters cannot do when a view's format_func only maps raw options."""
    base = type(w)

    class Staged(base):
        @property
        def _widget_state(self):
            ws = WidgetState()
            ws.id = self.id
            fill(ws)
            return ws

    w.__class__ = Staged
    w._value = "staged"


def _apply(kind, w, value) -> None:
    opts = list(getattr(w, "options", []))
    if kind == "button":
        w.click()
    elif kind in ("selectbox", "radio"):
        _stage(w, lambda ws: setattr(ws, "string_value", opts[value]))
    elif kind in ("select_slider", "segmented_control", "pills"):
        _stage(w, lambda ws: ws.string_array_value.data.extend([opts[value]]))
    elif kind == "multiselect":
        chosen = opts[:8] if value == "all" else []
        _stage(w, lambda ws: ws.string_array_value.data.extend(chosen))
    else:
        w.set_value(value)


def _exercise_page(at, page: str, log: list) -> None:
    """Push every widget of ``page`` (and of each of its tabs) to its extremes, one at a time."""
    at.switch_page(page).run()
    assert not at.exception, (page, [e.value for e in at.exception])
    tab_states = _tab_keys(at)
    rounds = [None] + [(k, label) for k, labels in tab_states.items() for label in labels]
    actions = 0
    for tab in rounds:
        if tab is not None:
            at.session_state[tab[0]] = tab[1]
            at.run()
            log.append(f"{page} tab {tab[1]}")
        done = set()
        while actions < MAX_ACTIONS_PER_PAGE:
            todo = [(kind, w) for kind, w in _widgets(at)
                    if (kind, w.label, getattr(w, "key", None)) not in done
                    and not (w.key or "").startswith(("ckpt", "preset", "text", "lecture"))]
            if not todo:
                break
            kind, w = todo[0]
            done.add((kind, w.label, getattr(w, "key", None)))
            for value in _extremes(kind, w):
                try:
                    _apply(kind, w, value)
                except (ValueError, IndexError, TypeError) as err:  # value the widget rejects
                    log.append(f"{page}: skip {kind} {w.label!r}={value!r}: {err}")
                    continue
                at.run()
                actions += 1
                log.append(f"{page}: {kind} {w.label!r} = {value!r}")
                assert not at.exception, (page, kind, w.label, value, [e.value[:500] for e in at.exception])
                # the widget list may have changed; look it up again
                match = [x for k, x in _widgets(at) if k == kind and x.label == w.label]
                if not match:
                    break
                w = match[0]


def _tab_keys(at) -> dict[str, list[str]]:
    """Session-state keys that select a tab (value is one of the tab labels) → the other labels."""
    labels = [t.label for t in at.tabs]
    if not labels:
        return {}
    return {key: [lab for lab in labels if lab != value] for key, value in at.session_state.items()
            if isinstance(value, str) and value in labels}


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return hostile.write_tiny_checkpoints(tmp_path_factory.mktemp("ckpts"))


def test_shared_models_are_bit_identical_after_every_view_and_knob(monkeypatch, ckpt_dir):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app_pages.ui import cache

    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpt_dir))
    st.cache_data.clear()
    st.cache_resource.clear()
    names = [i.name for i in rnnviz.list_checkpoints(ckpt_dir)]
    assert len(names) == 3
    # The very objects the app shares between sessions (cache_resource), loaded before any view.
    models = {n: cache.shipped_model(n) for n in names}
    before = {n: _fingerprint(m) for n, m in models.items()}
    on_disk = {n: _fingerprint(rnnviz.load_model(ckpt_dir / f"{n}.safetensors"))[0] for n in names}
    assert {n: f[0] for n, f in before.items()} == on_disk

    log: list[str] = []
    for ckpt in names:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        at.query_params["ckpt"] = ckpt
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        at.text_area(key="text").set_value(TEXT)
        for page in PAGES:
            if ckpt == "timemachine-lstm":   # every knob on the richest cell (gates, cell state)
                _exercise_page(at, page, log)
            else:                            # the other cells: every view with its defaults
                at.switch_page(page).run()
                assert not at.exception, (ckpt, page, [e.value[:500] for e in at.exception])
        # The app still hands out the same objects (not reloaded copies that hide a mutation).
        assert cache.shipped_model(ckpt) is models[ckpt]

    after = {n: _fingerprint(m) for n, m in models.items()}
    for n in names:
        assert after[n][0] == before[n][0], f"{n}: parameters changed"
        changed = {k: (before[n][1][k], v) for k, v in after[n][1].items() if v != before[n][1][k]}
        assert not changed, f"{n}: modified in place (and maybe restored): {changed}"
        assert not models[n].training and not any(p.requires_grad for p in models[n].parameters())
    # The traces the app shares between sessions (cache.trace_store, no copy per hit) are untouched
    # too: bit-identical to a fresh trace. Their tensors are inference tensors (rnnviz.trace runs
    # under torch.inference_mode), which torch refuses to modify in place outside inference mode.
    shared_traces = [(k, tr) for k, tr in cache.trace_store().snapshot() if k[0] in names]
    assert len(shared_traces) >= 3
    for (key, _, text), tr in shared_traces:
        fresh = rnnviz.trace(cache.shipped_model(key), text)
        assert tr.names() == fresh.names()
        for name in fresh.names():
            a, b = tr[name], fresh[name]
            assert a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8)), (key, name)
            assert a.is_inference(), f"{key} {name}: not an inference tensor"
    # The knobs were really exercised on every page.
    for page in PAGES:
        assert any(line.startswith(page) for line in log), page
    assert sum(" = " in line for line in log) >= 20, log


def test_fingerprint_catches_a_restored_in_place_edit():
    """Control for the test above: a 'temporary' W_hh × 5 that is undone leaves the bytes equal but
    the version counter moved, and a real edit changes the hash."""
    model = rnnviz.load_model_bytes(hostile.valid_checkpoint())
    digest, versions = _fingerprint(model)
    w = model.layers[0].weight_hh_l0
    with torch.no_grad():
        saved = w.clone()
        w.mul_(5.0)
        w.copy_(saved)
    digest2, versions2 = _fingerprint(model)
    assert digest2 == digest and versions2 != versions
    with torch.no_grad():
        w[0, 0] += 1.0
    assert _fingerprint(model)[0] != digest
