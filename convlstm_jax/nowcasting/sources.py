"""Radar archives that pysteps reads, cut into training sequences of rain rates.

A source is described as in pysteps' own data-source settings (the `data_sources` of its `pystepsrc`):
`root_path`, `path_fmt` (the folders, a `strftime` pattern), `fn_pattern` (the file name without its
extension, a `strftime` pattern in which `?` stands for any one character), `fn_ext`, `importer` (a
name for `pysteps.io.get_method(name, "importer")`), `importer_kwargs` and `timestep` (minutes between
frames). `RadarSource.from_pysteps("knmi", root)` takes pysteps' entry for a source with `root` as the
root of its layout; `RadarSource.from_json(path)` takes one written as such settings in a JSON file.

`load_source` finds every frame of the archive (or of a time range), splits them into runs without
gaps, reads the frames a run needs through `pysteps.io.archive.find_by_date`, `pysteps.io.read_timeseries`
and `pysteps.utils.to_rainrate`, puts each on the model's grid (`GRIDS`) and cuts sequences of
consecutive frames. Rain rates are float32 mm/h; NaN (pysteps' missing data) stays NaN through every
step. pysteps and the packages of its importers (`h5py`, `netCDF4`, `pillow`, `pyproj`: the `nowcast`
extra) are imported when a function needs them.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import os
import pathlib
import re
from typing import Any

import numpy as np

from convlstm_common import check_int as _check_int

# How frames become the model's square frames of `size` pixels:
# - "tiles": block means to `pixel_km` km, then every whole tile of `size` x `size` pixels (centred);
# - "crop": block means to `pixel_km` km, then the central `size` x `size` pixels;
# - "downscale": block means of the central square by the largest whole factor that keeps `size`
#   pixels, then its central `size` x `size` pixels: the most of the domain in one frame.
GRIDS = ("tiles", "crop", "downscale")
# The settings that describe a source, as in pysteps' `pystepsrc`.
SOURCE_KEYS = ("root_path", "path_fmt", "fn_pattern", "fn_ext", "importer", "importer_kwargs", "timestep")
# strftime directives a file name pattern may hold, with the digits each one reads.
_DIRECTIVES = {"Y": 4, "y": 2, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2, "j": 3}


@dataclasses.dataclass(frozen=True)
class RadarSource:
    """A radar archive as pysteps' data-source settings describe it (see the module's docstring).

    Attributes:
      name: a label for messages and results (a `data_sources` key, or the JSON file's name).
      root_path: the root folder of the archive's layout.
      path_fmt: the folders under `root_path`, a `strftime` pattern (may be empty).
      fn_pattern: the file name without its extension, a `strftime` pattern; `?` is any one character.
      fn_ext: the file name's extension, without its dot (e.g. "h5", "pgm.gz").
      importer: the pysteps importer, a name for `pysteps.io.get_method(importer, "importer")`.
      importer_kwargs: the importer's keyword arguments.
      timestep: minutes between frames.
    """

    name: str
    root_path: str
    path_fmt: str
    fn_pattern: str
    fn_ext: str
    importer: str
    importer_kwargs: dict[str, Any]
    timestep: float

    def __post_init__(self) -> None:
        for key in ("name", "root_path", "path_fmt", "fn_pattern", "fn_ext", "importer"):
            if not isinstance(getattr(self, key), str):
                raise TypeError(f"{key} of a radar source must be a str, got {type(getattr(self, key)).__name__}.")
        for key in ("fn_pattern", "fn_ext", "importer"):
            if not getattr(self, key):
                raise ValueError(f"{key} of radar source {self.name!r} must not be empty.")
        if not isinstance(self.importer_kwargs, dict):
            raise TypeError(
                f"importer_kwargs of radar source {self.name!r} must be a dict, "
                f"got {type(self.importer_kwargs).__name__}."
            )
        timestep = self.timestep
        if isinstance(timestep, bool) or not isinstance(timestep, (int, float, np.integer, np.floating)):
            raise TypeError(f"timestep of radar source {self.name!r} must be minutes, got {timestep!r}.")
        if not (math.isfinite(timestep) and timestep > 0):
            raise ValueError(f"timestep of radar source {self.name!r} must be positive minutes, got {timestep}.")
        _pattern_regex(self.fn_pattern)

    @classmethod
    def from_settings(cls, name: str, settings: Any, root: str | os.PathLike[str] | None = None) -> RadarSource:
        """A source from a mapping of pysteps' settings; `root`, if given, replaces `root_path`.

        Raises:
          ValueError: if a setting is missing or unknown, or has a wrong value.
          TypeError: if a setting has the wrong type.
        """
        if not isinstance(settings, dict):
            raise TypeError(f"The settings of radar source {name!r} must be a mapping, got {type(settings).__name__}.")
        missing = [key for key in SOURCE_KEYS if key not in settings and not (key == "root_path" and root)]
        unknown = sorted(set(settings) - set(SOURCE_KEYS))
        if missing or unknown:
            raise ValueError(
                f"Radar source {name!r} must give {SOURCE_KEYS} (as pysteps' data_sources), "
                f"got {sorted(settings)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
                + "."
            )
        values = {key: settings[key] for key in SOURCE_KEYS if key in settings}
        if root is not None:
            values["root_path"] = os.fspath(root)
        values["importer_kwargs"] = (
            dict(values["importer_kwargs"])
            if isinstance(values["importer_kwargs"], dict)
            else values["importer_kwargs"]
        )
        return cls(name=name, **values)

    @classmethod
    def from_pysteps(cls, name: str, root: str | os.PathLike[str]) -> RadarSource:
        """pysteps' own settings for source `name` (a key of `pysteps.rcparams.data_sources`: "knmi",
        "mch", "fmi", "bom", ...), with `root` the root of its layout (its `root_path`).

        Raises:
          ValueError: if pysteps has no source `name` (the message lists those it has).
        """
        if not isinstance(name, str):
            raise TypeError(f"A pysteps source name must be a str, got {type(name).__name__}.")
        sources = _pysteps_sources()
        if name not in sources:
            raise ValueError(f"pysteps has no data source {name!r}; its data sources are {sorted(sources)}.")
        return cls.from_settings(name, dict(sources[name]), root)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> RadarSource:
        """A source from a JSON object of pysteps' settings (`SOURCE_KEYS`). A relative `root_path` is
        relative to the JSON file's folder; `root`, if given, replaces it.

        Raises:
          FileNotFoundError: if there is no file at `path`.
          ValueError: if the file is not a JSON object of the settings.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No radar source file at {os.fspath(path)!r} (a JSON object of pysteps' settings)."
            )
        try:
            settings = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{os.fspath(path)!r} is not JSON: {error}.") from None
        if not isinstance(settings, dict):
            raise ValueError(
                f"{os.fspath(path)!r} must hold a JSON object of {SOURCE_KEYS}, got {type(settings).__name__}."
            )
        if root is None and isinstance(settings.get("root_path"), str):
            root = path.parent / settings["root_path"]
        return cls.from_settings(path.stem, settings, root)


@dataclasses.dataclass(frozen=True)
class RadarSequences:
    """Sequences cut from a radar archive.

    Attributes:
      rain: float32 rain rates in mm/h, (N, T, size, size); NaN where missing.
      times: the time of each sequence's first frame (naive datetimes, as pysteps' archive gives them).
      tiles: the (row, column) of each sequence's top-left pixel on the frame's grid after block means.
      interval_minutes: minutes between consecutive frames (the source's timestep).
      source: the source's name.
    """

    rain: np.ndarray
    times: list[datetime.datetime]
    tiles: list[tuple[int, int]]
    interval_minutes: float
    source: str


def _pysteps_sources() -> dict[str, Any]:
    import pysteps

    return dict(pysteps.rcparams.data_sources)


def _pattern_regex(fn_pattern: str) -> tuple[re.Pattern[str], str]:
    """A regex that matches names made by `fn_pattern`, one group per directive, and the strptime format
    of the groups joined."""
    regex, directives, i = "", "", 0
    while i < len(fn_pattern):
        char = fn_pattern[i]
        if char == "%":
            code = fn_pattern[i + 1 : i + 2]
            if code == "%":
                regex += "%"
            elif code in _DIRECTIVES:
                regex += f"(\\d{{{_DIRECTIVES[code]}}})"
                directives += f"%{code}"
            else:
                raise ValueError(
                    f"fn_pattern {fn_pattern!r} holds %{code}; file names are read with {sorted(_DIRECTIVES)} only."
                )
            i += 2
            continue
        regex += "." if char == "?" else re.escape(char)
        i += 1
    if not directives:
        raise ValueError(f"fn_pattern {fn_pattern!r} must hold the time in strftime directives (%Y, %m, ...).")
    return re.compile(regex), directives


def archive_times(
    source: RadarSource, start: datetime.datetime | None = None, end: datetime.datetime | None = None
) -> list[datetime.datetime]:
    """The times of every frame of `source`'s archive, from `start` to `end` (both included), sorted.

    Every file under `root_path`, at any depth, named `fn_pattern` + "." + `fn_ext` is a frame at the
    time its name holds.

    Raises:
      FileNotFoundError: if `root_path` is not a folder, or no file in the range is named as the source's.
    """
    root = pathlib.Path(source.root_path)
    if not root.is_dir():
        raise FileNotFoundError(f"The root of radar source {source.name!r}, {os.fspath(root)!r}, is not a folder.")
    regex, directives = _pattern_regex(source.fn_pattern)
    ending = "." + source.fn_ext
    times = set()
    for _, _, names in os.walk(root):
        for name in names:
            if not name.endswith(ending):
                continue
            match = regex.fullmatch(name[: -len(ending)])
            if match is None:
                continue
            try:
                time = datetime.datetime.strptime("".join(match.groups()), directives)
            except ValueError:
                continue
            if (start is None or time >= start) and (end is None or time <= end):
                times.add(time)
    if not times:
        span = "" if start is None and end is None else f" from {start} to {end}"
        raise FileNotFoundError(
            f"No file of radar source {source.name!r}{span} under {os.fspath(root)!r}: expected names as "
            f"{source.fn_pattern!r}.{source.fn_ext} in folders {source.path_fmt!r}."
        )
    return sorted(times)


def archive_runs(source: RadarSource, times: list[datetime.datetime]) -> list[list[datetime.datetime]]:
    """Splits sorted frame times into runs of frames `timestep` minutes apart; a gap of whole steps ends a run.

    Raises:
      ValueError: if two frames are apart by other than a whole number of steps (the source's
        `timestep` does not fit its files).
    """
    step = datetime.timedelta(minutes=float(source.timestep))
    runs = [[times[0]]]
    for previous, time in itertools.pairwise(times):
        steps = (time - previous) / step
        if abs(steps - round(steps)) > 1e-6:
            minutes = (time - previous).total_seconds() / 60
            raise ValueError(
                f"Radar source {source.name!r} has frames at {previous} and {time}, {minutes:g} "
                f"minutes apart: not a multiple of its timestep of {source.timestep:g} minutes."
            )
        if round(steps) == 1:
            runs[-1].append(time)
        else:
            runs.append([time])
    return runs


def block_mean(frame: np.ndarray, factor: int) -> np.ndarray:
    """Means of `factor` x `factor` blocks of a 2-D frame, the rows and columns that make no whole block
    left out; a block with any missing (NaN) pixel is missing.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting.sources import block_mean
      >>> block_mean(np.array([[1.0, 3.0, 5.0], [1.0, 3.0, np.nan]]), 1).shape
      (2, 3)
      >>> block_mean(np.array([[1.0, 3.0, 5.0, 5.0], [1.0, 3.0, np.nan, 5.0]]), 2)
      array([[ 2., nan]], dtype=float32)
    """
    if factor == 1:
        return np.asarray(frame, np.float32)
    rows, cols = frame.shape[0] // factor, frame.shape[1] // factor
    blocks = np.asarray(frame[: rows * factor, : cols * factor], np.float64).reshape(rows, factor, cols, factor)
    return blocks.mean(axis=(1, 3)).astype(np.float32)


def read_frame(source: RadarSource, importer: Any, path: str, time: datetime.datetime) -> tuple[np.ndarray, dict]:
    """One frame in mm/h (float32, NaN where missing) and its metadata, through pysteps."""
    from pysteps import io
    from pysteps.utils import to_rainrate

    try:
        values, _, metadata = io.read_timeseries(([path], [time]), importer, **source.importer_kwargs)
        values, metadata = to_rainrate(values, metadata)
    except Exception as error:  # an importer's own error (h5py, netCDF4, PIL, a KeyError ...) names no file
        raise ValueError(
            f"pysteps' importer {source.importer!r} (with {source.importer_kwargs}) could not read {path!r} "
            f"as radar source {source.name!r}: {type(error).__name__}: {error}"
        ) from None
    values = np.ma.filled(np.ma.asarray(values, np.float64), np.nan)[0]
    return values.astype(np.float32), metadata


def _pixel_metres(source: RadarSource, metadata: dict, path: str) -> float:
    unit = {"m": 1.0, "km": 1000.0}.get(str(metadata.get("cartesian_unit", "")))
    size = metadata.get("xpixelsize")
    if unit is None or size is None or not np.isclose(size, metadata.get("ypixelsize", size)):
        raise ValueError(
            f"Radar source {source.name!r} gives no square pixel size in m or km ({path!r}: xpixelsize "
            f"{size}, ypixelsize {metadata.get('ypixelsize')}, cartesian_unit {metadata.get('cartesian_unit')!r}); "
            "pass pixel_km=None to keep its pixels, or grid='downscale'."
        )
    return float(size) * unit


def grid_factor(source, metadata, path, shape, grid, size, pixel_km) -> int:
    """The block size that takes frames of `shape` onto the model's grid (`grid`, `size`, `pixel_km`)."""
    if grid == "downscale":
        factor = min(shape) // size
    elif pixel_km is None:
        factor = 1
    else:
        factor = round(pixel_km * 1000 / _pixel_metres(source, metadata, path))
    if factor < 1:
        raise ValueError(
            f"The frames of radar source {source.name!r} are {shape[0]} x {shape[1]} pixels"
            + (
                f", fewer than size={size}."
                if grid == "downscale"
                else f" of {_pixel_metres(source, metadata, path) / 1000:g} km, coarser than pixel_km={pixel_km}."
            )
        )
    return factor


def _windows(shape: tuple[int, int], grid: str, size: int) -> list[tuple[int, int]]:
    rows, cols = shape
    if rows < size or cols < size:
        raise ValueError(f"{grid!r} needs frames of at least {size} x {size} pixels on the grid, got {rows} x {cols}.")
    if grid != "tiles":
        return [((rows - size) // 2, (cols - size) // 2)]
    top, left = (rows % size) // 2, (cols % size) // 2
    return [(top + i * size, left + j * size) for i in range(rows // size) for j in range(cols // size)]


def load_source(
    source: RadarSource,
    *,
    frames_per_sequence: int,
    size: int,
    grid: str = "tiles",
    pixel_km: float | None = 2.0,
    stride: int | None = None,
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
    max_missing: float = 0.5,
) -> RadarSequences:
    """Reads a radar archive through pysteps into sequences of rain rates on the model's grid.

    The frames are found from the file names (`archive_times`), split into runs without gaps
    (`archive_runs`: a missing frame ends a run), and each run long enough gives sequences of
    `frames_per_sequence` consecutive frames every `stride` frames. Each frame is found by
    `pysteps.io.archive.find_by_date` in the source's layout, read by `pysteps.io.read_timeseries` with
    the source's importer and keyword arguments, and turned into mm/h by `pysteps.utils.to_rainrate`
    with its metadata. Then, by `grid` (`GRIDS`): block means to `pixel_km` km pixels (a block with any
    missing pixel is missing, so a mean is always over a whole block) and every whole `size` x `size`
    tile ("tiles", the default: the most sequences at one physical resolution for every source), the
    central tile ("crop"), or the central square brought to `size` by the largest whole block
    ("downscale"). Sequences whose frames miss more than `max_missing` of their pixels (outside the
    radars' range) are left out.

    Args:
      source: the archive.
      frames_per_sequence: frames in a sequence (input and output frames).
      size: the side of the model's square frames, in pixels.
      grid: how frames become `size` x `size` frames: "tiles", "crop" or "downscale".
      pixel_km: the side of a pixel after block means, in km, for "tiles" and "crop" (rounded to a
        whole number of the source's pixels); None keeps the source's pixels.
      stride: frames from one sequence's start to the next in a run; None: `frames_per_sequence`.
      start, end: the first and last times read (both included); None: the whole archive.
      max_missing: the largest fraction of missing pixels a sequence may have, in [0, 1].

    Returns:
      `RadarSequences`: rain rates (N, frames_per_sequence, size, size), in time order, then tile order.

    Raises:
      FileNotFoundError: if the root is not a folder or holds no frame in the range.
      ValueError: if no run has `frames_per_sequence` frames (the message gives the runs), frames are
        apart by other than whole timesteps, a frame has another size than the first, a file cannot be
        read, or no sequence keeps enough observed pixels.
      TypeError: if an argument has the wrong type.
    """
    if not isinstance(source, RadarSource):
        raise TypeError(f"source must be a RadarSource, got {type(source).__name__}.")
    length = _check_int("frames_per_sequence", frames_per_sequence, 1)
    size = _check_int("size", size, 1)
    stride = length if stride is None else _check_int("stride", stride, 1)
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}.")
    if pixel_km is not None and (
        isinstance(pixel_km, bool) or not isinstance(pixel_km, (int, float)) or not pixel_km > 0
    ):
        raise ValueError(f"pixel_km must be a positive number of km or None, got {pixel_km!r}.")
    if isinstance(max_missing, bool) or not isinstance(max_missing, (int, float)) or not 0 <= max_missing <= 1:
        raise ValueError(f"max_missing must be a fraction in [0, 1], got {max_missing!r}.")
    times = archive_times(source, start, end)
    runs = archive_runs(source, times)
    runs = [run for run in runs if len(run) >= length]
    if not runs:
        longest = max(len(run) for run in archive_runs(source, times))
        raise ValueError(
            f"Radar source {source.name!r} has no {length} consecutive frames {source.timestep:g} minutes apart "
            f"(frames_per_sequence={length}): its {len(times)} frames make runs split by gaps, the longest "
            f"{longest} frames."
        )
    from pysteps import io

    try:
        importer = io.get_method(source.importer, "importer")
    except ValueError as error:
        raise ValueError(f"Radar source {source.name!r}: {error}") from None
    sequences, starts, tiles = [], [], []
    first: tuple[tuple[int, int], str] | None = None
    factor = None
    for run in runs:
        found, found_times = io.archive.find_by_date(
            run[-1],
            source.root_path,
            source.path_fmt,
            source.fn_pattern,
            source.fn_ext,
            source.timestep,
            num_prev_files=len(run) - 1,
        )
        misplaced = [time for path, time in zip(found, found_times) if path is None]
        if misplaced:
            raise ValueError(
                f"Radar source {source.name!r}: the frame of {misplaced[0]} is not where path_fmt "
                f"{source.path_fmt!r} puts it under {source.root_path!r}."
            )
        frames = []
        for path, time in zip(found, found_times):
            rain, metadata = read_frame(source, importer, path, time)
            if first is None:
                first = (rain.shape, path)
                factor = grid_factor(source, metadata, path, rain.shape, grid, size, pixel_km)
            elif rain.shape != first[0]:
                raise ValueError(
                    f"Radar source {source.name!r} has frames of two sizes: {path!r} is {rain.shape[0]} x "
                    f"{rain.shape[1]}, {first[1]!r} {first[0][0]} x {first[0][1]}."
                )
            if grid == "downscale":
                side = size * factor
                top, left = (rain.shape[0] - side) // 2, (rain.shape[1] - side) // 2
                rain = rain[top : top + side, left : left + side]
            frames.append(block_mean(rain, factor))
        frames = np.stack(frames)
        windows = _windows(frames.shape[1:], grid, size)
        for begin in range(0, len(run) - length + 1, stride):
            for top, left in windows:
                piece = frames[begin : begin + length, top : top + size, left : left + size]
                if np.isnan(piece).mean() > max_missing:
                    continue
                sequences.append(piece)
                starts.append(run[begin])
                tiles.append((top, left))
    if not sequences:
        raise ValueError(
            f"Every sequence of radar source {source.name!r} misses more than max_missing={max_missing} of its "
            f"pixels; raise max_missing or choose another grid."
        )
    return RadarSequences(
        rain=np.stack(sequences).astype(np.float32),
        times=starts,
        tiles=tiles,
        interval_minutes=float(source.timestep),
        source=source.name,
    )


__all__ = [
    "GRIDS",
    "SOURCE_KEYS",
    "RadarSequences",
    "RadarSource",
    "archive_runs",
    "archive_times",
    "block_mean",
    "load_source",
]
