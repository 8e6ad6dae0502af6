"""Units without the corpus (issue 16 item 1): the finder's statistics shipped beside each
checkpoint, the sha256-pinned corpus fetch (a local http.server, never the network), and the Units
view on a machine where no corpus can be found."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import socket
import threading

import pytest
import torch
from streamlit.testing.v1 import AppTest

import rnnviz
from rnnviz import corpora
from rnnviz import units as U
from rnnviz.checkpoint import CHECKPOINT_DIR, list_checkpoints
from tests.conftest import REPO, tiny_model

CORPUS = ("the time traveller (as we shall call him for now) was explaining "
          "a curious idea to us. his dark eyes were bright and eager.\n") * 40


# ---------------------------------------------------------------- the statistics
def test_stats_rank_like_the_live_finder(tmp_path):
    model = tiny_model("lstm", layers=2, hidden=8, text=CORPUS)
    path = rnnviz.save_checkpoint(model, tmp_path / "m.safetensors", {"corpus": "x", "val_fraction": 0.5})
    model = rnnviz.load_model(path)
    U.write_unit_stats(model, path, CORPUS)
    stats = U.load_stats(model, path)
    assert stats is not None and stats.num_units == 32
    sample, _ = U.training_sample(model, full_text=CORPUS)
    index = U.build_index(model, sample)
    for feature in ("vowel", "position_in_word", "whitespace"):
        for by in ("auc", "r"):
            live, shipped = U.rank_units(index, feature, by=by, top=32), stats.rank(feature, by=by, top=32)
            assert shipped.label_rule == live.label_rule and shipped.n_positive == live.n_positive
            assert torch.allclose(shipped.r, live.r, atol=1e-4) and torch.allclose(shipped.auc, live.auc, atol=1e-4)
            key = (lambda s: abs(s.auc - 0.5)) if by == "auc" else (lambda s: abs(s.r))
            assert [key(s) for s in shipped.top] == pytest.approx([key(s) for s in live.top], abs=1e-4)
    with pytest.raises(U.UnitsError, match="constant"):      # no digits: the finder's own message
        stats.rank("digit")
    with pytest.raises(U.UnitsError, match="needs the sample text"):
        stats.rank("regex:th")


def test_stats_of_other_weights_or_garbage_are_ignored(tmp_path):
    model = tiny_model("gru", text=CORPUS)
    path = rnnviz.save_checkpoint(model, tmp_path / "g.safetensors", {"corpus": "x", "val_fraction": 0.5})
    model = rnnviz.load_model(path)
    assert U.load_stats(model, path) is None                  # no sidecar
    U.write_unit_stats(model, path, CORPUS)
    assert U.load_stats(model, path) is not None
    assert U.load_stats(tiny_model("gru", text=CORPUS, seed=1), path) is None   # retrained weights
    U.stats_path(path).write_text("{not json", encoding="utf-8")
    assert U.load_stats(model, path) is None


def test_training_writes_the_sidecar(tmp_path):
    from rnnviz.training import main
    src = tmp_path / "tiny.txt"
    src.write_text(CORPUS, encoding="utf-8")
    out = tmp_path / "cli.safetensors"
    main(["--text", str(src), "--hidden", "8", "--batch-size", "4", "--num-steps", "8",
          "--max-steps", "2", "--eval-every", "2", "--no-progress", "--out", str(out)])
    stats = U.load_stats(rnnviz.load_model(out), out)
    assert stats is not None and "held-out" in stats.source


@pytest.mark.parametrize("info", list_checkpoints(CHECKPOINT_DIR), ids=lambda i: i.name)
def test_every_shipped_checkpoint_ships_its_stats(info):
    path = U.stats_path(info.path)
    assert path.is_file() and path.stat().st_size < 200 * 1024
    data = json.loads(path.read_text(encoding="utf-8"))
    assert "held-out" in data["sample"]["source"] and data["sample"]["chars"] > 10_000
    stats = U.load_stats(rnnviz.load_model(info.path), info.path)
    assert stats is not None, "the sidecar was made from other weights: rerun python -m tools.unit_stats"
    assert len(stats.rank("vowel", top=10).top) == 10


# ---------------------------------------------------------------- fetching a corpus
@pytest.fixture
def served(tmp_path):
    """A tiny corpus on a local http.server (127.0.0.1, a free port)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "tiny.txt").write_bytes(CORPUS.encode())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tiny.txt"
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_corpora(tmp_path, monkeypatch):
    """No corpus anywhere: the app's corpus folder (RNNVIZ_CORPORA) is the empty ``no-corpora``
    beside the returned download cache (so ../shared/corpora is never consulted), and the download
    cache ($XDG_CACHE_HOME/rnnviz) is empty."""
    empty = tmp_path / "no-corpora"
    empty.mkdir()
    monkeypatch.setenv("RNNVIZ_CORPORA", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = corpora.cache_dir()
    assert cache == tmp_path / "xdg" / "rnnviz"
    for name in corpora.DATA_HUB:
        assert not corpora.corpus_path(name, empty).is_file()
    return cache


def test_fetch_downloads_verifies_and_is_found(served, no_corpora, monkeypatch):
    monkeypatch.setitem(corpora.DATA_HUB, "tiny", (served, hashlib.sha256(CORPUS.encode()).hexdigest()))
    empty = no_corpora.parent.parent / "no-corpora"
    with pytest.raises(corpora.CorpusNotFound):
        corpora.load_corpus("tiny", folder=empty)
    assert corpora.main(["fetch", "tiny"]) == 0
    assert (no_corpora / "tiny.txt").read_text() == CORPUS
    assert corpora.load_corpus("tiny", folder=empty).text == CORPUS


def test_fetch_refuses_a_changed_file_and_reports_offline(served, no_corpora, monkeypatch):
    monkeypatch.setitem(corpora.DATA_HUB, "tiny", (served, "0" * 64))
    with pytest.raises(corpora.FetchError, match="not the pinned file"):
        corpora.fetch("tiny")
    assert not (no_corpora / "tiny.txt").exists()
    with socket.socket() as s:                 # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(corpora.DATA_HUB, "tiny", (f"http://127.0.0.1:{port}/x.txt", "0" * 64))
    with pytest.raises(corpora.FetchError, match="offline"):
        corpora.fetch("tiny", timeout=5)


def test_registry_pins_the_shipped_checkpoints_corpora():
    for info in list_checkpoints(CHECKPOINT_DIR):
        name = info.provenance.get("corpus")
        if name in corpora.DATA_HUB:
            assert corpora.DATA_HUB[name][1] == info.provenance["corpus_sha256"]


# ---------------------------------------------------------------- the view, with no corpus
def _units(tab: str = "Unit finder", **params) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.switch_page("app_pages/units.py")
    at.query_params["units.tab"] = tab
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_units_ranks_shipped_checkpoints_with_no_corpus(no_corpora, monkeypatch):
    """A fresh clone: the real shipped checkpoints, no corpus anywhere. Rankings, not an info box."""
    monkeypatch.delenv("RNNVIZ_CHECKPOINT_DIR", raising=False)
    at = _units(ckpt="timemachine-rnn")
    assert any("not available" in i.value for i in at.info)
    assert at.dataframe, "the ranked units table"
    rows = at.dataframe[0].value
    assert len(rows) == 10
    body = "\n".join(c.value for c in at.caption)
    assert "Ranked all 256 units" in body and "Shipped statistics" in body
    assert any(b.label.startswith("Fetch the corpus") for b in at.button)


def test_units_offline_fetch_says_so_and_offers_other_samples(no_corpora, tmp_path, monkeypatch):
    ckpts = tmp_path / "ckpts"
    # weights of its own: the caches key on the weights (ModelRef), and an earlier test in this
    # process indexed the same tiny model on a corpus sample, so no fetch was tried
    model = tiny_model("lstm", hidden=8, text=CORPUS, seed=172)
    path = rnnviz.save_checkpoint(model, ckpts / "timemachine-lstm.safetensors",
                                  {"corpus": "timemachine", "val_fraction": 0.5})
    U.write_unit_stats(rnnviz.load_model(path), path, CORPUS)
    monkeypatch.setenv("RNNVIZ_CHECKPOINT_DIR", str(ckpts))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(corpora.DATA_HUB, "timemachine", (f"http://127.0.0.1:{port}/t.txt", "0" * 64))
    at = _units()
    assert at.dataframe and any("not available" in i.value for i in at.info)
    [b for b in at.button if b.label.startswith("Fetch the corpus")][0].click().run()
    assert not at.exception
    assert any("offline" in w.value and "Python standard library" in w.value for w in at.warning)
    at.button(key="u_use_stdlib_finder").click().run()        # the offered sample works
    assert not at.exception, [e.value for e in at.exception]
    assert any("python-stdlib" in c.value for c in at.caption) and at.dataframe
    at.radio(key="u_src").set_value("corpus").run()           # back: the offer again, then take the other
    at.button(key="u_use_typed_finder").click().run()
    assert at.radio(key="u_src").value == "typed"
    assert any("the text in the sidebar" in c.value for c in at.caption)
