"""The Predictions view's n-gram baseline card under Streamlit's AppTest: the table of n-gram and
RNN nats/char on the typed text and the RNN − 5-gram coloured text; a model without a corpus gets a
message, never a stack trace."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from tests.test_app_units import app_env  # noqa: F401 (the fixture: tiny checkpoints and corpus)


def run_predictions(ckpt: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.switch_page("app_pages/predictions.py")
    at.query_params["ckpt"] = ckpt
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_baseline_card_compares_ngrams_with_the_rnn(app_env):  # noqa: F811
    at = run_predictions("timemachine-lstm")
    assert "Baseline: what the last few characters alone predict" in [h.value for h in at.subheader]
    table = at.dataframe[-1].value
    assert list(table["model"]) == ["1-gram", "2-gram", "3-gram", "4-gram", "5-gram", "RNN (lstm)"]
    assert (table["nats/char on this text"] > 0).all()
    assert any("RNN − 5-gram" in str(h.proto) for h in at.get("html"))


def test_baseline_card_without_corpus_is_a_message(app_env):  # noqa: F811
    at = run_predictions("tiny-gru")
    assert any("No n-gram baseline" in i.value for i in at.info)
