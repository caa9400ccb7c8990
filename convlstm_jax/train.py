"""Training the encoder-forecaster of Shi et al. 2015 on moving digits or radar: the library and `convlstm-train`.

The pieces can be used one by one in another loop:

- `TrainConfig`: every option of a run, with the command line's defaults;
- `load_data`, `build_model`, `make_optimizer`, `create_train_state`: what a run is made of;
- `train_step` (the paper's loss, one optimiser update) and `eval_step` (`metrics.evaluate`),
  each compiled once per model, optimiser and batch shape;
- `evaluate_dataset` and `baseline_metrics`: figures over a whole validation set;
- `train`: the loop, with evaluation, logging, checkpoints and figures, which `main` runs.

They live in the package `convlstm_jax.training`, one module per part (see its docstring).

A run lives in its workdir: `config.json`, `checkpoints/<step>/` (Orbax: the state and the
options), the figures `forecasts.png` and `learning_curve.png`, for radar (`--data radar`) the
nowcasting skill of the model and of pysteps' baselines, `skill.json`, with the figures
`skill_csi.png` and `radar_forecasts.png`, and `metrics.jsonl`, one JSON record per line, where
`step` counts the updates made:

    {"step": 0, "kind": "baseline", "cross_entropy": ..., "mse": ..., "mae": ..., "ssim": ...}
    {"step": 1, "kind": "train", "loss": ...}      (the loss of the batch of the first update)
    {"step": 100, "kind": "val", "cross_entropy": ..., "mse": ..., "mae": ..., "ssim": ...}

Resuming is automatic: when the workdir holds a checkpoint, `train` restores the latest one and
continues from its step, so running the same command again after an interruption finishes the run.
Batches depend only on the step (`data.batch_indices`), so the continued run sees the batches an
uninterrupted run sees, and on CPU ends with the same parameters, bit for bit. Only the schedule
may change on resume (`steps`, `eval_every`, `checkpoint_every`, `keep_checkpoints`, `workdir`,
`progress`, `sharding`; results are bitwise the same only with the same `sharding`); a resume
with any other option changed is refused with a `ConfigError`. The log is cut back to the
checkpoint's step, so it too reads as an uninterrupted run's. Use another workdir to start afresh.

Interruptions and damage:

- SIGINT (Ctrl-C) or SIGTERM (the notice a preemptible VM gets) lets the step under way finish,
  checkpoints it, and stops the run: `train` raises `TrainingInterrupted`, and `convlstm-train`
  says where the checkpoint is and exits with status 130 (SIGINT) or 143 (SIGTERM), as a shell
  reports a process the signal ended. The log then ends at the checkpoint's step. A second signal
  acts at once, as without these handlers.
- A run killed outright (SIGKILL, a crash), even while saving, resumes from its newest complete
  checkpoint: Orbax writes a checkpoint under `checkpoints/<step>.orbax-checkpoint-tmp` and
  renames it when complete, and the restarted run deletes such leftovers.
- Each checkpoint holds the SHA-256 of its state and of its options. On resume, a checkpoint that
  cannot be read or does not match them is reported on stderr (one line: its step and what is
  wrong) and renamed `checkpoints/<step>.corrupt-<n>`, kept for inspection but never tried again
  nor counted by `keep_checkpoints`; the one before it is used. When no checkpoint is usable,
  `CheckpointError` says so (`convlstm-train` exits with status 1), and the same command then
  starts the run afresh.

Example (the defaults train in about five minutes on two CPU cores):

    convlstm-train --workdir runs/digits
    convlstm-train --spec "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64" --data mnist_test_seq.npy \\
        --train-sequences 9000 --val-sequences 1000 --steps 20000 --workdir runs/paper
"""

import sys

from . import training
from .training import CheckpointError as CheckpointError
from .training import ConfigError as ConfigError
from .training import TrainConfig as TrainConfig
from .training import TrainingInterrupted as TrainingInterrupted
from .training import TrainResult as TrainResult
from .training import TrainState as TrainState
from .training import baseline_metrics as baseline_metrics
from .training import build_model as build_model
from .training import build_parser as build_parser
from .training import create_train_state as create_train_state
from .training import eval_step as eval_step
from .training import evaluate_dataset as evaluate_dataset
from .training import load_data as load_data
from .training import main as main
from .training import make_optimizer as make_optimizer
from .training import predict as predict
from .training import restore_latest as restore_latest
from .training import save_checkpoint as save_checkpoint
from .training import train as train
from .training import train_step as train_step
from .training.checkpoints import CONFIG_ITEM as CONFIG_ITEM
from .training.checkpoints import CORRUPT_MARK as CORRUPT_MARK
from .training.checkpoints import DIGEST_ITEM as DIGEST_ITEM
from .training.checkpoints import STATE_ITEM as STATE_ITEM
from .training.config import SCHEDULE_OPTIONS as SCHEDULE_OPTIONS
from .training.evaluation import BASELINE_FLOOR as BASELINE_FLOOR
from .training.evaluation import METRICS as METRICS
from .training.placement import Placer as Placer
from .training.workdir import CHECKPOINTS as CHECKPOINTS
from .training.workdir import CONFIG_FILE as CONFIG_FILE
from .training.workdir import CURVE_FIGURE as CURVE_FIGURE
from .training.workdir import FORECASTS_FIGURE as FORECASTS_FIGURE
from .training.workdir import LOG_FILE as LOG_FILE

__all__ = list(training.__all__)


if __name__ == "__main__":
    sys.exit(main())
