"""The command line, `convlstm-train`: its parser, built from `TrainConfig`, and `main`.

A run lives in its workdir: `config.json`, `checkpoints/<step>/` (Orbax: the state and the
options), `metrics.jsonl` (one JSON record per line: the baseline at step 0, the training loss
of each update, the validation metrics every `--eval-every` steps), the figures `forecasts.png`
and `learning_curve.png`, and for radar `skill.json`, `skill_csi.png` and `radar_forecasts.png`.
Running the same command again resumes from the newest usable checkpoint, as an uninterrupted run
would have gone on; SIGINT or SIGTERM checkpoints the step under way and exits with status 130 or
143. The Training guide (`docs/training.md`) has the details of resuming and of damaged
checkpoints.

Example (the defaults train in about five minutes on two CPU cores; `python -m convlstm_jax.training`
is the same command):

    convlstm-train --workdir runs/digits
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence

from .checkpoints import CheckpointError
from .config import PRESETS, ConfigError, TrainConfig
from .loop import TrainResult, train
from .signals import TrainingInterrupted
from .workdir import (
    CHECKPOINTS,
    CONFIG_FILE,
    CURVE_FIGURE,
    FORECASTS_FIGURE,
    LOG_FILE,
    RADAR_FIGURE,
    SKILL_FIGURE,
    SKILL_FILE,
)


def build_parser() -> argparse.ArgumentParser:
    """The `convlstm-train` parser: one option per `TrainConfig` field, with its default."""
    parser = argparse.ArgumentParser(
        prog="convlstm-train",
        description="Train the ConvLSTM encoder-forecaster of Shi et al. 2015 on moving digits or radar echoes.",
        epilog="A checkpoint in --workdir is resumed; see `python -m pydoc convlstm_jax.training.cli`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="start from a named set of options (the options given beside it win; --data radar alone starts "
        "from 'radar'): " + "; ".join(f"{name}: {' '.join(_flags(options))}" for name, options in PRESETS.items()),
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


def parse_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> dict[str, object]:
    """`TrainConfig`'s keyword arguments from `argv`: a `--preset`'s options, and the options given over them.

    `--data radar` without a preset starts from the preset `radar`.

    Example:
      >>> options = parse_options(build_parser(), ["--preset", "paper-radar", "--steps", "50"])
      >>> options["data"], options["patch_size"], options["steps"]
      ('radar', 2, 50)
    """
    known = parser.parse_known_args(argv)[0]
    preset = "radar" if known.preset is None and known.data == "radar" else known.preset
    if preset is not None:
        parser.set_defaults(**PRESETS[preset])
    options = vars(parser.parse_args(argv))
    del options["preset"]
    return options


def _flags(options: Mapping[str, object]) -> list[str]:
    return [
        f"--{name.replace('_', '-')} {value!r}" if isinstance(value, str) else f"--{name.replace('_', '-')} {value}"
        for name, value in options.items()
    ]


def _rain_rates(config: TrainConfig) -> str:
    """Where the rain rates of radar data come from: the Z-R relation of the data in use, or its source."""
    from ..nowcasting.units import HKO7_ZR_A, HKO7_ZR_B, ZR_A, ZR_B

    source = config.radar_source()
    if source is not None:
        return f"as pysteps' importer {source.importer!r} of source {source.name!r} gives them"
    if config.data == "radar":
        return f"of the synthetic radar, stored by Z = {ZR_A:g} R^{ZR_B:g}"
    return f"by HKO-7's Z = {HKO7_ZR_A:g} R^{HKO7_ZR_B:g}"


def _summary(config: TrainConfig, result: TrainResult) -> str:
    minutes, seconds = divmod(round(result.wall_time), 60)
    header = f"{'':17s}{'cross-entropy':>14s}{'MSE':>10s}{'MAE':>10s}{'SSIM':>9s}"

    def row(name: str, values: Mapping[str, float]) -> str:
        return (
            f"{name:17s}{values['cross_entropy']:14.2f}{values['mse']:10.5f}{values['mae']:10.5f}{values['ssim']:9.4f}"
        )

    checkpoints = ", ".join(map(str, result.checkpoint_steps))
    workdir = result.workdir
    skill, radar_files = [], ""
    if result.skill is not None:
        from ..nowcasting import skill_table

        skill = [
            f"Nowcasting skill on the validation sequences (rain rates {_rain_rates(config)}; {SKILL_FILE} has "
            "every threshold and FSS):",
            skill_table(result.skill, interval_minutes=config.interval_minutes),
        ]
        radar_files = f", {SKILL_FILE}, {SKILL_FIGURE}, {RADAR_FIGURE}"
    return "\n".join(
        [
            f"Validation, {config.val_sequences} sequences, after {config.steps} steps of {config.spec}:",
            header,
            row("model", result.metrics),
            row("copy last frame", result.baseline),
            *skill,
            f"Wall time {minutes} min {seconds} s ({result.steps_run} steps this run).",
            f"Files in {workdir}: {CONFIG_FILE}, {LOG_FILE}, {FORECASTS_FIGURE}, {CURVE_FIGURE}{radar_files}, "
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
    args = parse_options(parser, argv)
    try:
        config = TrainConfig(**args)
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
        print(
            f"Interrupted: the same command resumes from the latest checkpoint in {args['workdir']}.", file=sys.stderr
        )
        return 130
    print(_summary(config, result))
    return 0
