"""The training loop: `train` and what it returns, `TrainResult`."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time
from typing import Any

from .batches import batch_indices, split_sequences, to_unit
from .checkpoints import restore_latest, save_checkpoint
from .config import ConfigError, TrainConfig
from .dataset import load_data
from .evaluation import _format, _save_figures, _save_radar_figures, baseline_metrics, evaluate_dataset, nowcast_skill
from .placement import _placers
from .signals import TrainingInterrupted, _StopSignals
from .steps import TrainState, build_model, create_train_state, make_optimizer, train_step
from .workdir import CHECKPOINTS, CONFIG_FILE, LOG_FILE, SKILL_FILE, _read_log, _write_atomically


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
      skill: for radar, the nowcasting skill of the final state and of the baselines
        (`evaluation.nowcast_skill`, also in `skill.json`); None otherwise.
    """

    state: TrainState
    metrics: dict[str, float]
    baseline: dict[str, float]
    steps_run: int
    wall_time: float
    workdir: pathlib.Path
    checkpoint_steps: tuple[int, ...]
    skill: dict[str, dict[str, Any]] | None = None


def train(config: TrainConfig) -> TrainResult:
    """Trains, evaluates, checkpoints and plots as `config` says, resuming a run its workdir holds.

    Prints the baseline, each evaluation and a progress bar (on a terminal, if `config.progress`).
    See `convlstm_jax.training.cli`'s docstring for the files written, and the Training guide for resuming and
    for interruptions.

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
            return place_state(
                create_train_state(model, make_optimizer(config), train_inputs, seed=config.seed, loss=config.loss)
            )

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
        skill = None
        if config.radar:
            skill = nowcast_skill(state, val_inputs, val_targets, batch_size=config.batch_size, place=place_batch)
            _write_atomically(workdir / SKILL_FILE, json.dumps(skill, indent=1) + "\n")
            _save_radar_figures(
                workdir, skill, state, val_inputs, val_targets, place_batch, interval_minutes=config.interval_minutes
            )
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
        skill=skill,
    )
