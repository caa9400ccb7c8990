"""The command line, `convlstm-train`: its parser, built from `TrainConfig`, and `main`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence

from .checkpoints import CheckpointError
from .config import ConfigError, TrainConfig
from .loop import TrainResult, train
from .signals import TrainingInterrupted
from .workdir import CHECKPOINTS, CONFIG_FILE, CURVE_FIGURE, FORECASTS_FIGURE, LOG_FILE


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
