"""Bring your own PyTorch model (issue 13): rnnviz.from_torch and python -m rnnviz.convert.

Outputs are compared with the *source* modules (head(rnn(one_hot(ids)))), for every cell, 1-2 layers
and both batch layouts; the CLI reads state_dicts with torch.load(weights_only=True) only, so a
pickle payload renamed .pt is refused and runs nothing.
"""

from __future__ import annotations

import builtins
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnviz
from rnnviz import ConversionError, Vocab, from_torch, load_model, save_checkpoint
from rnnviz.convert import main
from rnnviz.tokens_file import TokensFileError, parse_tokens

from . import hostile
from .conftest import REPO, SMALL_TEXT

TOKENS = Vocab.from_text(SMALL_TEXT).tokens
V, H = len(TOKENS), 6


def source(cell: str, layers: int = 1, batch_first: bool = False, bias: bool = True,
           input_size: int = V, seed: int = 0) -> tuple[nn.RNNBase, nn.Linear]:
    """A randomly initialised PyTorch RNN + Linear head, as a user would have (eval mode)."""
    torch.manual_seed(seed)
    kw = dict(num_layers=layers, batch_first=batch_first, bias=bias)
    if cell.startswith("rnn"):
        rnn = nn.RNN(input_size, H, nonlinearity=cell[4:], **kw)
    else:
        rnn = (nn.GRU if cell == "gru" else nn.LSTM)(input_size, H, **kw)
    return rnn.eval(), nn.Linear(H, V).eval()


def reference_logits(rnn: nn.RNNBase, head: nn.Linear, ids: torch.Tensor,
                     embedding: nn.Embedding | None = None) -> torch.Tensor:
    """ids (T, B) → the source model's logits (T, B, |V|), in its own batch layout."""
    x = embedding(ids) if embedding is not None else F.one_hot(ids, V).float()
    if rnn.batch_first:
        return head(rnn(x.transpose(0, 1))[0]).transpose(0, 1)
    return head(rnn(x)[0])


def random_ids(T: int = 13, B: int = 3) -> torch.Tensor:
    return torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(1))


#: The cells a PyTorch module can hold (not the book's GRU, which PyTorch has no module for).
CONVERTIBLE = rnnviz.convert.CELLS
CASES = [(c, n, bf) for c in CONVERTIBLE for n in (1, 2) for bf in (False, True)]


@pytest.mark.parametrize("cell,layers,batch_first", CASES,
                         ids=[f"{c}-{n}L-{'bf' if bf else 'tb'}" for c, n, bf in CASES])
def test_from_torch_matches_source_and_roundtrip(cell, layers, batch_first, tmp_path):
    rnn, head = source(cell, layers, batch_first)
    ids = random_ids()
    with torch.no_grad():
        want = reference_logits(rnn, head, ids)
        model = from_torch(rnn, head, TOKENS)
        got, _ = model(ids)
    assert model.config.cell == cell and model.config.num_layers == layers
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    path = save_checkpoint(model, tmp_path / "m.safetensors", model.provenance)
    loaded = load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids)[0], want, atol=1e-5, rtol=0)
    assert loaded.provenance["converted"] == "rnnviz.from_torch" and loaded.provenance["cell"] == cell


@pytest.mark.parametrize("cell", CONVERTIBLE)
def test_final_state_and_given_state_match(cell):
    rnn, head = source(cell, 2)
    model = from_torch(rnn, head, TOKENS)
    ids = random_ids()
    g = torch.Generator().manual_seed(2)
    h0 = torch.randn(2, 3, H, generator=g)
    c0 = torch.randn(2, 3, H, generator=g)
    with torch.no_grad():
        hx = (h0, c0) if cell == "lstm" else h0
        out, hn = rnn(F.one_hot(ids, V).float(), hx)
        state = [(h0[k], c0[k] if cell == "lstm" else None) for k in range(2)]
        got, final = model(ids, state)
    torch.testing.assert_close(got, head(out), atol=1e-5, rtol=0)
    h_n = hn[0] if cell == "lstm" else hn
    for k in range(2):
        torch.testing.assert_close(final[k][0], h_n[k], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn_relu", "lstm"])
def test_bias_false_maps_to_zero_biases(cell):
    rnn, _ = source(cell, 2, bias=False)
    head = nn.Linear(H, V, bias=False)
    model = from_torch(rnn, head, TOKENS)
    ids = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reference_logits(rnn, head, ids), atol=1e-5, rtol=0)
    assert all(float(p.abs().max()) == 0 for n, p in model.named_parameters() if "bias" in n)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_embedding_is_folded_exactly(cell):
    rnn, head = source(cell, 2, input_size=4)
    embedding = nn.Embedding(V, 4)
    model = from_torch(rnn, head, TOKENS, embedding=embedding)
    ids = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reference_logits(rnn, head, ids, embedding),
                                   atol=1e-5, rtol=0)
    assert model.provenance["embedding_folded"] is True


def test_preprocessing_is_recorded():
    rnn, head = source("gru")
    assert from_torch(rnn, head, TOKENS, preprocessing="d2l").config.preprocessing == "d2l"


# --------------------------------------------------------------------------- refusals (modules)
def _bad_modules():
    rnn, head = source("lstm")
    return [
        ("bidirectional", nn.LSTM(V, H, bidirectional=True), head, TOKENS, {}, "[Bb]idirectional"),
        ("proj_size", nn.LSTM(V, H + 1, proj_size=H), head, TOKENS, {}, "proj_size"),
        ("head size", rnn, nn.Linear(H, V + 1), TOKENS, {}, rf"Linear\({H}, {V}\)"),
        ("head in", rnn, nn.Linear(H + 1, V), TOKENS, {}, rf"Linear\({H}, {V}\)"),
        ("head type", rnn, nn.Sequential(head), TOKENS, {}, "nn.Linear"),
        ("input size", nn.LSTM(V + 2, H), head, TOKENS, {}, "one-hot.*embedding"),
        ("cell module", nn.LSTMCell(V, H), head, TOKENS, {}, "nn.RNN, nn.GRU or nn.LSTM"),
        ("no unk", rnn, head, ["a", *TOKENS[1:]], {}, "tokens\\[0\\] must be '<unk>'"),
        ("duplicates", rnn, head, [*TOKENS[:-1], TOKENS[1]], {}, "duplicate"),
        ("multichar", rnn, head, [*TOKENS[:-1], "ab"], {}, "single character"),
        ("string tokens", rnn, head, "".join(TOKENS[1:]), {}, "list of strings"),
        ("preprocessing", rnn, head, TOKENS, {"preprocessing": "lower"}, "preprocessing"),
        ("embedding shape", nn.LSTM(4, H), head, TOKENS, {"embedding": nn.Embedding(V, 5)}, "embedding"),
        ("max_norm", nn.LSTM(4, H), head, TOKENS, {"embedding": nn.Embedding(V, 4, max_norm=1.0)},
         "max_norm"),
        ("too many layers", nn.GRU(V, 2, num_layers=rnnviz.model.MAX_LAYERS + 1), nn.Linear(2, V),
         TOKENS, {}, "layers"),
    ]


@pytest.mark.parametrize("case", _bad_modules(), ids=lambda c: c[0])
def test_from_torch_refusals(case):
    _, rnn, head, tokens, kw, match = case
    with pytest.raises(ConversionError, match=match):
        from_torch(rnn, head, tokens, **kw)


def test_nan_weights_refused():
    rnn, head = source("gru")
    with torch.no_grad():
        head.weight[0, 0] = float("nan")
    with pytest.raises(ConversionError, match="NaN"):
        from_torch(rnn, head, TOKENS)


# --------------------------------------------------------------------------- the command line
class Net(nn.Module):
    """A typical user model: optional embedding, an RNN and a head under common names."""

    def __init__(self, cell: str, layers: int, rnn_name: str = "rnn", head_name: str = "head",
                 embed: int = 0):
        super().__init__()
        rnn, head = source(cell, layers, batch_first=True, input_size=embed or V)
        if embed:
            self.embedding = nn.Embedding(V, embed)
        setattr(self, rnn_name, rnn)
        setattr(self, head_name, head)
        self.names = (rnn_name, head_name)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (T, B) → (T, B, |V|)."""
        rnn, head = (getattr(self, n) for n in self.names)
        return reference_logits(rnn, head, ids, getattr(self, "embedding", None))


def write_tokens(path: Path, tokens=TOKENS) -> Path:
    path.write_text(json.dumps(tokens), encoding="utf-8")
    return path


@pytest.mark.parametrize("cell,layers,rnn_name,head_name,embed", [
    ("lstm", 2, "rnn", "head", 0), ("gru", 1, "lstm", "fc", 0), ("rnn_relu", 2, "rnn", "linear", 5),
    ("rnn_tanh", 1, "rnn", "decoder", 0)])
def test_cli_converts_state_dict(cell, layers, rnn_name, head_name, embed, tmp_path, capsys):
    net = Net(cell, layers, rnn_name, head_name, embed)
    src = tmp_path / "weights.pt"
    torch.save(net.state_dict(), src)
    out = tmp_path / "out.safetensors"
    argv = [str(src), "--cell", cell, "--tokens", str(write_tokens(tmp_path / "tokens.json")),
            "-o", str(out), "--preprocessing", "d2l"]
    assert main(argv + ["--layers", str(layers)]) == 0
    assert "wrote" in capsys.readouterr().out
    model = load_model(out)
    ids = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], net.logits(ids), atol=1e-5, rtol=0)
    import hashlib
    prov = model.provenance
    assert prov["source_file"] == "weights.pt" and prov["cell"] == cell
    assert prov["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert prov["converted"] == "python -m rnnviz.convert" and re.match(r"\d{4}-\d\d-\d\dT", prov["date"])
    assert model.config.preprocessing == "d2l"


def test_cli_bare_rnn_state_dict_and_line_tokens(tmp_path):
    """rnn.state_dict() keys with no prefix plus a head, tokens one per line with escapes."""
    rnn, head = source("lstm", 1)
    sd = {**rnn.state_dict(), **{f"head.{k}": v for k, v in head.state_dict().items()}}
    torch.save(sd, tmp_path / "sd.pt")
    lines = [t.replace("\\", "\\\\").replace("\n", "\\n") for t in TOKENS]
    (tmp_path / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "m.safetensors"
    assert main([str(tmp_path / "sd.pt"), "--cell", "lstm", "--tokens", str(tmp_path / "tokens.txt"),
                 "-o", str(out)]) == 0
    ids = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(load_model(out)(ids)[0], reference_logits(rnn, head, ids), atol=1e-5, rtol=0)


def test_cli_as_module_subprocess(tmp_path):
    net = Net("gru", 2)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "w.safetensors"
    proc = subprocess.run([sys.executable, "-m", "rnnviz.convert", str(tmp_path / "w.pt"), "--cell", "gru",
                           "--tokens", str(write_tokens(tmp_path / "t.json")), "-o", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert load_model(out).config.num_layers == 2


class _Evil:
    """Pickles as ``open(marker, "w")``: creates the marker if ever unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (str(self.marker), "w")


def _payload(kind: str, marker: Path, src: Path) -> Path:
    """A .pt file that would create ``marker`` if it were ever unpickled."""
    if kind == "torch.save":  # a real torch.save file whose dict also holds a code-running object
        torch.save({**Net("lstm", 1).state_dict(), "extra": _Evil(marker)}, src)
    elif kind == "raw pickle":
        src.write_bytes(hostile.pickle_open_payload(marker))
    elif kind == "exec pickle":
        src.write_bytes(hostile.pickle_payload(marker))
    else:
        src.write_bytes(hostile.torch_zip(marker))
    return src


def test_cli_refuses_pickle_payload_and_runs_nothing(tmp_path):
    """The headline case, as a user runs it: python -m rnnviz.convert on a payload renamed .pt."""
    marker = tmp_path / "CODE_RAN"
    src = _payload("torch.save", marker, tmp_path / "model.pt")
    proc = subprocess.run([sys.executable, "-m", "rnnviz.convert", str(src), "--cell", "lstm",
                           "--tokens", str(write_tokens(tmp_path / "t.json")),
                           "-o", str(tmp_path / "out.safetensors")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "weights_only=True" in proc.stderr and "Nothing in the file was executed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("kind", ["torch.save", "raw pickle", "exec pickle", "torch zip"])
def test_pickle_payloads_refused_in_process(kind, tmp_path, capsys):
    marker = tmp_path / "CODE_RAN"
    src = _payload(kind, marker, tmp_path / "model.pt")
    out = tmp_path / "out.safetensors"
    assert main([str(src), "--cell", "lstm", "--tokens", str(write_tokens(tmp_path / "t.json")),
                 "-o", str(out)]) == 2
    assert "Nothing in the file was executed" in capsys.readouterr().err
    assert not marker.exists(), "the payload ran"
    assert not out.exists()


def _bad_state_dicts():
    rnn, head = source("lstm", 2)
    good = {**{f"rnn.{k}": v for k, v in rnn.state_dict().items()},
            **{f"head.{k}": v for k, v in head.state_dict().items()}}
    drop = lambda key: {k: v for k, v in good.items() if k != key}  # noqa: E731
    return [
        ("not a dict", [torch.zeros(2)], "not a state_dict"),
        ("non-tensor value", {**good, "epoch": 3}, r"not tensors: \['epoch'\]"),
        ("training checkpoint", {"model_state_dict": good, "epoch": 3}, "training checkpoint"),
        ("int tensor", {**good, "head.bias": torch.zeros(V, dtype=torch.long)}, "floating point"),
        ("missing weight_hh", drop("rnn.weight_hh_l1"), r"missing \['weight_hh_l1'\]"),
        ("missing bias", drop("rnn.bias_hh_l0"), "biases must be present"),
        ("missing head", drop("head.weight"), "output layer"),
        ("no rnn", {"head.weight": good["head.weight"]}, "recurrent weights"),
        ("layer gap", {k: v for k, v in good.items() if "_l0" not in k}, "without gaps"),
        ("unexpected key", {**good, "norm.weight": torch.ones(H)}, r"Unexpected keys \['norm.weight'\]"),
        ("two heads", {**good, "fc.weight": good["head.weight"]}, "exactly one output layer"),
        ("bidirectional", {**good, "rnn.weight_ih_l0_reverse": good["rnn.weight_ih_l0"]}, "bidirectional"),
        ("projection", {**good, "rnn.weight_hr_l0": torch.zeros(H, H)}, "proj_size"),
        ("wrong cell", {**good}, "looks like: lstm"),
        ("wrong layers", {**good}, "--layers 3 given"),
        ("head shape", {**good, "head.weight": torch.zeros(V, H + 1)}, rf"needs Linear\({H}, {V}\)"),
        ("layer shape", {**good, "rnn.weight_ih_l1": torch.zeros(4 * H, H + 1)}, "do not fit together"),
    ]


@pytest.mark.parametrize("case", _bad_state_dicts(), ids=lambda c: c[0])
def test_cli_refuses_bad_state_dicts(case, tmp_path, capsys):
    name, sd, match = case
    torch.save(sd, tmp_path / "bad.pt")
    cell = "gru" if name == "wrong cell" else "lstm"
    argv = [str(tmp_path / "bad.pt"), "--cell", cell, "--tokens", str(write_tokens(tmp_path / "t.json")),
            "-o", str(tmp_path / "out.safetensors")] + (["--layers", "3"] if name == "wrong layers" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnviz.convert: error: ") and re.search(match, err), err
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_refuses_bad_tokens_and_missing_files(tmp_path, capsys):
    net = Net("lstm", 1)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    base = ["--cell", "lstm", "-o", str(tmp_path / "o.safetensors")]
    cases = [(str(tmp_path / "w.pt"), write_tokens(tmp_path / "short.json", TOKENS[:-1]), "head is Linear"),
             (str(tmp_path / "w.pt"), write_tokens(tmp_path / "nounk.json", ["?", *TOKENS[1:]]), "<unk>"),
             (str(tmp_path / "w.pt"), tmp_path / "absent.txt", "Cannot read tokens file"),
             (str(tmp_path / "absent.pt"), write_tokens(tmp_path / "t.json"), "Cannot read")]
    for src, tokens, match in cases:
        assert main([src, "--tokens", str(tokens), *base]) == 2
        assert match in capsys.readouterr().err


def test_parse_tokens_formats():
    assert parse_tokens('["<unk>", "a", "\\n", " "]') == ["<unk>", "a", "\n", " "]
    assert parse_tokens("<unk>\na\n\\n\n \n\\\\\n\\t\n\\u00e9\n") == ["<unk>", "a", "\n", " ", "\\", "\t", "é"]
    assert parse_tokens("\ufeff<unk>\r\nb\r\n") == ["<unk>", "b"]
    for bad, match in [("<unk>\n\na\n", "empty"), ("<unk>\n\\q\n", "unknown escape"),
                       ('["<unk>", 3]', "list of strings"), ("[\"<unk>\"", "does not parse"),
                       ('["<unk>", "\\ud800"]', "surrogate"), ("[" * 100_000, "does not parse")]:
        with pytest.raises(TokensFileError, match=match):
            parse_tokens(bad)


# --------------------------------------------------------------------------- the docs example
def _readme_section() -> str:
    """The "Bring your own PyTorch model" section of docs/BACKEND.md (the README links to it)."""
    text = (REPO / "docs" / "BACKEND.md").read_text(encoding="utf-8")
    start = text.index("## Bring your own PyTorch model")
    end = text.find("\n## ", start + 5)
    return text[start:end if end > 0 else None]


def test_readme_example_runs_and_converts_exactly(tmp_path, monkeypatch):
    section = _readme_section()
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "docs/BACKEND.md", "exec"), ns)  # noqa: S102 (our own docs)
    rnn, head, x, ids, tokens = ns["rnn"], ns["head"], ns["x"], ns["ids"], ns["tokens"]
    data = (tmp_path / "mine.safetensors").read_bytes()
    model = rnnviz.load_model_bytes(data, "mine.safetensors")  # what the sidebar upload does
    with torch.no_grad():
        want = head(rnn(x)[0])[0]                                   # (T, |V|)
        got = model(ids[:-1, None])[0][:, 0]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        loss = F.cross_entropy(got, ids[1:]).item()
    assert loss < 0.8 * torch.log(torch.tensor(float(len(tokens)))).item(), "the example learned nothing"
    tr = rnnviz.trace(model, "a small brass lamp")
    assert tr.perplexity < len(tokens)


def test_readme_cli_lines_parse():
    from rnnviz.convert import _parser
    section = _readme_section()
    lines = [ln for ln in section.splitlines() if ln.startswith("python3 -m rnnviz.convert ")
             and "--help" not in ln]
    assert lines
    for line in lines:
        args = _parser().parse_args(line.split()[3:])
        assert args.cell in rnnviz.CELLS
