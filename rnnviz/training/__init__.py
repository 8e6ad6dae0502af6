"""Training: the loop, its data, its limits and the server's bounded pool of runs.

The command line is ``python -m rnnviz.training --help`` (:mod:`rnnviz.training.cli`, where the
data, validation and resume procedures are documented). From Python::

    from rnnviz.training import TrainConfig, Trainer
    trainer = Trainer(TrainConfig(cell="lstm", hidden=64, max_steps=20), text)
    trainer.run()
    model, history = trainer.finish()

Modules: :mod:`.config` (TrainConfig), :mod:`.data` (vocabulary, split, minibatches),
:mod:`.evaluate` (the validation loss), :mod:`.state` (resume state and loss curves),
:mod:`.trainer` (the step-by-step loop), :mod:`.limits` (what the app accepts),
:mod:`.run` and :mod:`.pool` (runs off the script thread, for the Train view), :mod:`.samples`
(their samples and their latest / best-validation weights).
"""

from .cli import build_parser, main, parse_config, reproduce_command, train
from .config import TrainConfig
from .data import build_vocab, epoch_batches, load_training_text, split_text
from .evaluate import VAL_STREAMS, evaluate_loss
from .state import History, TrainState, curves_path, state_path
from .trainer import Trainer, make_optimizer, train_step

__all__ = [
    "History", "TrainConfig", "TrainState", "Trainer", "VAL_STREAMS", "build_parser", "build_vocab",
    "curves_path", "epoch_batches", "evaluate_loss", "load_training_text", "main", "make_optimizer",
    "parse_config", "reproduce_command", "split_text", "state_path", "train", "train_step",
]
