"""The command line `convlstm-nowcast`: a trained radar run's nowcast from the latest frames of an archive.

    convlstm-nowcast WORKDIR --data pysteps:knmi --data-root DIR --out DIR [--start 2010-08-26T06:00]
    convlstm-nowcast WORKDIR --data source --data-source FILE.json --out DIR

The run in WORKDIR (a `convlstm-train` workdir on radar) is restored from its newest usable checkpoint.
The archive (`nowcasting.sources.RadarSource`) may be another than the one the run was trained on: its
frames are put on the run's grid (`grid`, `pixel_km`, `size` of the run's options; for "tiles" every
whole tile, forecast one by one and put back together) and must be as many minutes apart as the run's.
The model reads the run's `input_frames` frames ending at the latest frame at or before `--start`
(default: the archive's latest) and forecasts its `output_frames`. The folder `--out` then holds:

- `forecast.nc`: the forecast rain rates in mm/h, written by pysteps' netCDF exporter, georeferenced
  from the source's metadata (its projection, with the corners and pixel size of the grid the model
  reads: the block means and the part of the domain the tiles or the crop cover); a source whose
  importer gives no projection and corners gets plain grid coordinates instead (distances from the
  grid's top-left corner, `"georeferenced": false` in `nowcast.json`);
- `forecast.png`: the inputs, the observations (grey where none) and the forecast, as strips;
- `skill.json`: where the archive holds every frame forecast, the skill of the model and of pysteps'
  baselines on them (`evaluation.nowcast_skill`, as a training run scores its validation sequences,
  each tile a sequence; a tile with an input frame entirely missing is left out);
- `nowcast.json`: the run, its checkpoint's step, the source, the times and the grid.

Bad input (an unknown source, a missing root or workdir, a workdir without a checkpoint, no frame at
or before `--start`, a gap among the input frames, an interval other than the run's) exits with
status 2 and one line, before any work and with nothing written; the outputs are written to a
temporary folder beside `--out` and moved into it at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..nowcasting import pixels_to_rain, plot_radar_forecasts
from .config import ConfigError, TrainConfig
from .workdir import CHECKPOINTS, CONFIG_FILE, SKILL_FILE

FORECAST_FILE, FORECAST_FIGURE, NOWCAST_FILE = "forecast.nc", "forecast.png", "nowcast.json"
# The metadata of a source's frame that place its grid on the Earth (as pysteps' importers give them).
GEODATA_KEYS = ("projection", "x1", "x2", "y1", "y2", "xpixelsize", "ypixelsize", "cartesian_unit", "yorigin")
# The projection written for a grid a source does not georeference: plain distances from its corner.
PLAIN_PROJECTION = "+proj=eqc +lat_0=0 +lon_0=0 +units=m"


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a nowcast reads and forecasts, checked before any work."""

    config: TrainConfig
    source: Any
    inputs: list[datetime.datetime]
    observed: list[datetime.datetime] | None


def build_parser() -> argparse.ArgumentParser:
    """The `convlstm-nowcast` parser."""
    parser = argparse.ArgumentParser(
        prog="convlstm-nowcast",
        description="Nowcast rain from a radar archive with a run trained by convlstm-train.",
        epilog="See `python -m pydoc convlstm_jax.training.nowcast` for the files written.",
    )
    parser.add_argument("workdir", metavar="WORKDIR", help="the workdir of a radar run of convlstm-train")
    parser.add_argument(
        "--data",
        required=True,
        metavar="{pysteps:NAME,source}",
        help="the radar archive: 'pysteps:NAME' (pysteps' data source NAME: knmi, mch, fmi, bom, ...; with "
        "--data-root) or 'source' (the settings of --data-source)",
    )
    parser.add_argument("--data-root", metavar="DIR", help="the root folder of the archive's layout")
    parser.add_argument(
        "--data-source", metavar="FILE.json", help="with --data source: a JSON object of pysteps' data-source settings"
    )
    parser.add_argument(
        "--start",
        metavar="TIME",
        help="forecast from the latest frame at or before this ISO time (e.g. 2010-08-26T06:00; "
        "default: the archive's latest frame)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder the forecast is written to")
    return parser


def _run_config(workdir: pathlib.Path) -> TrainConfig:
    """The options of the radar run in `workdir`, with its newest checkpoint present."""
    if not workdir.is_dir():
        raise ConfigError(f"No workdir at {os.fspath(workdir)!r}.")
    path = workdir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{os.fspath(workdir)!r} holds no run of convlstm-train (no {CONFIG_FILE}).")
    try:
        options = json.loads(path.read_text())
        config = TrainConfig(**options)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{os.fspath(path)!r} is not the options of a run: {error}") from None
    if not config.radar:
        raise ConfigError(f"{os.fspath(workdir)!r} holds a run on {config.data!r}, not on radar: it cannot nowcast.")
    checkpoints = workdir / CHECKPOINTS
    steps = [p for p in checkpoints.iterdir() if p.name.isdigit()] if checkpoints.is_dir() else []
    if not steps:
        raise ConfigError(f"{os.fspath(workdir)!r} holds no checkpoint: train the run first.")
    return config


def _source(args: argparse.Namespace) -> Any:
    """The archive of `--data`, through `TrainConfig.radar_source`'s checks."""
    if not (args.data.startswith("pysteps:") or args.data == "source"):
        raise ConfigError(f"--data must be 'pysteps:NAME' or 'source', got {args.data!r}.")
    return TrainConfig(data=args.data, data_root=args.data_root, data_source=args.data_source).radar_source()


def _plan(args: argparse.Namespace) -> _Plan:
    """Checks every input and finds the frames to read; raises `ConfigError` (or `ValueError`,
    `FileNotFoundError`) with one line."""
    from ..nowcasting.sources import archive_times

    start = None
    if args.start is not None:
        try:
            start = datetime.datetime.fromisoformat(args.start)
        except ValueError:
            raise ConfigError(f"--start must be an ISO time such as 2010-08-26T06:00, got {args.start!r}.") from None
        if start.tzinfo is not None:  # the archive's times are naive UTC, as pysteps reads them
            start = start.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    source = _source(args)
    config = _run_config(pathlib.Path(args.workdir))
    if not np.isclose(float(source.timestep), config.interval_minutes):
        raise ConfigError(
            f"Radar source {source.name!r} has frames {float(source.timestep):g} minutes apart; the run in "
            f"{args.workdir!r} was trained on frames {config.interval_minutes:g} minutes apart."
        )
    try:
        times = archive_times(source, end=start)
    except FileNotFoundError as error:
        raise ConfigError(str(error) if start is None else f"No frame at or before {start}: {error}") from None
    step = datetime.timedelta(minutes=float(source.timestep))
    last = times[-1]
    inputs = [last - step * k for k in range(config.input_frames - 1, -1, -1)]
    available = set(times)
    missing = [time for time in inputs if time not in available]
    if missing:
        raise ConfigError(
            f"Radar source {source.name!r} lacks the frame of {missing[0]}: the run reads {config.input_frames} "
            f"consecutive frames ending at {last}."
        )
    observed = [last + step * k for k in range(1, config.output_frames + 1)]
    try:
        later = set(archive_times(source, start=observed[0], end=observed[-1])) if start is not None else set()
    except FileNotFoundError:  # no frame after the inputs yet: nothing to score
        later = set()
    return _Plan(config, source, inputs, observed if later >= set(observed) else None)


def _read(plan: _Plan) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The frames in mm/h on the run's grid, (tiles, T, size, size), and each tile's top-left pixel."""
    from ..nowcasting.sources import load_source

    config = plan.config
    times = plan.inputs + (plan.observed or [])
    data = load_source(
        plan.source,
        frames_per_sequence=len(times),
        size=config.size,
        grid=config.grid,
        pixel_km=config.pixel_km,
        start=times[0],
        end=times[-1],
        max_missing=1.0,
    )
    return data.rain, data.tiles


def _geodata(plan: _Plan, tiles: list[tuple[int, int]], shape: tuple[int, int]) -> dict[str, Any]:
    """pysteps' metadata of the grid the forecast is on, from the source's metadata of its last input frame."""
    from pysteps import io

    from ..nowcasting.sources import grid_factor, read_frame

    source, config = plan.source, plan.config
    paths, _ = io.archive.find_by_date(
        plan.inputs[-1], source.root_path, source.path_fmt, source.fn_pattern, source.fn_ext, source.timestep
    )
    importer = io.get_method(source.importer, "importer")
    frame, metadata = read_frame(source, importer, paths[0], plan.inputs[-1])
    factor = grid_factor(source, metadata, paths[0], frame.shape, config.grid, config.size, config.pixel_km)
    top = left = 0
    if config.grid == "downscale":
        side = config.size * factor
        top, left = (frame.shape[0] - side) // 2, (frame.shape[1] - side) // 2
    top += min(row for row, _ in tiles) * factor
    left += min(column for _, column in tiles) * factor
    xsize = float(metadata.get("xpixelsize") or 1.0)
    ysize = float(metadata.get("ypixelsize") or xsize)
    height, width = shape[0] * factor * ysize, shape[1] * factor * xsize
    georeferenced = all(metadata.get(key) is not None for key in GEODATA_KEYS)
    if not georeferenced:  # the grid's own pixels, from its top-left corner
        x1, y1 = 0.0, 0.0
    elif metadata.get("yorigin", "upper") == "upper":
        x1, y1 = float(metadata["x1"]) + left * xsize, float(metadata["y2"]) - top * ysize - height
    else:
        x1, y1 = float(metadata["x1"]) + left * xsize, float(metadata["y1"]) + top * ysize
    return {
        **metadata,
        "projection": metadata["projection"] if georeferenced else PLAIN_PROJECTION,
        "cartesian_unit": metadata.get("cartesian_unit") or "m",
        "yorigin": metadata.get("yorigin", "upper") if georeferenced else "upper",
        "x1": x1,
        "x2": x1 + width,
        "y1": y1,
        "y2": y1 + height,
        "xpixelsize": xsize * factor,
        "ypixelsize": ysize * factor,
        "unit": "mm/h",
        "transform": None,
        "georeferenced": georeferenced,
    }


def _mosaic(rain: np.ndarray, tiles: list[tuple[int, int]], size: int) -> np.ndarray:
    """Tiles (N, T, size, size) put back at their places on one grid (T, H, W), NaN where no tile is."""
    top, left = min(row for row, _ in tiles), min(column for _, column in tiles)
    height = max(row for row, _ in tiles) - top + size
    width = max(column for _, column in tiles) - left + size
    out = np.full((rain.shape[1], height, width), np.nan, np.float32)
    for piece, (row, column) in zip(rain, tiles):
        out[:, row - top : row - top + size, column - left : column - left + size] = piece
    return out


def _forecast_rain(state: Any, pixels: np.ndarray) -> np.ndarray:
    """The model's forecast of HKO-7 pixels (B, T_in, H, W, 1), uint8 or float with NaN where missing, in mm/h."""
    from .steps import predict

    forecast = np.asarray(predict(state, np.asarray(pixels, np.float32) / np.float32(255)), np.float32)
    return pixels_to_rain(forecast[..., 0] * 255)


def nowcast(args: argparse.Namespace, plan: _Plan) -> dict[str, Any]:
    """Restores the run, forecasts, scores where observed, and writes the outputs to `args.out`."""
    import orbax.checkpoint as ocp
    from pysteps.io import exporters

    from .checkpoints import restore_latest
    from .dataset import _pixels
    from .evaluation import nowcast_skill
    from .steps import build_model, create_train_state, make_optimizer

    config = plan.config
    workdir = pathlib.Path(args.workdir).absolute()
    rain, tiles = _read(plan)
    pixels = _pixels(rain)
    inputs, targets = pixels[:, : config.input_frames], pixels[:, config.input_frames :]
    model = build_model(config)
    with ocp.CheckpointManager(workdir / CHECKPOINTS, options=ocp.CheckpointManagerOptions(create=False)) as manager:

        def fresh() -> Any:
            example = np.zeros((1, *inputs.shape[1:]), np.float32)
            return create_train_state(model, make_optimizer(config), example, seed=config.seed, loss=config.loss)

        state = restore_latest(manager, config, fresh)
    step = int(state.step)
    forecast = np.concatenate(
        [
            _forecast_rain(state, inputs[batch : batch + config.batch_size])
            for batch in range(0, len(inputs), config.batch_size)
        ]
    )
    skill = None
    # Tiles with an input frame entirely outside the radars' range cannot be extrapolated: left unscored.
    scored = ~np.isnan(rain[:, : config.input_frames]).all(axis=(2, 3)).any(axis=1)
    if plan.observed is not None and scored.any():
        skill = nowcast_skill(state, inputs[scored], targets[scored], batch_size=config.batch_size)
    field = _mosaic(forecast, tiles, config.size)
    observed_rain = _mosaic(pixels_to_rain(inputs[..., 0].astype(np.float32)), tiles, config.size)
    truth = (
        _mosaic(pixels_to_rain(targets[..., 0].astype(np.float32)), tiles, config.size)
        if plan.observed is not None
        else np.full_like(field, np.nan)
    )
    geodata = _geodata(plan, tiles, field.shape[1:])
    out = pathlib.Path(args.out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        exporter = exporters.initialize_forecast_exporter_netcdf(
            os.fspath(staging),
            "forecast",
            plan.inputs[-1],
            float(plan.source.timestep),
            config.output_frames,
            field.shape[1:],
            geodata,
        )
        exporters.export_forecast_dataset(field, exporter)
        exporters.close_forecast_files(exporter)
        minutes = float(plan.source.timestep)
        plot_radar_forecasts(
            staging / FORECAST_FIGURE,
            observed_rain,
            truth,
            {"model": field},
            interval_minutes=int(minutes) if minutes.is_integer() else minutes,
            title=f"{plan.source.name}, from {plan.inputs[-1]:%Y-%m-%d %H:%M}, run step {step}",
        )
        if skill is not None:
            (staging / SKILL_FILE).write_text(json.dumps(skill, indent=1) + "\n")
        summary = {
            "workdir": os.fspath(workdir),
            "step": step,
            "source": plan.source.name,
            "interval_minutes": minutes,
            "inputs": [time.isoformat() for time in plan.inputs],
            "forecast": [
                (plan.inputs[-1] + datetime.timedelta(minutes=minutes * k)).isoformat()
                for k in range(1, config.output_frames + 1)
            ],
            "observed": plan.observed is not None,
            "scored_tiles": int(scored.sum()) if skill is not None else 0,
            "grid": {"grid": config.grid, "pixel_km": config.pixel_km, "size": config.size, "tiles": tiles},
            "shape": list(field.shape),
            "georeferenced": geodata["georeferenced"],
        }
        (staging / NOWCAST_FILE).write_text(json.dumps(summary, indent=1) + "\n")
        out.mkdir(exist_ok=True)
        for name in (FORECAST_FILE, FORECAST_FIGURE, SKILL_FILE, NOWCAST_FILE):
            if (staging / name).exists():
                os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"forecast": field, "skill": skill, "summary": summary}


def main(argv: Sequence[str] | None = None) -> int:
    """`convlstm-nowcast`: checks the inputs (status 2 and one line on bad input), nowcasts, writes.

    Returns 0 when the outputs are written; a workdir whose checkpoints are all damaged returns 1.
    """
    from .checkpoints import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        plan = _plan(args)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        parser.error(str(error).splitlines()[0])
    try:
        result = nowcast(args, plan)
    except CheckpointError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError) as error:
        parser.error(str(error).splitlines()[0])
    summary = result["summary"]
    print(
        f"Nowcast of {summary['source']} from {summary['inputs'][-1]} by {args.workdir} (step {summary['step']}): "
        f"{len(summary['forecast'])} frames {summary['interval_minutes']:g} minutes apart in {args.out}"
        + (f"; skill against the observations in {SKILL_FILE}" if result["skill"] is not None else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
