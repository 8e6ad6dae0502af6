"""#28 item 3: the Train run belongs to the session, not the view. Start a run, visit two other
views, come back: the run is there (it went on), with its curves, samples and settings."""

from __future__ import annotations

from .test_app_train import TEXT, TINY, chart, ckpt_dir, new_session, ok, paste, poll, samples, step_of  # noqa: F401


def test_leaving_train_keeps_the_run_its_panel_and_settings(new_session):
    at = new_session()
    paste(at, TEXT, **TINY)
    at.button(key="tr_train").click().run()
    ok(at)
    poll(at, lambda a: step_of(a) >= 5)
    left_at = step_of(at)
    for page in ("app_pages/hidden_states.py", "app_pages/gradients.py"):
        at.switch_page(page)
        at.run()
        ok(at)
        assert at.session_state["train_run"] is not None          # not let go of
    at.switch_page("app_pages/train.py")
    at.run()
    ok(at)
    # the settings are the ones the run was started with
    assert at.text_area(key="tr_paste").value == TEXT
    assert at.select_slider(key="tr_hidden").value == TINY["tr_hidden"]
    assert at.number_input(key="tr_T").value == TINY["tr_T"] and at.number_input(key="tr_B").value == TINY["tr_B"]
    assert not [w.value for w in at.warning if "Session State" in str(w.value)]
    # the run went on while the class looked at other views, and its panel is back
    poll(at, lambda a: step_of(a) > left_at and samples(a).count("step") >= 1)
    assert chart(at, "train-loss")["data"][0]["x"]
    at.button(key="tr_stop").click().run()
    ok(at)


def test_a_short_paragraph_trains_at_the_defaults_and_the_page_says_so_before_the_click(new_session):
    at = new_session()
    paste(at, TEXT[:2000])                              # defaults: B = 32, T = 64
    assert any("it trains with B = 16, T = 64" in i.value for i in at.info)
    at.button(key="tr_train").click().run()
    ok(at)
    assert not [e.value for e in at.error if "too short" in e.value]
    assert at.session_state["train_run"] is not None
    at.button(key="tr_stop").click().run()


def test_samples_are_shown_whole(new_session):
    at = new_session()
    paste(at, TEXT, **TINY)
    at.button(key="tr_train").click().run()
    poll(at, lambda a: samples(a).count("step") >= 1)
    code = at.code[-1]
    assert code.proto.wrap_lines and all(len(line) > 0 for line in samples(at).splitlines())
    at.button(key="tr_stop").click().run()


def test_the_page_says_when_the_run_memorises(new_session, monkeypatch):
    """A snapshot whose validation stalled while training fell gets the memorising note."""
    at = new_session()
    paste(at, TEXT, **TINY)
    at.button(key="tr_train").click().run()
    poll(at, lambda a: step_of(a) >= 1)
    from app_pages.ui.trained import training_pool
    real = training_pool().snapshot

    def stalled(run_id, session):
        s = real(run_id, session)
        if s is not None:
            s.history = [{"step": 100, "train_loss": 2.0, "val_loss": 1.60},
                         {"step": 200, "train_loss": 1.2, "val_loss": 1.58},
                         {"step": 300, "train_loss": 0.6, "val_loss": 1.62},
                         {"step": 400, "train_loss": 0.1, "val_loss": 1.65}]
        return s
    monkeypatch.setattr(training_pool(), "snapshot", stalled)
    at.run()
    ok(at)
    assert any("memorising the text" in w.value and "since step 200" in w.value for w in at.warning)
    monkeypatch.undo()
    at.button(key="tr_stop").click().run()
