"""The Gradients view on a model whose norm curve goes to the heavy lane (a 2 × 256 LSTM, #30): the
curve is computed before the Jacobian chain and the gradient map are queued there (queued after them,
it waited for both, and on a busy machine past its deadline). Checked here: the premise (the curve's
estimate puts it in the heavy lane) and that the curve is drawn in the page's first run with no
"stopped" warning (the chain and the map may still be pending); the order itself is not observed."""

from __future__ import annotations

import rnnviz
from app_pages.ui.work import LANES
from rnnviz.checkpoint import CHECKPOINT_DIR
from rnnviz.serving import cost

from .conftest import app_on, chart_specs, open_view

TEXT = ("the time traveller for so it will be convenient to speak of him was expounding a recondite "
        "matter to us his grey eyes shone and twinkled and his usually pale face was flushed and animated ") * 3


def test_a_heavy_lane_curve_is_drawn_in_the_first_run(monkeypatch):
    model = rnnviz.load_model("timemachine-lstm-2layer")          # the shipped 2 × 256 LSTM
    assert LANES.lane(cost.estimate("norm_curve", model.config, 200)) == "heavy"   # the premise
    at = open_view(app_on(CHECKPOINT_DIR, monkeypatch), "app_pages/gradients.py", TEXT,
                   ckpt="timemachine-lstm-2layer", **{"gr.len": "200"})
    titles = [c["layout"]["title"]["text"] for c in chart_specs(at)]
    assert titles[0].startswith("Gradient norm vs distance"), titles
    assert not [w.value for w in at.warning if "stopped" in w.value]
