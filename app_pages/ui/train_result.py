"""The Train view's samples panel, its sample prefix and what it offers once a run is paused or done:
the latest and the best-validation weights, each labelled with its step, opened in Hidden states on
the text the model was trained on (issue 28, items 5 and 6)."""

from __future__ import annotations

import streamlit as st

from app_pages.ui import goto
from app_pages.ui.lecture import hidden
from app_pages.ui.trained import KEPT, RUN_KEY, register_trained, session_id, training_pool
from rnnviz.training.run import OPEN_CHARS, Snapshot
from rnnviz.training.samples import BEST, DEFAULT_PREFIX, LATEST, MAX_PREFIX, TEMPERATURE, Sample

#: Where "Open" goes: Hidden states (the default view's URL path).
HIDDEN_STATES = ""
SHOWN_SAMPLES = 8


def prefix() -> str:
    """The sample prefix as the widget holds it now (at click time in a callback)."""
    return st.session_state.get("tr_prefix") or DEFAULT_PREFIX


def _prefix_changed() -> None:
    rid = st.session_state.get(RUN_KEY)
    if rid is not None:
        training_pool().set_prefix(rid, session_id(), prefix())


def prefix_input() -> None:
    """The text the samples start from; a change applies to the run at once (its next samples, or,
    once it is paused or done, a new sample from each set of weights)."""
    st.text_input("Samples start from", DEFAULT_PREFIX, max_chars=MAX_PREFIX, key="tr_prefix", **KEPT,
                  on_change=_prefix_changed,
                  help="The prefix every sample continues, shown «marked» before what the model wrote. "
                       "Change it any time: the next samples start from it (after training, each set "
                       "of weights writes a new sample at once). Press Enter to apply.")


def _shown(text: str) -> str:
    return text.replace("\n", "⏎").replace("\t", "⇥")


def sample_line(s: Sample) -> str:
    """One sample: its step, the weights that wrote it, the «marked» prefix and the continuation."""
    return f"step {s.step:>6} · {s.weights:<{len(BEST)}} │ «{_shown(s.prefix)}»{_shown(s.text)}"


def samples_panel(snap: Snapshot) -> None:
    st.markdown(f"**Samples** (temperature {TEMPERATURE}, the same seed each time): the «prefix», then "
                f"what the model wrote. *{LATEST}*: the weights at that step; *{BEST}*: the weights "
                "with the lowest validation loss so far.")
    # Whole samples, wrapped (#28: lines cut at 200 characters showed only the memorised opening).
    st.code("\n".join(sample_line(s) for s in snap.samples[-SHOWN_SAMPLES:]), language=None,
            wrap_lines=True)


def _open(key: str, text: str) -> None:
    """Open the model ``key`` in Hidden states on ``text`` (set before the sidebar draws them)."""
    st.session_state["ckpt"] = key
    st.session_state["text"] = text
    st.session_state["preset"] = st.session_state["_last_preset"] = "(custom)"
    goto.go(HIDDEN_STATES)


def opened_on(snap: Snapshot) -> str:
    """Which text Hidden states traces after training, in words."""
    n = len(snap.trained_text)
    if n >= OPEN_CHARS:
        return f"the first {n:,} characters of the text it was trained on (its training part)"
    return f"the text it was trained on: its training part, {n:,} characters (the held-out 10 % is not in it)"


def finished(snap: Snapshot) -> None:
    """Register both sets of weights in this session and offer them: open in Hidden states, download."""
    c = snap.config
    base = f"{c['corpus']} {c['cell']} {c['layers']}×{c['hidden']}"
    # which weights first: the sidebar's picker shows the start of the label
    latest = register_trained(snap.latest_checkpoint, f"step {snap.step:,} {LATEST}: {base}", (snap.run_id, LATEST))
    best = register_trained(snap.checkpoint, f"step {snap.best_step:,} {BEST}: {base}", (snap.run_id, BEST))
    st.success(f"Both sets of weights are now checkpoints of this session, in the sidebar's Checkpoint "
               f"list for every view: **{LATEST}** (step {snap.step:,}, which wrote the last samples) and "
               f"**{BEST}** (step {snap.best_step:,}, the lowest validation loss).")
    c1, c2 = st.columns(2)
    c1.button(f"Open {LATEST} (step {snap.step:,})", key="tr_open_latest", on_click=_open,
              args=(latest, snap.trained_text), type="primary", use_container_width=True)
    c2.button(f"Open {BEST} (step {snap.best_step:,})", key="tr_open_best", on_click=_open,
              args=(best, snap.trained_text), type="primary", use_container_width=True)
    st.caption(f"Both open in Hidden states on {opened_on(snap)}.")
    with hidden("export", "train-weights"):
        c1, c2 = st.columns(2)
        for col, data, key, which in ((c1, snap.latest_checkpoint, latest, LATEST),
                                      (c2, snap.checkpoint, best, BEST)):
            col.download_button(f"Download {which} .safetensors", data, key=f"tr_download_{which[:4]}",
                                file_name=f"rnnviz-trained-{key[7:15]}.safetensors",
                                mime="application/octet-stream", use_container_width=True)
