"""#28, Train after the run: "Open" offers the latest and the best-validation weights, each labelled
with its step, both opening in Hidden states (distinct models) on the text the model was trained
on; the samples say which weights wrote them and start from a prefix the teacher can change."""

from __future__ import annotations

from .test_app_train import TEXT, TINY, ckpt_dir, new_session, ok, paste, poll, samples  # noqa: F401

SHORT = {**TINY, "tr_steps": 60}


def done(at) -> bool:
    return any("checkpoints of this session" in s.value for s in at.success)


def opened(at, key: str):
    """Click the Train view's button ``key``; return the context Hidden states was drawn with."""
    at.button(key=key).click().run()
    ok(at)
    assert at.title[0].value == "Hidden states"
    return at.session_state["rnnviz_ctx"]


def test_open_offers_latest_and_best_weights_with_their_steps(new_session):
    at = new_session()
    paste(at, TEXT, **SHORT)
    at.text_area(key="text").input("some sidebar text, not the training paragraph").run()
    at.button(key="tr_train").click().run()
    poll(at, done)
    history = at.session_state["train_last"].history
    best = min(history, key=lambda r: (r["val_loss"], r["step"]))["step"]
    assert at.button(key="tr_open_latest").label == "Open latest (step 60)"
    assert at.button(key="tr_open_best").label == f"Open best validation (step {best})"
    assert int(len(TEXT) * 0.9) > 2000                   # the training part, cut to the link's 2,000
    train_part = TEXT[:2000]
    assert "Both open in Hidden states on the first 2,000 characters of the text it was trained on" in \
        " ".join(c.value for c in at.caption)

    latest = opened(at, "tr_open_latest")
    assert latest.model.provenance["weights"] == "latest" and latest.model.provenance["steps"] == 60
    assert any("step 60 latest" in o for o in at.selectbox(key="ckpt").options)
    assert latest.text == train_part and latest.trace is not None       # the training paragraph
    at.switch_page("app_pages/train.py")
    at.run()
    ok(at)
    best_ctx = opened(at, "tr_open_best")
    assert best_ctx.model.provenance["weights"] == "best validation"
    assert best_ctx.model.provenance["steps"] == best
    assert best_ctx.ref != latest.ref and best_ctx.model_key != latest.model_key    # caches never mix
    assert best_ctx.text == train_part
    assert at.session_state["rnnviz_ctx"].model.config.hidden_size == TINY["tr_hidden"]


def test_samples_say_their_weights_and_start_from_the_teachers_prefix(new_session):
    at = new_session()
    assert at.text_input(key="tr_prefix").value == "the "               # short, not the text's opening
    paste(at, TEXT, **SHORT)
    at.text_input(key="tr_prefix").input("his grey ")                  # typed just before the click
    at.button(key="tr_train").click().run()
    poll(at, done)
    lines = samples(at).splitlines()
    assert lines and all("«his grey »" in line for line in lines)
    assert all(" · latest " in line for line in lines[:-1])
    best = at.session_state["train_last"].best_step
    assert lines[-1].startswith(f"step {best:>6} · best validation │ «his grey »")
    at.text_input(key="tr_prefix").input("was ").run()                 # after training: a new pair
    ok(at)
    lines = samples(at).splitlines()
    assert lines[-2].startswith("step     60 · latest ") and "«was »" in lines[-2]
    assert lines[-1].startswith(f"step {best:>6} · best validation │ «was »")


def test_a_lost_switch_to_hidden_states_is_made_again_a_bounded_number_of_times(new_session):
    """"Open" asks for Hidden states; a rerun the browser asks for before the switch starts (a
    fragment's timer, a widget) is folded into it with its own page, so the next run can be the
    Train view again. That run switches again (app_pages/ui/goto.py), and forgets the wish once
    Hidden states has run, or after MAX_TRIES switches."""
    from app_pages.ui import goto
    at = new_session()                                   # on the Train view
    at.session_state[goto.KEY] = ("", 1)                 # asked for, switched once, the switch lost
    at.run()
    ok(at)
    assert at.title[0].value == "Hidden states"
    assert goto.KEY not in at.session_state              # arrived: forgotten
    at.switch_page("app_pages/train.py")
    at.run()
    assert at.title[0].value == "Train"                  # no wish: the Train view stays
    at.session_state[goto.KEY] = ("", goto.MAX_TRIES)    # tried enough: given up, not a loop
    at.run()
    assert at.title[0].value == "Train" and goto.KEY not in at.session_state
