"""Bring your own PyTorch model: nn.RNN / nn.GRU / nn.LSTM + nn.Linear head → :class:`CharRNN`.

In Python::

    model = rnnviz.from_torch(rnn, head, tokens)          # exact: same logits as head(rnn(one_hot))
    rnnviz.save_checkpoint(model, "mine.safetensors", model.provenance)

From a saved ``state_dict`` (read with ``torch.load(weights_only=True)`` only; pickles that would run
code are refused and nothing in them runs)::

    python -m rnnviz.convert STATE_DICT.pt --cell lstm --tokens tokens.json -o model.safetensors

Accepted state_dict layouts and the tokens file format: see :data:`LAYOUTS` (also printed by
``--help``) and :mod:`rnnviz.tokens_file`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import logging
import re
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .checkpoint import save_checkpoint
from .convert_guard import REFUSED_CODE, ArchiveError, check_archive
from .cells import SPECS
from .model import MAX_HIDDEN, MAX_LAYERS, CharRNN, ModelConfig, empty_model
from .tokens_file import TokensFileError, read_tokens
from .vocab import PREPROCESSING, UNK, Vocab

log = logging.getLogger(__name__)

#: Module names a state_dict's output layer may have (``head.weight``, ``fc.bias``, ...).
HEAD_PREFIXES = ("head.", "linear.", "fc.", "output.", "out.", "decoder.", "dense.", "proj.")
#: Module names a state_dict's input embedding may have (``embedding.weight``, ...).
EMBED_PREFIXES = ("embedding.", "embeddings.", "embed.", "emb.", "encoder.")
LAYOUTS = f"""\
Accepted state_dict layouts: a plain dict of str -> floating-point tensor, nothing else.
- Recurrent weights <P>weight_ih_l<k>, <P>weight_hh_l<k> and (for every layer or for none)
  <P>bias_ih_l<k>, <P>bias_hh_l<k>, k = 0..L-1, under one prefix <P>: none (rnn.state_dict()) or
  a module path ending in a dot ("rnn.", "lstm.", "model.rnn."). No *_reverse, no weight_hr_l*.
- The output layer <Q>weight (|V| x h) and optionally <Q>bias (|V|), <Q> one of:
  {", ".join(HEAD_PREFIXES)}
- Optionally an input embedding <E>weight (|V| x d), <E> one of: {", ".join(EMBED_PREFIXES)}
  It is folded exactly into layer 0: W_ih_eff = W_ih @ E.T (one_hot(i) @ E picks row i of E).
  Without one, layer 0's input size must be |V| (rnnviz feeds one-hot vectors).

Tokens file: a JSON list of strings, ["<unk>", "a", "\\n", ...] (json.dump(tokens, f)), or one
token per line with the escapes \\n \\r \\t \\\\ \\uXXXX (a line holding one space is the space).
tokens[i] is the character of id i; tokens[0] must be "<unk>".
"""
#: Largest state_dict file the converter reads.
MAX_SOURCE_BYTES = 256 * 1024 * 1024
_RECURRENT = re.compile(r"^(.*?)(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
#: The cells a PyTorch state_dict can hold (those with a multi-layer PyTorch module), and their
#: gate blocks per layer.
CELLS = tuple(name for name, s in SPECS.items() if s.torch_class is not None)
_GATES = {name: len(SPECS[name].gates) for name in CELLS}


class ConversionError(ValueError):
    """The model or file cannot be converted exactly; ``str(err)`` says why and what to do."""


# --------------------------------------------------------------------------- modules → CharRNN
def _cell_of(rnn: nn.Module) -> str:
    if isinstance(rnn, nn.LSTM):
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN):
        return "rnn_relu" if rnn.nonlinearity == "relu" else "rnn_tanh"
    raise ConversionError(f"rnn must be an nn.RNN, nn.GRU or nn.LSTM, got {type(rnn).__name__}. "
                          "Cells (nn.LSTMCell, ...) and custom modules are not supported: copy their "
                          "weights into the matching nn.RNN/nn.GRU/nn.LSTM first.")


def _check_rnn(rnn: nn.RNNBase, cell: str) -> None:
    if rnn.bidirectional:
        raise ConversionError("Bidirectional RNNs read the future, which a language model cannot; "
                              "rnnviz shows left-to-right models only.")
    if getattr(rnn, "proj_size", 0):
        raise ConversionError(f"LSTMs with proj_size={rnn.proj_size} are not supported (CharRNN "
                              "layers have no projection); use proj_size=0.")
    if not 1 <= rnn.num_layers <= MAX_LAYERS:
        raise ConversionError(f"The RNN has {rnn.num_layers} layers; rnnviz supports 1..{MAX_LAYERS}.")
    if not 1 <= rnn.hidden_size <= MAX_HIDDEN:
        raise ConversionError(f"hidden_size {rnn.hidden_size} is over rnnviz's limit of {MAX_HIDDEN}.")


def _check_tokens(tokens) -> tuple[str, ...]:
    if isinstance(tokens, (str, bytes)) or not all(isinstance(t, str) for t in tokens):
        raise ConversionError("tokens must be a list of strings, one per input id "
                              "(tokens[i] is the character your model gives id i).")
    tokens = tuple(tokens)
    if not tokens or tokens[0] != UNK:
        raise ConversionError(f"tokens[0] must be {UNK!r} (rnnviz maps unseen characters to id 0), "
                              f"got {tokens[0] if tokens else None!r}. Train with id 0 reserved for "
                              f"{UNK!r}, e.g. tokens = rnnviz.Vocab.from_text(text).tokens.")
    try:
        Vocab(list(tokens))
    except ValueError as err:
        raise ConversionError(f"Invalid token list: {err}.") from None
    return tokens


def _input_weight(rnn: nn.RNNBase, embedding: nn.Embedding | None, V: int) -> Tensor:
    """Layer 0's weight_ih as CharRNN needs it: (G·h, |V|), the embedding folded in if given."""
    w = rnn.weight_ih_l0.detach()
    if embedding is None:
        if rnn.input_size != V:
            raise ConversionError(
                f"The RNN's input_size is {rnn.input_size} but there are {V} tokens: rnnviz feeds "
                "one-hot vectors, so layer 0 must read |V| inputs. If your model embeds ids first, "
                "pass embedding=your_nn_Embedding (folded exactly: W_ih_eff = W_ih @ embedding.weight.T).")
        return w
    if not isinstance(embedding, nn.Embedding):
        raise ConversionError(f"embedding must be an nn.Embedding, got {type(embedding).__name__}.")
    if embedding.max_norm is not None:
        raise ConversionError("Embeddings with max_norm rescale rows when read and cannot be folded "
                              "exactly; apply the renorm to embedding.weight and set max_norm=None.")
    E = embedding.weight.detach()
    if tuple(E.shape) != (V, rnn.input_size):
        raise ConversionError(f"The embedding is {tuple(E.shape)} but needs ({V} tokens, "
                              f"input_size {rnn.input_size}).")
    return (w.double() @ E.double().T).to(w.dtype)


def _check_head(head: nn.Module, H: int, V: int) -> None:
    if not isinstance(head, nn.Linear):
        raise ConversionError(f"head must be an nn.Linear, got {type(head).__name__}.")
    if head.in_features != H or head.out_features != V:
        raise ConversionError(f"head is Linear({head.in_features}, {head.out_features}) but needs "
                              f"Linear({H}, {V}): hidden_size → one logit per token.")


def _copy(dst: Tensor, src: Tensor | None, what: str) -> None:
    if src is None:  # bias=False: an exact zero bias
        dst.zero_()
        return
    if not torch.isfinite(src).all():
        raise ConversionError(f"{what} contains NaN or infinite values.")
    dst.copy_(src.detach().to(dst.dtype))


def from_torch(rnn: nn.RNNBase, head: nn.Linear, tokens, *, preprocessing: str = "none",
               embedding: nn.Embedding | None = None) -> CharRNN:
    """Convert PyTorch modules into an equivalent :class:`CharRNN` (eval mode, float32).

    rnn: nn.RNN (tanh/relu) / nn.GRU / nn.LSTM, unidirectional, no projection, batch_first either
    way, ``input_size == len(tokens)`` (or ``embedding`` given). head: nn.Linear(h, |V|).
    tokens: tokens[i] is the character of id i; tokens[0] == "<unk>". preprocessing: what your
    training text went through ("none" or "d2l"). The result's logits for ids (T, B) equal
    ``head(rnn(one_hot(ids))[0])`` (or with ``embedding(ids)`` as input) to float precision.
    ``model.provenance`` says it was converted; pass it to :func:`rnnviz.save_checkpoint`.
    """
    cell = _cell_of(rnn)
    _check_rnn(rnn, cell)
    tokens = _check_tokens(tokens)
    if preprocessing not in PREPROCESSING:
        raise ConversionError(f"preprocessing must be one of {PREPROCESSING}, got {preprocessing!r}.")
    V, H = len(tokens), rnn.hidden_size
    _check_head(head, H, V)
    w_ih0 = _input_weight(rnn, embedding, V)
    model = empty_model(ModelConfig(cell, H, rnn.num_layers, tokens, preprocessing))  # all copied below
    with torch.no_grad():
        for k, layer in enumerate(model.layers):
            _copy(layer.weight_ih_l0, w_ih0 if k == 0 else getattr(rnn, f"weight_ih_l{k}"),
                  f"weight_ih_l{k}")
            _copy(layer.weight_hh_l0, getattr(rnn, f"weight_hh_l{k}"), f"weight_hh_l{k}")
            for name in ("bias_ih", "bias_hh"):
                _copy(getattr(layer, f"{name}_l0"), getattr(rnn, f"{name}_l{k}", None), f"{name}_l{k}")
        _copy(model.output.weight, head.weight, "head.weight")
        _copy(model.output.bias, head.bias, "head.bias")
    model.eval().requires_grad_(False)
    model.name = "converted"
    model.provenance = {"converted": "rnnviz.from_torch", "source_module": type(rnn).__name__,
                        "cell": cell, "embedding_folded": embedding is not None,
                        "date": _now(), "torch": torch.__version__}
    return model


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- state_dict → modules
def load_state_dict_bytes(data: bytes, name: str = "state_dict") -> dict[str, Tensor]:
    """Check the archive's declared sizes (:func:`check_archive`: nothing built, nothing run), then
    ``torch.load(weights_only=True)`` the bytes and check it is a plain dict of tensors."""
    try:
        check_archive(data, name)
    except ArchiveError as err:
        raise ConversionError(f"{name}: {err}") from None
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": noise next to our own message
            warnings.simplefilter("ignore", UserWarning)
            sd = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:  # what check_archive let through: junk torch cannot parse
        # torch's own text ends in advice to turn weights_only off; it is not shown (only logged).
        log.info("state_dict refused by torch.load(weights_only=True): %s", type(err).__name__)
        raise ConversionError(
            f"{name} is not a plain state_dict: torch.load(weights_only=True) refused it "
            f"({type(err).__name__}). {REFUSED_CODE} "
            "Save one with torch.save(model.state_dict(), path).") from None
    if not isinstance(sd, dict):
        raise ConversionError(f"{name} holds a {type(sd).__name__}, not a state_dict; save "
                              "model.state_dict() (a dict of tensors).")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        hint = (" It looks like a training checkpoint: save model.state_dict() on its own."
                if any(k in sd for k in ("state_dict", "model_state_dict", "model", "optimizer")) else "")
        raise ConversionError(f"{name}: these entries are not tensors: {[str(k) for k in bad[:5]]}.{hint}")
    for k, v in sd.items():
        if not v.is_floating_point():
            raise ConversionError(f"{name}: tensor {k!r} has dtype {v.dtype}; weights must be floating point.")
    return sd


def _split_keys(sd: dict[str, Tensor]) -> tuple[str, dict[str, Tensor], str, str | None]:
    """(recurrent prefix, recurrent tensors by bare name, head prefix, embedding prefix or None)."""
    prefixes = {m.group(1) for k in sd if (m := _RECURRENT.match(k))}
    if len(prefixes) != 1:
        raise ConversionError("Expected recurrent weights named weight_ih_l0, weight_hh_l0, ... under "
                              f"one prefix (e.g. 'rnn.'); found prefixes {sorted(prefixes)}.")
    prefix = prefixes.pop()
    rec = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and _RECURRENT.match(k)}
    if any(k.endswith("_reverse") for k in rec):
        raise ConversionError("The state_dict has *_reverse weights: a bidirectional RNN reads the "
                              "future, which a language model cannot. Only unidirectional RNNs convert.")
    if any(k.startswith("weight_hr") for k in rec):
        raise ConversionError("The state_dict has weight_hr_l* (an LSTM with proj_size > 0); "
                              "CharRNN layers have no projection.")
    heads = [p for p in HEAD_PREFIXES if p + "weight" in sd]
    if len(heads) != 1:
        raise ConversionError(f"Expected exactly one output layer named one of "
                              f"{[p + 'weight' for p in HEAD_PREFIXES]}; found {len(heads)}.")
    embeds = [p for p in EMBED_PREFIXES if p + "weight" in sd]
    if len(embeds) > 1:
        raise ConversionError(f"Found more than one embedding: {[p + 'weight' for p in embeds]}.")
    known = {prefix + k for k in rec} | {heads[0] + "weight", heads[0] + "bias"}
    known |= {embeds[0] + "weight"} if embeds else set()
    unexpected = sorted(set(sd) - known)
    if unexpected:
        raise ConversionError(f"Unexpected keys {unexpected[:6]}: only an RNN, an optional embedding "
                              "and a Linear head can be converted (see python -m rnnviz.convert --help).")
    return prefix, rec, heads[0], embeds[0] if embeds else None


def _count_layers(rec: dict[str, Tensor]) -> tuple[int, bool]:
    """Number of layers and whether biases are present; refuses gaps and half-present biases."""
    layers = sorted(int(_RECURRENT.match(k).group(3)) for k in rec if k.startswith("weight_ih"))
    if not layers or layers != list(range(len(layers))):
        raise ConversionError(f"weight_ih_l* must exist for layers 0..L-1 without gaps; found {layers}.")
    has_bias = "bias_ih_l0" in rec
    needed = [f"{n}_l{k}" for k in layers for n in
              ("weight_ih", "weight_hh", *(("bias_ih", "bias_hh") if has_bias else ()))]
    missing = [n for n in needed if n not in rec]
    extra = sorted(set(rec) - set(needed))
    if missing or extra:
        raise ConversionError(f"Recurrent weights incomplete: missing {missing[:6]}, unexpected {extra[:6]} "
                              "(biases must be present for every layer or for none).")
    return len(layers), has_bias


def modules_from_state_dict(sd: dict[str, Tensor], cell: str, layers: int | None = None
                            ) -> tuple[nn.RNNBase, nn.Linear, nn.Embedding | None]:
    """Rebuild (rnn, head, embedding) from a state_dict in one of the documented layouts."""
    if cell not in CELLS:
        raise ConversionError(f"cell must be one of {CELLS}, got {cell!r}.")
    prefix, rec, head_p, embed_p = _split_keys(sd)
    L, has_bias = _count_layers(rec)
    if layers is not None and layers != L:
        raise ConversionError(f"--layers {layers} given but the state_dict has {L} layer(s).")
    rows, H = rec["weight_hh_l0"].shape if rec["weight_hh_l0"].dim() == 2 else (0, 0)
    if H == 0 or rows != _GATES[cell] * H:
        guess = {1: "rnn_tanh or rnn_relu", 3: "gru", 4: "lstm"}.get(rows // H if H else 0, "none")
        raise ConversionError(f"{prefix}weight_hh_l0 has shape {list(rec['weight_hh_l0'].shape)}, which "
                              f"does not fit cell {cell!r} ({_GATES[cell]}·h rows); it looks like: {guess}.")
    if not 1 <= L <= MAX_LAYERS or not 1 <= H <= MAX_HIDDEN:
        raise ConversionError(f"{L} layer(s) of size {H}: rnnviz supports 1..{MAX_LAYERS} layers "
                              f"of size 1..{MAX_HIDDEN}.")
    kind, extra = SPECS[cell].torch_class, SPECS[cell].torch_kwargs
    w_ih = rec["weight_ih_l0"]
    rnn = kind(w_ih.shape[-1], H, num_layers=L, bias=has_bias, **extra)
    w_head = sd[head_p + "weight"]
    if w_head.dim() != 2:
        raise ConversionError(f"{head_p}weight must be 2-D (|V|×h), got shape {list(w_head.shape)}.")
    head = nn.Linear(w_head.shape[1], w_head.shape[0], bias=head_p + "bias" in sd)
    embedding = None
    if embed_p is not None:
        w_emb = sd[embed_p + "weight"]
        if w_emb.dim() != 2:
            raise ConversionError(f"{embed_p}weight must be 2-D (|V|×d), got {list(w_emb.shape)}.")
        embedding = nn.Embedding(*w_emb.shape)
    parts = [(rnn, rec, prefix), (head, {k[len(head_p):]: v for k, v in sd.items()
                                         if k.startswith(head_p)}, head_p)]
    if embedding is not None:
        parts.append((embedding, {"weight": sd[embed_p + "weight"]}, embed_p))
    for module, tensors, p in parts:
        try:
            module.load_state_dict(tensors)
        except RuntimeError as err:
            detail = " ".join(str(err).split())[:300]
            raise ConversionError(f"The weights under {p or '(no prefix)'!r} do not fit together: "
                                  f"{detail}") from None
    return rnn, head, embedding


# --------------------------------------------------------------------------- the command line
def convert_file(source: str | Path, cell: str, tokens: list[str], out: str | Path, *,
                 layers: int | None = None, preprocessing: str = "none") -> CharRNN:
    """state_dict file → checkpoint at ``out`` (provenance: source name, its sha256, date, cell)."""
    source = Path(source)
    try:
        size = source.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise ConversionError(f"{source.name} is {size / 2**20:.0f} MiB; the limit is "
                                  f"{MAX_SOURCE_BYTES // 2**20} MiB.")
        data = source.read_bytes()
    except OSError as err:
        raise ConversionError(f"Cannot read {source}: {err.strerror}.") from None
    sd = load_state_dict_bytes(data, source.name)
    rnn, head, embedding = modules_from_state_dict(sd, cell, layers)
    model = from_torch(rnn, head, tokens, preprocessing=preprocessing, embedding=embedding)
    model.provenance.update(converted="python -m rnnviz.convert", source_file=source.name,
                            source_sha256=hashlib.sha256(data).hexdigest(), source_bytes=len(data))
    save_checkpoint(model, out, model.provenance)
    return model


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnnviz.convert", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert a saved PyTorch state_dict (nn.RNN/GRU/LSTM + Linear head) into an "
                    "rnnviz .safetensors checkpoint. The file is read with "
                    "torch.load(weights_only=True) only: pickles that would run code are refused.",
        epilog=LAYOUTS)
    p.add_argument("state_dict", help="file written by torch.save(model.state_dict(), path)")
    p.add_argument("--cell", required=True, choices=CELLS, help="the recurrent cell of the model")
    p.add_argument("--tokens", required=True, help="tokens file: JSON list, or one escaped token per line")
    p.add_argument("-o", "--out", required=True, help="output .safetensors path")
    p.add_argument("--layers", type=int, help="number of layers (checked; inferred when omitted)")
    p.add_argument("--preprocessing", default="none", choices=PREPROCESSING,
                   help="what the training text went through (default: none)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 0 on success, 2 on a refused input (message on stderr)."""
    args = _parser().parse_args(argv)
    try:
        tokens = read_tokens(args.tokens)
        model = convert_file(args.state_dict, args.cell, tokens, args.out,
                             layers=args.layers, preprocessing=args.preprocessing)
    except (ConversionError, TokensFileError) as err:
        print(f"rnnviz.convert: error: {err}", file=sys.stderr)
        return 2
    d = model.describe()
    print(f"wrote {args.out}: {d['cell']}, {d['layers']} layer(s) × {d['hidden_size']}, "
          f"|V|={d['vocab_size']}, {d['parameters']:,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
