"""Training the encoder-forecaster of Shi et al. 2015 on moving digits or radar, one module per part:

- `digits`: Moving MNIST, `load_moving_mnist`, and `bouncing_digits`, made offline;
- `batches`: `split_sequences`, `to_unit`, the reproducible `batch_indices`, and `copy_last_frame`;
- `metrics`: `cross_entropy` (the paper's loss), `mse`, `mae`, `ssim` and `evaluate`;
- `plots`: `plot_forecasts` and `plot_learning_curve`;
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
- `cli`: `build_parser` and `main`, the command `convlstm-train` (or `python -m convlstm_jax.training`),
  whose docstring describes a run's files.

This package's names are those of its modules. The radar data, pysteps' baselines and scores, and
the balanced loss are in `convlstm_jax.nowcasting`.
"""

from .batches import batch_indices as batch_indices
from .batches import copy_last_frame as copy_last_frame
from .batches import split_sequences as split_sequences
from .batches import to_unit as to_unit
from .checkpoints import CheckpointError as CheckpointError
from .checkpoints import restore_latest as restore_latest
from .checkpoints import save_checkpoint as save_checkpoint
from .cli import build_parser as build_parser
from .cli import main as main
from .config import ConfigError as ConfigError
from .config import TrainConfig as TrainConfig
from .dataset import load_data as load_data
from .digits import STEP as STEP
from .digits import bouncing_digits as bouncing_digits
from .digits import load_moving_mnist as load_moving_mnist
from .evaluation import baseline_metrics as baseline_metrics
from .evaluation import evaluate_dataset as evaluate_dataset
from .loop import TrainResult as TrainResult
from .loop import train as train
from .metrics import cross_entropy as cross_entropy
from .metrics import evaluate as evaluate
from .metrics import mae as mae
from .metrics import mse as mse
from .metrics import ssim as ssim
from .plots import plot_forecasts as plot_forecasts
from .plots import plot_learning_curve as plot_learning_curve
from .signals import TrainingInterrupted as TrainingInterrupted
from .steps import TrainState as TrainState
from .steps import build_model as build_model
from .steps import create_train_state as create_train_state
from .steps import eval_step as eval_step
from .steps import make_optimizer as make_optimizer
from .steps import predict as predict
from .steps import train_step as train_step

__all__ = [
    "STEP",
    "CheckpointError",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingInterrupted",
    "baseline_metrics",
    "batch_indices",
    "bouncing_digits",
    "build_model",
    "build_parser",
    "copy_last_frame",
    "create_train_state",
    "cross_entropy",
    "eval_step",
    "evaluate",
    "evaluate_dataset",
    "load_data",
    "load_moving_mnist",
    "mae",
    "main",
    "make_optimizer",
    "mse",
    "plot_forecasts",
    "plot_learning_curve",
    "predict",
    "restore_latest",
    "save_checkpoint",
    "split_sequences",
    "ssim",
    "to_unit",
    "train",
    "train_step",
]
