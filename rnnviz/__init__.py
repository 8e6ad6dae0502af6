"""rnnviz: explore the hidden-state dynamics of character-level recurrent networks.

Pure Python + PyTorch (no Streamlit). Main entry points::

    model = rnnviz.load_model("timemachine-lstm")     # shipped name or path to .safetensors
    tr = rnnviz.trace(model, "the time machine by h. g. wells")
    tr["layer0.h"], tr.probs, tr.surprisal, tr.perplexity
    model = rnnviz.from_torch(my_lstm, my_linear, tokens)  # bring your own nn.LSTM/GRU/RNN
    for step, m in rnnviz.load_timeline("timemachine-lstm"): ...  # weights during training
"""

from .checkpoint import (CheckpointError, CheckpointInfo, list_checkpoints, load_model,
                         load_model_bytes, save_checkpoint)
from .convert import ConversionError, from_torch
from .model import CELLS, CharRNN, ModelConfig, build_model
from .timeline import Snapshot, has_timeline, load_timeline
from .trace import MAX_TRACE_CHARS, HookError, TextError, Trace, trace
from .vocab import UNK, Vocab, d2l_clean, preprocess

__all__ = [
    "CELLS", "CharRNN", "CheckpointError", "CheckpointInfo", "ConversionError", "HookError",
    "MAX_TRACE_CHARS", "ModelConfig", "Snapshot", "TextError", "Trace", "UNK", "Vocab", "build_model", "d2l_clean",
    "from_torch", "has_timeline", "list_checkpoints", "load_model", "load_timeline", "load_model_bytes", "preprocess", "save_checkpoint",
    "trace",
]
