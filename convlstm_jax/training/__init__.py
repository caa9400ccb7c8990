"""Training the encoder-forecaster of Shi et al. 2015 on moving digits or radar, one module per part:

- `config`: `TrainConfig`, every option of a run, and `ConfigError`;
- `dataset`: `load_data`, the training and validation sequences;
- `steps`: `build_model`, `make_optimizer`, `TrainState`, `create_train_state`, and the compiled
  `train_step`, `eval_step` and `predict`;
- `placement`: batches and states on one device, or split over several (`--sharding`);
- `evaluation`: `evaluate_dataset`, `baseline_metrics`, and the run's figures;
- `workdir`: the names of a run's files, and its log;
- `checkpoints`: `save_checkpoint` and `restore_latest` (digests, resume checks, damaged
  checkpoints set aside), and `CheckpointError`;
- `signals`: stopping between steps on SIGINT or SIGTERM, and `TrainingInterrupted`;
- `loop`: `train`, the loop, and `TrainResult`;
- `cli`: `build_parser` and `main`, the command `convlstm-train`.

Its names are those of `convlstm_jax.train`, whose docstring describes a run's files, resuming and
interruptions.
"""

from .checkpoints import CheckpointError as CheckpointError
from .checkpoints import restore_latest as restore_latest
from .checkpoints import save_checkpoint as save_checkpoint
from .cli import build_parser as build_parser
from .cli import main as main
from .config import ConfigError as ConfigError
from .config import TrainConfig as TrainConfig
from .dataset import load_data as load_data
from .evaluation import baseline_metrics as baseline_metrics
from .evaluation import evaluate_dataset as evaluate_dataset
from .loop import TrainResult as TrainResult
from .loop import train as train
from .signals import TrainingInterrupted as TrainingInterrupted
from .steps import TrainState as TrainState
from .steps import build_model as build_model
from .steps import create_train_state as create_train_state
from .steps import eval_step as eval_step
from .steps import make_optimizer as make_optimizer
from .steps import predict as predict
from .steps import train_step as train_step

__all__ = [
    "CheckpointError",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingInterrupted",
    "baseline_metrics",
    "build_model",
    "build_parser",
    "create_train_state",
    "eval_step",
    "evaluate_dataset",
    "load_data",
    "main",
    "make_optimizer",
    "predict",
    "restore_latest",
    "save_checkpoint",
    "train",
    "train_step",
]
