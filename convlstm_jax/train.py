"""Training the encoder-forecaster of Shi et al. 2015 on moving digits: the library and `convlstm-train`.

The pieces can be used one by one in another loop:

- `TrainConfig`: every option of a run, with the command line's defaults;
- `load_data`, `build_model`, `make_optimizer`, `create_train_state`: what a run is made of;
- `train_step` (the paper's loss, one optimiser update) and `eval_step` (`metrics.evaluate`),
  each compiled once per model, optimiser and batch shape;
- `evaluate_dataset` and `baseline_metrics`: figures over a whole validation set;
- `train`: the loop, with evaluation, logging, checkpoints and figures, which `main` runs.

A run lives in its workdir: `config.json`, `checkpoints/<step>/` (Orbax: the state and the
options), the figures `forecasts.png` and `learning_curve.png`, and `metrics.jsonl`, one JSON
record per line, where `step` counts the updates made:

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

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from convlstm_common import parse_network

from . import metrics
from ._conv import compiler_options
from .data import batch_indices, bouncing_digits, copy_last_frame, load_moving_mnist, split_sequences, to_unit
from .models import EncoderForecaster

METRICS = ("cross_entropy", "mse", "mae", "ssim")

# The baseline's frames are grey levels k / 255. As probabilities they are kept half a level away from
# 0 and 1: one white pixel where the truth is black would otherwise make their cross-entropy infinite.
BASELINE_FLOOR = 1 / 510

# Options that only schedule a run: they may change when a run is resumed.
SCHEDULE_OPTIONS = ("steps", "eval_every", "checkpoint_every", "keep_checkpoints", "workdir", "progress", "sharding")

LOG_FILE, CONFIG_FILE, CHECKPOINTS = "metrics.jsonl", "config.json", "checkpoints"
# A damaged checkpoint `checkpoints/<step>` is renamed `checkpoints/<step>.corrupt-<n>`.
CORRUPT_MARK = ".corrupt-"
FORECASTS_FIGURE, CURVE_FIGURE = "forecasts.png", "learning_curve.png"


class ConfigError(ValueError):
    """A run cannot start: an invalid option, unusable data, or a workdir written by another run."""


class CheckpointError(RuntimeError):
    """A run cannot resume: every checkpoint in its workdir is damaged."""


class TrainingInterrupted(Exception):
    """`train` stopped on SIGINT or SIGTERM (or a preemption notice) after checkpointing its last step.

    Attributes:
      signal: the signal that stopped it (`signal.SIGTERM` for a preemption notice).
      step: the last step completed, the checkpoint's.
      checkpoint: the checkpoint's folder.
    """

    def __init__(self, signum: signal.Signals, step: int, checkpoint: pathlib.Path) -> None:
        super().__init__(f"stopped by {signum.name} after step {step}; checkpoint in {checkpoint}")
        self.signal, self.step, self.checkpoint = signum, step, checkpoint


def _option(default: Any, help: str, **parser_kwargs: Any) -> Any:
    """A `TrainConfig` field with its command-line help (and any other `add_argument` keyword)."""
    return dataclasses.field(default=default, metadata={"help": help, **parser_kwargs})


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run; `convlstm-train --option-name` sets the field `option_name`.

    Each field is described by its command-line help (`convlstm-train --help`, or the field's
    `metadata["help"]`).

    The default model is a one-layer encoder and forecaster of 32 hidden states on 4 x 4 patches of
    64 x 64 frames, trained by RMSProp for 600 steps of 8 sequences: about five minutes on two CPU
    cores, after which its validation MSE is half that of repeating the last input frame. Its
    forecasts are still blurred at that point (their SSIM is below the baseline's); longer runs and
    the network of the paper (Table 1), `--spec "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64"`, sharpen them.

    Invalid values raise `ConfigError` on construction, except those that depend on the data or
    the devices, which `train` checks before it starts.
    """

    spec: str = _option(
        "ConvLSTM(3x3)-3x3-32",
        "the network in the notation of Shi et al. 2015: 'ConvLSTM(<input kernel>)' then "
        "'-<state kernel>-<hidden states>' per layer",
    )
    patch_size: int = _option(4, "the side of the square patches the frames are cut into (the paper: 4)")
    peephole: str = _option("hadamard", "the peephole connections", choices=("hadamard", "conv", "none"))
    data: str = _option(
        "embedded",
        "'embedded' (bouncing digits made offline) or the path of mnist_test_seq.npy",
        metavar="{embedded,PATH}",
    )
    train_sequences: int = _option(
        1024, "training sequences; from a file, its first ones (the validation ones are its last)"
    )
    val_sequences: int = _option(64, "validation sequences")
    size: int = _option(64, "the side of the square frames, in pixels")
    input_frames: int = _option(10, "frames the model reads")
    output_frames: int = _option(10, "frames the model forecasts")
    batch_size: int = _option(8, "sequences per training step (and per evaluation batch)")
    steps: int = _option(600, "training steps in all, counting those of a resumed run")
    optimizer: str = _option("rmsprop", "the optimiser (the paper: RMSProp)", choices=("rmsprop", "adam"))
    learning_rate: float = _option(1e-3, "the learning rate")
    decay: float = _option(0.9, "RMSProp's decay of the mean squared gradient (ignored by Adam)")
    clip_norm: float | None = _option(
        None, "clip the gradient to this global norm ('none': no clipping)", type=_optional_float, metavar="X"
    )
    seed: int = _option(0, "seeds the embedded digits, the initial parameters and the order of the batches")
    eval_every: int = _option(100, "steps between evaluations on the validation set (0: at the end only)")
    checkpoint_every: int = _option(200, "steps between checkpoints (0: at the end only)")
    keep_checkpoints: int = _option(3, "how many of the latest checkpoints to keep")
    workdir: str = _option("convlstm_run", "where the run's files go; a checkpoint there is resumed", metavar="DIR")
    sharding: str = _option(
        "none",
        "split each batch over the devices along its sequences ('data') or its frame rows ('spatial')",
        choices=("none", "data", "spatial"),
    )
    progress: bool = _option(True, "show a progress bar (only on a terminal)")

    def __post_init__(self) -> None:
        positive = ("patch_size", "train_sequences", "val_sequences", "size", "input_frames", "output_frames")
        for name in (*positive, "batch_size", "steps", "keep_checkpoints"):
            _check_int(name, getattr(self, name), 1)
        for name in ("eval_every", "checkpoint_every", "seed"):
            _check_int(name, getattr(self, name), 0)
        for name in ("peephole", "optimizer", "sharding"):
            choices = _field(name).metadata["choices"]
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {choices}, got {getattr(self, name)!r}.")
        try:
            parse_network(self.spec)
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None
        if self.size % self.patch_size:
            raise ConfigError(
                f"{self.size}x{self.size} frames do not cut into {self.patch_size}x{self.patch_size} patches: "
                f"size must be a multiple of patch_size."
            )
        if self.batch_size > self.train_sequences:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be at most train_sequences ({self.train_sequences})."
            )
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}.")
        if not 0 <= self.decay < 1:
            raise ConfigError(f"decay must be in [0, 1), got {self.decay}.")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ConfigError(f"clip_norm must be positive or None, got {self.clip_norm}.")

    @property
    def frames(self) -> int:
        """Frames per sequence: `input_frames + output_frames`."""
        return self.input_frames + self.output_frames


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}.")


# --- What a run is made of ---------------------------------------------------------------------------


def load_data(config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation sequences, uint8 (N, input_frames + output_frames, H, W, 1).

    With `data="embedded"`, `train_sequences + val_sequences` sequences of two bouncing digits
    (`data.bouncing_digits`, digits 7/16 of the frame's side, seeded by `seed`), the first ones for
    training. From a Moving MNIST file, the first `train_sequences` for training and the last
    `val_sequences` for validation, each cut to its first `input_frames + output_frames` frames:
    the split depends on the file alone.

    Raises:
      ConfigError: if the file is missing or unreadable, has too few sequences or frames, or its
        frames are not `size` x `size`.
    """
    wanted = config.train_sequences + config.val_sequences
    if config.data == "embedded":
        digit_size = max(1, config.size * 7 // 16)  # 28 pixels in a 64-pixel frame, as Moving MNIST
        sequences = bouncing_digits(wanted, config.frames, size=config.size, digit_size=digit_size, seed=config.seed)
        return sequences[: config.train_sequences], sequences[config.train_sequences :]
    try:
        sequences = load_moving_mnist(config.data)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(str(error)) from None
    count, frames, height, width, _ = sequences.shape
    if (height, width) != (config.size, config.size):
        raise ConfigError(f"The frames of {config.data!r} are {height}x{width}; pass --size {height} to use them.")
    if frames < config.frames:
        raise ConfigError(
            f"{config.data!r} has {frames} frames a sequence, fewer than "
            f"input_frames + output_frames = {config.frames}."
        )
    if count < wanted:
        raise ConfigError(
            f"{config.data!r} has {count} sequences, fewer than train_sequences + val_sequences = {wanted}."
        )
    keep = slice(0, config.frames)
    return sequences[: config.train_sequences, keep].copy(), sequences[count - config.val_sequences :, keep].copy()


def build_model(config: TrainConfig, *, in_channels: int = 1) -> EncoderForecaster:
    """The `EncoderForecaster` of `config.spec`, patch size, peephole and output frames."""
    peephole = None if config.peephole == "none" else config.peephole
    return EncoderForecaster.from_spec(
        config.spec,
        in_channels=in_channels,
        patch_size=config.patch_size,
        output_frames=config.output_frames,
        peephole=peephole,
    )


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """RMSProp (learning rate 1e-3, decay 0.9, as Shi et al. 2015, Sec. 4.1) or Adam, with optional
    clipping of the gradient's global norm first.

    Equal settings return the same object, so `train_step`, compiled for one run, serves the next.

    Example:
      >>> make_optimizer(TrainConfig()) is make_optimizer(TrainConfig(steps=10))
      True
    """
    return _optimizer(config.optimizer, config.learning_rate, config.decay, config.clip_norm)


@functools.cache
def _optimizer(name: str, learning_rate: float, decay: float, clip_norm: float | None) -> optax.GradientTransformation:
    if name == "rmsprop":
        optimizer = optax.rmsprop(learning_rate, decay=decay)
    elif name == "adam":
        optimizer = optax.adam(learning_rate)
    else:
        raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {name!r}.")
    if clip_norm is not None:
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    return optimizer


class _jit:  # a decorator, like jax.jit
    """`jax.jit(fn, compiler_options=convlstm_jax.compiler_options(device))` for the devices the
    steps run on (`_placers` places everything on `jax.devices()`), made at the first call, so that
    importing this module starts no backend (`jax.distributed.initialize` must come first)."""

    def __init__(self, fn: Callable) -> None:
        self._fn = fn
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def jitted(self) -> Any:
        return jax.jit(self._fn, compiler_options=compiler_options(jax.devices()[0]))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.jitted(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # lower, trace, eval_shape, ... of the jitted function
        return getattr(self.jitted, name)


@flax.struct.dataclass
class TrainState:
    """The parameters, the optimiser's state and the step count; model and optimiser ride along.

    `model` and `optimizer` are static (not leaves): a checkpoint holds `step`, `params` and
    `opt_state`, and `jax.jit` compiles `train_step` once per model and optimiser.

    Attributes:
      step: updates made so far, an int32 scalar.
      params: the model's parameters (`variables["params"]`).
      opt_state: the optimiser's state.
      model: the `EncoderForecaster`.
      optimizer: the optax transformation.
    """

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    model: EncoderForecaster = flax.struct.field(pytree_node=False)
    optimizer: optax.GradientTransformation = flax.struct.field(pytree_node=False)


@functools.partial(jax.jit, static_argnums=0)
def _init_params(model: EncoderForecaster, key: jax.Array, frames: jax.Array) -> Any:
    return model.init(key, frames)["params"]


def create_train_state(
    model: EncoderForecaster, optimizer: optax.GradientTransformation, inputs: np.ndarray, *, seed: int = 0
) -> TrainState:
    """A fresh state: parameters initialised from `jax.random.key(seed)`, step 0.

    Args:
      model: the model to train.
      optimizer: its optimiser.
      inputs: example input frames (B, T, H, W, C); only their shape and dtype matter. uint8
        frames are taken as float32.
      seed: the seed of the initial parameters.
    """
    dtype = jnp.float32 if np.dtype(inputs.dtype) == np.uint8 else inputs.dtype
    frames = jnp.zeros((1, *inputs.shape[1:]), dtype)
    params = _init_params(model, jax.random.key(seed), frames)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        model=model,
        optimizer=optimizer,
    )


@_jit
def train_step(state: TrainState, inputs: jax.Array, targets: jax.Array) -> tuple[TrainState, jax.Array]:
    """One update on a batch, by the loss of Shi et al. 2015.

    The loss is `metrics.cross_entropy`: `optax.sigmoid_binary_cross_entropy` of the forecast's
    logits against the target frames, summed over each sequence's pixels, averaged over the batch.

    Args:
      state: the state before the update.
      inputs: input frames in [0, 1], (B, input_frames, H, W, C).
      targets: the frames that follow, in [0, 1], (B, output_frames, H, W, C).

    Returns:
      `(state, loss)`: the state after the update, and the loss before it.
    """

    def loss_fn(params: Any) -> jax.Array:
        return metrics.cross_entropy(state.model.apply({"params": params}, inputs), targets)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    # Adam's bias correction raises a Python float to the int32 step count, which strict dtype
    # promotion refuses; every array here is already float32, so standard promotion changes nothing.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = state.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), loss


@_jit
def eval_step(state: TrainState, inputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """`metrics.evaluate` of the forecast of `inputs` against `targets`: cross-entropy, MSE, MAE, SSIM."""
    return metrics.evaluate(state.model.apply({"params": state.params}, inputs), targets)


@_jit
def predict(state: TrainState, inputs: jax.Array) -> jax.Array:
    """The forecast frames, σ(logits), in [0, 1]."""
    return jax.nn.sigmoid(state.model.apply({"params": state.params}, inputs))


# --- Figures over a dataset ----------------------------------------------------------------------------

Placer = Callable[[Any], Any]


def _batches(count: int, batch_size: int) -> list[slice]:
    return [slice(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def _mean_over_batches(score: Callable[[slice], Mapping[str, Any]], count: int, batch_size: int) -> dict[str, float]:
    """The mean over `count` sequences of per-batch means, weighted by batch length, in float64."""
    totals: dict[str, float] = {}
    for batch in _batches(count, batch_size):
        length = batch.stop - batch.start
        for name, value in score(batch).items():
            totals[name] = totals.get(name, 0.0) + float(value) * length
    return {name: total / count for name, total in totals.items()}


def evaluate_dataset(
    state: TrainState,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    place: Placer | None = None,
) -> dict[str, float]:
    """`eval_step`'s four metrics over a whole set of sequences, batch by batch.

    Every metric is a mean over sequences of equal size, so the figure is the same however the set
    is cut into batches (up to float rounding).

    Args:
      state: the trained state.
      inputs, targets: uint8 sequences (N, T_in, H, W, C) and (N, T_out, H, W, C).
      batch_size: sequences per call of `eval_step`.
      place: puts a batch `(inputs, targets)` of float32 arrays on the devices (default: as is).

    Returns:
      `{"cross_entropy": ..., "mse": ..., "mae": ..., "ssim": ...}` as Python floats.
    """
    place = place or (lambda batch: batch)

    def score(batch: slice) -> Mapping[str, Any]:
        return eval_step(state, *place((to_unit(inputs[batch]), to_unit(targets[batch]))))

    return _mean_over_batches(score, len(inputs), batch_size)


@jax.jit
def _baseline_step(forecast: jax.Array, truth: jax.Array) -> dict[str, jax.Array]:
    p = jnp.clip(forecast, BASELINE_FLOOR, 1 - BASELINE_FLOOR)
    return {
        "cross_entropy": metrics.cross_entropy(jnp.log(p) - jnp.log1p(-p), truth),
        "mse": metrics.mse(forecast, truth),
        "mae": metrics.mae(forecast, truth),
        "ssim": metrics.ssim(forecast, truth),
    }


def baseline_metrics(inputs: np.ndarray, targets: np.ndarray, *, batch_size: int = 64) -> dict[str, float]:
    """The four metrics of the forecast that repeats the last input frame (`data.copy_last_frame`).

    MSE, MAE and SSIM are those of the repeated frames themselves; the cross-entropy takes them as
    probabilities kept `BASELINE_FLOOR` (half a grey level) away from 0 and 1.

    Args:
      inputs, targets: uint8 sequences (N, T_in, H, W, C) and (N, T_out, H, W, C).
      batch_size: sequences per batch.

    Returns:
      `{"cross_entropy": ..., "mse": ..., "mae": ..., "ssim": ...}` as Python floats.
    """

    def score(batch: slice) -> Mapping[str, Any]:
        truth = to_unit(targets[batch])
        return _baseline_step(to_unit(copy_last_frame(inputs[batch], truth.shape[1])), truth)

    return _mean_over_batches(score, len(inputs), batch_size)


# --- Checkpoints: saving, verifying, stopping ------------------------------------------------------------

# What Orbax's restore raises from a damaged checkpoint (measured on truncated, altered and deleted
# files), itself or as the cause of the bare `Exception` it wraps a failed array read in: ValueError
# from TensorStore (DATA_LOSS, OUT_OF_RANGE, NOT_FOUND, ...) and from the JSON and UTF-8 decoders,
# KeyError and AttributeError from metadata that parses but lacks its fields, FileNotFoundError for a
# missing file.
_DAMAGE_ERRORS = (ValueError, KeyError, AttributeError, FileNotFoundError)
# TensorStore statuses that say the storage could not be read, rather than that it holds bad bytes:
# such an error is not damage and propagates.
_UNREADABLE = (
    "PERMISSION_DENIED",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED",
    "CANCELLED",
    "ABORTED",
)
# The checkpoint's items: the state, the options, and the SHA-256 digests of both.
STATE_ITEM, CONFIG_ITEM, DIGEST_ITEM = "state", "config", "digest"


class _Damaged(Exception):
    """A checkpoint that cannot be used; the message says why."""


def _tree_digest(tree: Any) -> str:
    """The SHA-256 of a pytree of arrays: each leaf's path, dtype, shape and bytes, in order."""
    sha = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = np.ascontiguousarray(jax.device_get(leaf))
        sha.update(f"{jax.tree_util.keystr(path)} {array.dtype.str} {array.shape}\n".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _options_digest(options: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def save_checkpoint(manager: Any, state: TrainState, config: TrainConfig) -> None:
    """Starts saving `state` and `config`'s options at `state.step`, with their digests.

    Args:
      manager: the run's `orbax.checkpoint.CheckpointManager`.
      state: the state to save.
      config: the run's options.
    """
    import orbax.checkpoint as ocp

    options = dataclasses.asdict(config)
    digest = {STATE_ITEM: _tree_digest(state), CONFIG_ITEM: _options_digest(options)}
    args = ocp.args.Composite(
        **{
            STATE_ITEM: ocp.args.StandardSave(state),
            CONFIG_ITEM: ocp.args.JsonSave(options),
            DIGEST_ITEM: ocp.args.JsonSave(digest),
        }
    )
    manager.save(int(state.step), args=args)


def _reason(error: BaseException) -> str:
    """The first line of an error's message, after its type, cut to 200 characters."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


def _damage(error: BaseException) -> BaseException | None:
    """The error in `error`'s chain of causes that says the checkpoint is damaged, if one does."""
    while error is not None:
        if isinstance(error, _DAMAGE_ERRORS):
            return None if str(error).startswith(_UNREADABLE) else error
        error = error.__cause__
    return None


def _restore_items(manager: Any, step: int, **items: Any) -> Any:
    """`manager.restore(step)` of the named items, with damage raised as `_Damaged`."""
    import orbax.checkpoint as ocp

    try:
        return manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:
        damage = _damage(error)
        if damage is None:
            raise
        raise _Damaged(_reason(damage)) from error


def _restore_options(manager: Any, step: int) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The options saved at `step` and the digests saved with them (None in a checkpoint without any).

    Raises:
      _Damaged: if they cannot be read or the options do not match their digest.
    """
    import orbax.checkpoint as ocp

    with_digest = (pathlib.Path(manager.directory) / str(step) / DIGEST_ITEM).is_dir()
    items = {CONFIG_ITEM: ocp.args.JsonRestore()}
    if with_digest:
        items[DIGEST_ITEM] = ocp.args.JsonRestore()
    restored = _restore_items(manager, step, **items)
    options, digest = restored[CONFIG_ITEM], restored[DIGEST_ITEM] if with_digest else None
    if not isinstance(options, dict) or (digest is not None and not isinstance(digest, dict)):
        raise _Damaged("its options or digests are not JSON objects")
    if digest is not None and digest.get(CONFIG_ITEM) != _options_digest(options):
        raise _Damaged("its options do not match the SHA-256 saved with them")
    return options, digest


def _read_every_value(folder: pathlib.Path) -> None:
    """Reads each value of the OCDBT database in `folder` (where Orbax stores arrays) in turn.

    TensorStore checks the checksums of the database's manifest and tree nodes and the extent of
    each value as it reads them. Damage found here stops cleanly; found during Orbax's restore,
    which reads the arrays concurrently, it would leave reads in flight that print tracebacks once
    the restore has failed.

    Raises:
      _Damaged: if a value cannot be read.
    """
    if not (folder / "manifest.ocdbt").is_file():
        return  # not an OCDBT database (or its manifest is missing, which Orbax reports)
    import tensorstore as ts

    try:
        store = ts.KvStore.open({"driver": "ocdbt", "base": folder.as_uri() + "/"}).result()
        for key in store.list().result():
            store.read(key).result()
    except Exception as error:
        damage = _damage(error)
        if damage is None:
            raise
        raise _Damaged(_reason(damage)) from error


def _restore_state(manager: Any, step: int, like: TrainState, digest: Mapping[str, str] | None) -> TrainState:
    """The state saved at `step`, shaped, typed and placed as `like`.

    Raises:
      _Damaged: if it cannot be read or does not match its digest.
    """
    import orbax.checkpoint as ocp

    _read_every_value(pathlib.Path(manager.directory) / str(step) / STATE_ITEM)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    state = _restore_items(manager, step, **{STATE_ITEM: ocp.args.StandardRestore(abstract)})[STATE_ITEM]
    if digest is not None and digest.get(STATE_ITEM) != _tree_digest(state):
        raise _Damaged("its arrays do not match the SHA-256 saved with them")
    return state


def _set_aside(directory: pathlib.Path, step: int) -> pathlib.Path:
    """Renames `directory/<step>` to the first free `directory/<step>.corrupt-<n>`; returns the new path."""
    n = 1
    while (directory / f"{step}{CORRUPT_MARK}{n}").exists():
        n += 1
    target = directory / f"{step}{CORRUPT_MARK}{n}"
    (directory / str(step)).rename(target)
    return target


def restore_latest(manager: Any, config: TrainConfig, fresh: Callable[[], TrainState]) -> TrainState:
    """The state of the newest usable checkpoint `manager` holds, or `fresh()` when it holds none.

    Each checkpoint, newest first, must hold options that `config` can continue (else `ConfigError`)
    and a state that matches the digests saved with it. A damaged one is reported on stderr (one
    line: its step and what is wrong), renamed `<step>.corrupt-<n>` (by process 0 in a run of
    several) so that it is neither tried again nor counted by `keep_checkpoints`, and the one
    before it is tried.

    Args:
      manager: the run's `orbax.checkpoint.CheckpointManager`.
      config: the run's options.
      fresh: makes the initial state; called at most once, after the options of the newest
        readable checkpoint are checked. Its structure, dtypes and placement are those a restored
        state takes.

    Raises:
      ConfigError: if the newest readable checkpoint holds a run with other options.
      CheckpointError: if every checkpoint is damaged (all are then set aside).
    """
    directory = pathlib.Path(manager.directory)
    damaged = []
    like = None
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            options, digest = _restore_options(manager, step)
            _check_resumable(options, config, step)
            like = fresh() if like is None else like
            state = _restore_state(manager, step, like, digest)
        except _Damaged as error:
            aside = _set_aside(directory, step) if jax.process_index() == 0 else directory / str(step)
            damaged.append(f"{step} ({aside.name})")
            print(f"Checkpoint {step} in {directory} is damaged ({error}); moved to {aside.name}.", file=sys.stderr)
            continue
        if damaged:
            manager.reload()
        return state
    if damaged:
        manager.reload()
        raise CheckpointError(
            f"No usable checkpoint in {directory}: each one is damaged and was set aside (steps "
            f"{', '.join(damaged)}). The same command now starts the run afresh; or put back a copy of the "
            "checkpoints and run it again."
        )
    return fresh() if like is None else like


class _StopSignals:
    """Turns SIGINT and SIGTERM into a request to stop between steps (a context manager).

    The handlers only record the signal and put the previous handlers back: the training loop asks
    `requested` between steps, checkpoints and stops, and a second signal acts as it would without
    them (Ctrl-C raises `KeyboardInterrupt` at once, SIGTERM ends the process). They are installed
    only in the main thread of a single-process run, and not for a signal the process ignores. In a
    run of several processes
    (`jax.distributed`), SIGTERM is JAX's preemption notice, which `requested` reads through
    `CheckpointManager.reached_preemption`: every process then stops at the same step.

    Attributes:
      received: the signal that asked to stop, or None.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
            for signum in self.SIGNALS:
                # None: a handler Python did not install; SIG_IGN: the signal is to be ignored (as a
                # shell has background jobs ignore SIGINT).
                if signal.getsignal(signum) not in (None, signal.SIG_IGN):
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum)
        self._restore()

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def requested(self, manager: Any, step: int) -> bool:
        """Whether to stop before the step after `step` (SIGTERM stands for a preemption notice)."""
        if self.received is None and manager.reached_preemption(step):
            self.received = signal.SIGTERM
        return self.received is not None


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename: a killed run leaves the old
    file or the new one, never a part."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, path)


# --- The loop ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` returns.

    Attributes:
      state: the final state.
      metrics: the validation metrics of the final state.
      baseline: the validation metrics of the copy-the-last-frame forecast.
      steps_run: steps this call made (fewer than `config.steps` when it resumed a run).
      wall_time: seconds this call took.
      workdir: the run's folder.
      checkpoint_steps: the steps of the checkpoints kept.
    """

    state: TrainState
    metrics: dict[str, float]
    baseline: dict[str, float]
    steps_run: int
    wall_time: float
    workdir: pathlib.Path
    checkpoint_steps: tuple[int, ...]


def _placers(config: TrainConfig) -> tuple[Placer, Placer]:
    """Functions placing a batch and a state on the devices for `config.sharding`, after checking
    that the batches split evenly."""
    if config.sharding == "none":
        # Committed to the default device, as Orbax restores arrays: a fresh state and a restored one
        # then share the compiled steps instead of compiling them twice.
        device = jax.devices()[0]
        return (lambda batch: batch), (lambda state: jax.device_put(state, device))
    from . import sharding

    mesh = sharding.make_mesh(config.sharding)
    devices = mesh.devices.size
    if config.sharding == "data" and config.batch_size % devices:
        raise ConfigError(
            f"--sharding data splits each batch over the {devices} devices: batch_size ({config.batch_size}) "
            f"must be a multiple of {devices}."
        )
    rows = config.size // config.patch_size
    if config.sharding == "spatial" and rows % devices:
        raise ConfigError(
            f"--sharding spatial splits the {rows} rows of patches (size / patch_size) over the {devices} "
            f"devices: they must be a multiple of {devices}."
        )

    def place_batch(batch: Any) -> Any:
        # An evaluation batch that does not split evenly (the last one) is copied to every device.
        if config.sharding == "data" and len(jax.tree.leaves(batch)[0]) % devices:
            return sharding.replicate(batch, mesh)
        return sharding.shard_batch(batch, mesh)

    return place_batch, functools.partial(sharding.replicate, mesh=mesh)


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, step: int) -> None:
    """Raises `ConfigError` unless a checkpoint at `step`, written with options `saved`, can continue
    as `config` says."""
    if step > config.steps:
        raise ConfigError(
            f"{config.workdir} holds a checkpoint at step {step}, past steps={config.steps}: "
            f"pass --steps {step} or more to resume it."
        )
    current = dataclasses.asdict(config)
    changed = [
        f"{name}: {saved.get(name)!r} in the checkpoint, {current[name]!r} now"
        for name in current
        if name not in SCHEDULE_OPTIONS and saved.get(name) != current[name]
    ]
    if changed:
        raise ConfigError(
            f"{config.workdir} holds a checkpoint (step {step}) of a run with other options, which cannot be "
            "resumed with these:\n  " + "\n  ".join(changed) + "\nPass the same options to continue that run, "
            "or another --workdir to start a new one."
        )


def _read_log(path: pathlib.Path, *, until: int) -> list[dict[str, Any]]:
    """The records of the log at `path` up to step `until`; none if there is no log.

    The log is complete up to every checkpoint's step; past it, a killed run may have left a line
    cut short, which ends the records read (all later ones are past the checkpoint too).
    """
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if record["step"] <= until:
            records.append(record)
    return records


def _format(values: Mapping[str, float]) -> str:
    return (
        f"cross-entropy {values['cross_entropy']:9.2f}  MSE {values['mse']:.5f}  "
        f"MAE {values['mae']:.5f}  SSIM {values['ssim']:.4f}"
    )


def _save_figures(
    workdir: pathlib.Path,
    records: Sequence[Mapping[str, Any]],
    state: TrainState,
    val_inputs: np.ndarray,
    val_targets: np.ndarray,
    place_batch: Placer,
) -> None:
    from .plots import plot_forecasts, plot_learning_curve

    count = min(3, len(val_inputs))
    inputs, targets = to_unit(val_inputs[:count]), to_unit(val_targets[:count])
    forecast = predict(state, place_batch((inputs,))[0])
    step = int(state.step)
    plot_forecasts(
        workdir / FORECASTS_FIGURE, inputs, targets, np.asarray(forecast), title=f"Validation sequences, step {step}"
    )
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    baseline = [r for r in records if r["kind"] == "baseline"]
    plot_learning_curve(
        workdir / CURVE_FIGURE,
        train_steps=[r["step"] for r in train],
        train_loss=[r["loss"] for r in train],
        val_steps=[r["step"] for r in val],
        val_cross_entropy=[r["cross_entropy"] for r in val],
        val_mse=[r["mse"] for r in val],
        baseline_mse=baseline[0]["mse"] if baseline else None,
    )


def train(config: TrainConfig) -> TrainResult:
    """Trains, evaluates, checkpoints and plots as `config` says, resuming a run its workdir holds.

    Prints the baseline, each evaluation and a progress bar (on a terminal, if `config.progress`).
    See the module's docstring for the files written, for resuming and for interruptions.

    Raises:
      ConfigError: if the data cannot be used, the devices do not divide the batches as
        `config.sharding` asks, or the workdir holds a checkpoint of a run with other options.
      CheckpointError: if every checkpoint in the workdir is damaged.
      TrainingInterrupted: on SIGINT or SIGTERM (or a preemption notice), once the last step
        completed is checkpointed.
    """
    import orbax.checkpoint as ocp
    from tqdm import tqdm

    started = time.perf_counter()
    train_set, val_set = load_data(config)
    place_batch, place_state = _placers(config)
    workdir = pathlib.Path(config.workdir).absolute()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"Cannot create the workdir: {error}") from None
    train_inputs, train_targets = split_sequences(train_set, config.input_frames)
    val_inputs, val_targets = split_sequences(val_set, config.input_frames)

    options = ocp.CheckpointManagerOptions(
        max_to_keep=config.keep_checkpoints, create=True, cleanup_tmp_directories=True
    )
    with ocp.CheckpointManager(workdir / CHECKPOINTS, options=options) as manager, _StopSignals() as stop:
        model = build_model(config, in_channels=train_set.shape[-1])

        def fresh() -> TrainState:
            return place_state(create_train_state(model, make_optimizer(config), train_inputs, seed=config.seed))

        state = restore_latest(manager, config, fresh)
        start = int(state.step)
        _write_atomically(workdir / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2) + "\n")

        log_path = workdir / LOG_FILE
        records = _read_log(log_path, until=start)
        baseline = baseline_metrics(val_inputs, val_targets, batch_size=config.batch_size)
        if not any(record["kind"] == "baseline" for record in records):
            records.insert(0, {"step": 0, "kind": "baseline", **baseline})
        _write_atomically(log_path, "".join(json.dumps(record) + "\n" for record in records))
        tqdm.write(f"copy the last frame: {_format(baseline)}")
        if start:
            tqdm.write(f"resumed {workdir} at step {start} of {config.steps}")

        val_metrics = None
        show = config.progress and sys.stderr.isatty()
        step = start
        with (
            open(log_path, "a", buffering=1) as log,  # line-buffered: the log follows the run
            tqdm(total=config.steps, initial=start, disable=not show, unit="step", dynamic_ncols=True) as bar,
        ):

            def write(record: dict[str, Any]) -> None:
                records.append(record)
                log.write(json.dumps(record) + "\n")

            while step < config.steps and not stop.requested(manager, step):
                batch = batch_indices(len(train_inputs), config.batch_size, step, seed=config.seed)
                inputs, targets = to_unit(train_inputs[batch]), to_unit(train_targets[batch])
                state, loss = train_step(state, *place_batch((inputs, targets)))
                step, loss = step + 1, float(loss)
                write({"step": step, "kind": "train", "loss": loss})
                bar.update()
                bar.set_postfix(loss=f"{loss:.1f}", refresh=False)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"The loss is {loss} at step {step}; try --clip-norm or a lower rate.")
                if step == config.steps or (config.eval_every and step % config.eval_every == 0):
                    val_metrics = evaluate_dataset(
                        state, val_inputs, val_targets, batch_size=config.batch_size, place=place_batch
                    )
                    write({"step": step, "kind": "val", **val_metrics})
                    tqdm.write(f"step {step:6d}  validation:  {_format(val_metrics)}")
                if step == config.steps or (config.checkpoint_every and step % config.checkpoint_every == 0):
                    log.flush()  # the log is complete up to every checkpoint's step
                    save_checkpoint(manager, state, config)
        if stop.requested(manager, step):  # the log, closed, holds every step up to `step`
            if step not in manager.all_steps():
                save_checkpoint(manager, state, config)
            manager.wait_until_finished()
            raise TrainingInterrupted(stop.received, step, workdir / CHECKPOINTS / str(step))
        if val_metrics is None:  # nothing left to train
            val_metrics = evaluate_dataset(
                state, val_inputs, val_targets, batch_size=config.batch_size, place=place_batch
            )
        _save_figures(workdir, records, state, val_inputs, val_targets, place_batch)
        manager.wait_until_finished()
        checkpoint_steps = tuple(manager.all_steps())
    return TrainResult(
        state=state,
        metrics=val_metrics,
        baseline=baseline,
        steps_run=config.steps - start,
        wall_time=time.perf_counter() - started,
        workdir=workdir,
        checkpoint_steps=checkpoint_steps,
    )


# --- Command line --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The `convlstm-train` parser: one option per `TrainConfig` field, with its default."""
    parser = argparse.ArgumentParser(
        prog="convlstm-train",
        description="Train the ConvLSTM encoder-forecaster of Shi et al. 2015 on moving digits.",
        epilog="A checkpoint in --workdir is resumed; see `python -m pydoc convlstm_jax.train`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for field in dataclasses.fields(TrainConfig):
        kwargs = dict(field.metadata)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default, **kwargs)
        else:
            kwargs.setdefault("type", type(field.default))
            if kwargs["type"] in (int, float) and "choices" not in kwargs:
                kwargs.setdefault("metavar", "N" if kwargs["type"] is int else "X")
            parser.add_argument(flag, default=field.default, **kwargs)
    return parser


def _summary(config: TrainConfig, result: TrainResult) -> str:
    minutes, seconds = divmod(round(result.wall_time), 60)
    header = f"{'':17s}{'cross-entropy':>14s}{'MSE':>10s}{'MAE':>10s}{'SSIM':>9s}"

    def row(name: str, values: Mapping[str, float]) -> str:
        return (
            f"{name:17s}{values['cross_entropy']:14.2f}{values['mse']:10.5f}{values['mae']:10.5f}{values['ssim']:9.4f}"
        )

    checkpoints = ", ".join(map(str, result.checkpoint_steps))
    workdir = result.workdir
    return "\n".join(
        [
            f"Validation, {config.val_sequences} sequences, after {config.steps} steps of {config.spec}:",
            header,
            row("model", result.metrics),
            row("copy last frame", result.baseline),
            f"Wall time {minutes} min {seconds} s ({result.steps_run} steps this run).",
            f"Files in {workdir}: {CONFIG_FILE}, {LOG_FILE}, {FORECASTS_FIGURE}, {CURVE_FIGURE}, "
            f"{CHECKPOINTS}/ (steps {checkpoints}).",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`convlstm-train`: parses `argv` (default: the command line), trains, prints a summary.

    Returns 0 when the run completes. Invalid options, unusable data or a workdir holding another
    run exit with status 2 and a message; a workdir whose checkpoints are all damaged returns 1.
    SIGINT (Ctrl-C) or SIGTERM checkpoints the last step completed and returns 128 plus the
    signal's number, as a shell reports a process the signal ended: 130 and 143.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = TrainConfig(**vars(args))
        result = train(config)
    except ConfigError as error:
        parser.error(str(error))
    except CheckpointError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as stop:
        print(
            f"{parser.prog}: stopped by {stop.signal.name} after step {stop.step} of {config.steps}; "
            f"checkpoint saved in {stop.checkpoint}. The same command resumes the run from there.",
            file=sys.stderr,
        )
        return 128 + stop.signal
    except KeyboardInterrupt:
        print(f"Interrupted: the same command resumes from the latest checkpoint in {args.workdir}.", file=sys.stderr)
        return 130
    print(_summary(config, result))
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
