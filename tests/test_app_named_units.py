"""Hidden states names units only where the checkpoint's scorecard says they beat the controls
(app_pages.ui.scorecard.checked_names), and the view still renders with and without a scorecard."""

from __future__ import annotations

from types import SimpleNamespace

from streamlit.testing.v1 import AppTest

import app_pages.ui.scorecard as S
from tests.conftest import REPO
from tests.test_app_units import app_env  # noqa: F401 (the fixture: tiny checkpoints and corpus)

CTX = SimpleNamespace(ref=None, model_key="x")


def test_named_units_filtered_by_verdict(monkeypatch):
    named = {30: "paren depth", 5: "vowel (low)", 7: "whitespace"}
    monkeypatch.setattr(S, "shipped_verdicts", lambda ref, key: None)
    same, note = S.checked_names(CTX, "layer0.c", named)
    assert same == named and "Not checked" in note
    verdicts = {"paren_depth": {"layer0.c[30]": "causal"}, "vowel": {"layer0.c[5]": "correlational"},
                "whitespace": {"layer0.h[7]": "causal"}}
    monkeypatch.setattr(S, "shipped_verdicts", lambda ref, key: verdicts)
    kept, note = S.checked_names(CTX, "layer0.c", named)
    assert kept == {30: "paren depth · causal", 5: "vowel (low) · correlational"}
    assert "causal or correlational" in note


def test_hidden_states_renders(app_env):  # noqa: F811
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.switch_page("app_pages/hidden_states.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
