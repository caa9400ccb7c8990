"""Radar frames on disk as HKO-7 stores them: one single-channel 8-bit PNG per time step, named by its time.

The layout is that of the HKO-7 benchmark (Shi et al. 2017; its code, github.com/sxjscience/HKO-7,
`nowcasting/hko_iterator.py`, `convert_datetime_to_filepath`): `radarPNG/YYYY/MM/DD/RADyymmddHHMM00.png`,
a folder per year, month and day, and in the name the two-digit year, month, day, hour, minute and
`00` seconds, which `HKO7_FILENAME_FORMAT` reads and writes. The pixels are HKO-7's encoding,
`pixel = 255 (dBZ + 10) / 70` (`convlstm_jax.nowcasting.rain_to_pixels` and its inverses), 480 x 480 in HKO-7,
6 minutes apart.

`load_radar_pngs` cuts the frames under a folder into training sequences, uint8 (N, T, H, W, 1) as
`convlstm_jax.training` takes them; `radar_png_times` gives the sequences' start times;
`save_radar_pngs` writes frames in the same layout; `load_hko7_rain` reads the frames as rain rates by
HKO-7's own Z-R relation, Z = 58.53 R^1.56, NaN where HKO-7's masks (`read_hko7_mask`) exclude a pixel.
OpenCV (`opencv-python-headless`) reads and writes the PNGs; it is imported when a function needs it.
"""

from __future__ import annotations

import datetime
import math
import os
import pathlib
import warnings
from typing import Any

import numpy as np

from convlstm_common import check_int as _check_int

# The file name of a frame, as a `datetime.strptime`/`strftime` pattern: HKO-7's `RAD%y%m%d%H%M` and
# seconds, which HKO-7 writes as a literal `00`.
HKO7_FILENAME_FORMAT = "RAD%y%m%d%H%M%S.png"
# Minutes between frames, as HKO-7 and the radar data of Shi et al. 2015 (5 frames in: 30 minutes).
RADAR_INTERVAL_MINUTES = 6


def _check_interval(interval_minutes: Any) -> datetime.timedelta:
    """The time between frames; TypeError unless a real number, ValueError unless finite and positive."""
    if isinstance(interval_minutes, bool) or not isinstance(interval_minutes, (int, float, np.integer, np.floating)):
        raise TypeError(f"interval_minutes must be a number of minutes, got {type(interval_minutes).__name__}.")
    if not math.isfinite(interval_minutes) or interval_minutes <= 0:
        raise ValueError(f"interval_minutes must be a positive number of minutes, got {interval_minutes}.")
    step = datetime.timedelta(minutes=float(interval_minutes))
    if step <= datetime.timedelta(0):
        raise ValueError(f"interval_minutes must be at least a microsecond, got {interval_minutes}.")
    return step


def _check_format(filename_format: Any) -> str:
    """A file name pattern: a str with a `%` directive and no folder separator."""
    if not isinstance(filename_format, str):
        raise TypeError(f"filename_format must be a str (a strptime pattern), got {type(filename_format).__name__}.")
    if "%" not in filename_format:
        raise ValueError(
            f"filename_format must hold the time in strptime directives (%y, %m, ...), got {filename_format!r}."
        )
    if "/" in filename_format or os.sep in filename_format:
        raise ValueError(
            f"filename_format is the pattern of a file name, without folders (those are found recursively), "
            f"got {filename_format!r}."
        )
    return filename_format


def _check_folder(folder: Any) -> pathlib.Path:
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike), got {type(folder).__name__}.")
    return pathlib.Path(folder)


def _timed_files(folder: pathlib.Path, filename_format: str) -> list[tuple[datetime.datetime, pathlib.Path]]:
    """Every file under `folder` whose name parses with `filename_format`, with its time, sorted by time."""
    if not folder.exists():
        raise FileNotFoundError(f"No radar folder at {os.fspath(folder)!r}.")
    if not folder.is_dir():
        raise NotADirectoryError(f"{os.fspath(folder)!r} is not a folder (expected the folder of the radar PNGs).")
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                time = datetime.datetime.strptime(name, filename_format)
            except ValueError:
                continue
            found.append((time, pathlib.Path(root, name)))
    if not found:
        raise FileNotFoundError(
            f"No file under {os.fspath(folder)!r} is named as filename_format={filename_format!r} "
            f"(HKO-7's frames are named like {datetime.datetime(2015, 6, 1, 12, 6).strftime(HKO7_FILENAME_FORMAT)!r})."
        )
    found.sort(key=lambda item: (item[0], item[1]))
    return found


def _runs(
    timed: list[tuple[datetime.datetime, pathlib.Path]], step: datetime.timedelta
) -> list[list[tuple[datetime.datetime, pathlib.Path]]]:
    """Splits time-sorted files into runs of frames exactly `step` apart; a time held by more than one file
    is left out (which file is right is not known), so it ends a run as a missing frame does."""
    count: dict[datetime.datetime, int] = {}
    for time, _ in timed:
        count[time] = count.get(time, 0) + 1
    duplicates = [item for item in timed if count[item[0]] > 1]
    if duplicates:
        shown = ", ".join(repr(os.fspath(path)) for _, path in duplicates[:4])
        more = f" and {len(duplicates) - 4} more" if len(duplicates) > 4 else ""
        warnings.warn(
            f"{len(duplicates)} radar files share a time with another file and are left out, ending the run "
            f"they fall in: {shown}{more}.",
            UserWarning,
            stacklevel=4,
        )
    runs: list[list[tuple[datetime.datetime, pathlib.Path]]] = []
    previous = None
    for time, path in timed:
        if count[time] > 1:
            previous = None
            continue
        if previous is None or time - previous != step:
            runs.append([])
        runs[-1].append((time, path))
        previous = time
    return runs


def _plan(
    folder: Any, frames_per_sequence: Any, interval_minutes: Any, stride: Any, filename_format: Any
) -> list[list[tuple[datetime.datetime, pathlib.Path]]]:
    """The sequences, as lists of (time, file), from the file names alone."""
    folder = _check_folder(folder)
    length = _check_int("frames_per_sequence", frames_per_sequence, 1)
    stride = length if stride is None else _check_int("stride", stride, 1)
    step = _check_interval(interval_minutes)
    filename_format = _check_format(filename_format)
    timed = _timed_files(folder, filename_format)
    runs = _runs(timed, step)
    sequences = [run[start : start + length] for run in runs for start in range(0, len(run) - length + 1, stride)]
    if not sequences:
        longest = max((len(run) for run in runs), default=0)
        raise ValueError(
            f"No {length} consecutive frames {interval_minutes} minutes apart under {os.fspath(folder)!r} for "
            f"frames_per_sequence={length}: the longest run has {longest} frames ({len(timed)} files named as "
            f"{filename_format!r})."
        )
    return sequences


def radar_png_times(
    folder: str | os.PathLike[str],
    *,
    frames_per_sequence: int,
    interval_minutes: float = RADAR_INTERVAL_MINUTES,
    stride: int | None = None,
    filename_format: str = HKO7_FILENAME_FORMAT,
) -> list[datetime.datetime]:
    """The start times of the sequences `load_radar_pngs` makes with the same arguments, in its order.

    Only file names are read. Frame `t` of sequence `n` is at `times[n] + t * interval_minutes`.

    Args:
      folder: the folder searched recursively for frames (HKO-7: its `radarPNG`).
      frames_per_sequence: frames in a sequence.
      interval_minutes: minutes between consecutive frames of a sequence.
      stride: frames from the start of one sequence of a run to the next; None: `frames_per_sequence`.
      filename_format: the `datetime.strptime` pattern of a frame's file name.

    Returns:
      A list of naive `datetime.datetime` (aware if `filename_format` has `%z`), one per sequence.

    Raises:
      TypeError: if an argument has the wrong type.
      ValueError: if an argument is out of range, or if no run has `frames_per_sequence` frames (the
        message gives the longest run).
      FileNotFoundError: if `folder` does not exist or no file in it is named as `filename_format`.
      NotADirectoryError: if `folder` is a file.

    Examples:
      >>> import datetime, tempfile
      >>> from convlstm_jax.nowcasting import radar_png_times
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     for minute in (0, 6, 12, 18, 30, 36):  # 24 is missing
      ...         open(f"{folder}/RAD15060112{minute:02d}00.png", "w").close()  # 2015-06-01 12:MM:00
      ...     times = radar_png_times(folder, frames_per_sequence=2)
      >>> [time.strftime("%H:%M") for time in times]
      ['12:00', '12:12', '12:30']
    """
    sequences = _plan(folder, frames_per_sequence, interval_minutes, stride, filename_format)
    return [sequence[0][0] for sequence in sequences]


def _read_frame(cv2: Any, path: pathlib.Path) -> np.ndarray:
    frame = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if frame is None:
        raise ValueError(f"OpenCV could not read {os.fspath(path)!r} as an image.")
    if frame.ndim != 2 or frame.dtype != np.uint8:
        channels = 1 if frame.ndim == 2 else frame.shape[2]
        raise ValueError(
            f"Radar frames must be single-channel 8-bit images (HKO-7's pixels), got {channels} channel(s) of "
            f"{frame.dtype} (shape {frame.shape}) in {os.fspath(path)!r}."
        )
    return frame


def load_radar_pngs(
    folder: str | os.PathLike[str],
    *,
    frames_per_sequence: int,
    size: int | None = None,
    interval_minutes: float = RADAR_INTERVAL_MINUTES,
    stride: int | None = None,
    filename_format: str = HKO7_FILENAME_FORMAT,
) -> np.ndarray:
    """Reads radar frames stored one per PNG, named by time, into training sequences.

    Every file under `folder`, at any depth, whose name `datetime.strptime` parses with `filename_format`
    is a frame at that time; other files are ignored. HKO-7's frames are `radarPNG/YYYY/MM/DD/RAD%y%m%d%H%M00.png`
    (`nowcasting/hko_iterator.py` of github.com/sxjscience/HKO-7), which the default pattern reads. Sorted
    by time, the frames form runs of frames exactly `interval_minutes` apart: a missing frame, or a time
    off that step, ends a run. A time that more than one file holds (say, two copies of a day) is left
    out with a `UserWarning` naming the files, so it too ends a run. Each run gives sequences of
    `frames_per_sequence` consecutive frames, starting every `stride` frames from its first; the frames
    left at a run's end are unused, and no sequence spans a gap. `radar_png_times` gives their start times.

    The sequences are worked out from the file names first; then only the frames they use are read,
    each once, with OpenCV (`cv2.imread(path, cv2.IMREAD_UNCHANGED)`), and resized with
    `cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)` when `size` is given (Shi et al.
    2015 resized their 330 x 330 radar maps to 100 x 100). The result holds N T frames in memory:
    a year of 480 x 480 HKO-7 frames is about 20 GB, a year at 100 x 100 under 1 GB.

    Args:
      folder: the folder searched recursively for frames (HKO-7: its `radarPNG`).
      frames_per_sequence: frames in a sequence (Shi et al. 2015: 5 in, 15 out, so 20).
      size: the side of the frames returned; None keeps the files' size. Frames must be square to be resized.
      interval_minutes: minutes between consecutive frames of a sequence (HKO-7: 6).
      stride: frames from the start of one sequence of a run to the next; None: `frames_per_sequence`,
        sequences that do not overlap.
      filename_format: the `datetime.strptime` pattern of a frame's file name, without folders.

    Returns:
      A uint8 array of shape (N, frames_per_sequence, H, W, 1), H = W = `size` if given, the sequences
      in time order.

    Raises:
      TypeError: if an argument has the wrong type.
      ValueError: if an argument is out of range; if no run has `frames_per_sequence` frames (the message
        gives the longest run); if a frame is not a single-channel 8-bit image, or not of the first frame's
        size, or not square when `size` is given (each message names the file).
      FileNotFoundError: if `folder` does not exist or no file in it is named as `filename_format`.
      NotADirectoryError: if `folder` is a file.

    Examples:
      >>> import datetime, tempfile
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import load_radar_pngs, rain_to_pixels, save_radar_pngs
      >>> frames = rain_to_pixels(np.random.default_rng(0).gamma(0.5, 4.0, size=(6, 8, 8)))
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     paths = save_radar_pngs(frames, folder, datetime.datetime(2015, 6, 1, 12, 0))
      ...     sequences = load_radar_pngs(folder, frames_per_sequence=3)
      ...     small = load_radar_pngs(folder, frames_per_sequence=2, size=4, stride=1)
      >>> paths[1].relative_to(folder).as_posix()
      '2015/06/01/RAD150601120600.png'
      >>> sequences.shape, bool((sequences[1, :, :, :, 0] == frames[3:]).all())
      ((2, 3, 8, 8, 1), True)
      >>> small.shape
      (5, 2, 4, 4, 1)
    """
    if size is not None:
        size = _check_int("size", size, 1)
    sequences = _plan(folder, frames_per_sequence, interval_minutes, stride, filename_format)
    import cv2

    # Each frame once, in time order, to every (sequence, step) that uses it.
    uses: dict[pathlib.Path, list[tuple[int, int]]] = {}
    for n, sequence in enumerate(sequences):
        for t, (_, path) in enumerate(sequence):
            uses.setdefault(path, []).append((n, t))
    out = None
    first_shape = first_path = None
    for path, positions in uses.items():
        frame = _read_frame(cv2, path)
        if first_shape is None:
            first_shape, first_path = frame.shape, path
            if size is not None and frame.shape[0] != frame.shape[1]:
                raise ValueError(
                    f"size={size} resizes square frames, got {frame.shape[0]} x {frame.shape[1]} in "
                    f"{os.fspath(path)!r}; pass size=None to keep the files' size."
                )
            side = first_shape if size is None else (size, size)
            out = np.empty((len(sequences), len(sequences[0]), *side, 1), np.uint8)
        elif frame.shape != first_shape:
            raise ValueError(
                f"Radar frames must all have one size: {os.fspath(path)!r} is {frame.shape[0]} x {frame.shape[1]}, "
                f"{os.fspath(first_path)!r} {first_shape[0]} x {first_shape[1]}."
            )
        if size is not None and frame.shape != (size, size):
            frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        for n, t in positions:
            out[n, t, :, :, 0] = frame
    return out


def read_hko7_mask(path: str | os.PathLike[str], shape: tuple[int, int]) -> np.ndarray:
    """A mask as HKO-7 stores it, True where the pixel is valid: zlib-compressed booleans, one byte per pixel
    (`nowcasting/mask.py` of github.com/sxjscience/HKO-7), of a frame of `shape` (H, W).

    Raises:
      ValueError: if the file is not zlib-compressed or holds another number of pixels.
    """
    import zlib

    try:
        data = zlib.decompress(pathlib.Path(path).read_bytes())
    except zlib.error as error:
        raise ValueError(f"{os.fspath(path)!r} is not a mask as HKO-7 stores them (zlib): {error}.") from None
    if len(data) != shape[0] * shape[1]:
        raise ValueError(f"{os.fspath(path)!r} holds {len(data)} pixels, not the {shape[0]} x {shape[1]} of its frame.")
    return np.frombuffer(data, np.uint8).reshape(shape) != 0


def load_hko7_rain(
    folder: str | os.PathLike[str],
    *,
    frames_per_sequence: int,
    size: int | None = None,
    mask_folder: str | os.PathLike[str] | bool | None = None,
    interval_minutes: float = RADAR_INTERVAL_MINUTES,
    stride: int | None = None,
    filename_format: str = HKO7_FILENAME_FORMAT,
) -> np.ndarray:
    """Reads HKO-7's radar PNGs into sequences of rain rates in mm/h, by HKO-7's own Z-R relation and masks.

    The sequences are those of `load_radar_pngs` with the same arguments. Each pixel becomes a rain
    rate by HKO-7's Z = 58.53 R^1.56 (`units.pixels_to_rain(pixels, HKO7_ZR_A, HKO7_ZR_B)`), and the pixels
    that HKO-7's mask of the frame excludes (noise, clutter) become NaN. HKO-7 keeps its masks in
    `radarPNG_mask/YYYY/MM/DD/RADyymmddHHMM00.mask` beside `radarPNG` (`nowcasting/hko_iterator.py`,
    `convert_datetime_to_maskpath`), as zlib-compressed booleans (`read_hko7_mask`); a frame without a
    mask file has none. With `size`, rates are resized as `load_radar_pngs` resizes pixels (area
    means, `cv2.INTER_AREA`), and a pixel is NaN where any missing pixel falls in its area.

    Args:
      folder: the folder searched recursively for frames (HKO-7: its `radarPNG`).
      frames_per_sequence, size, interval_minutes, stride, filename_format: as `load_radar_pngs`.
      mask_folder: the folder of the masks, laid out as `folder`; None: `<folder>_mask` beside `folder`
        where it exists (HKO-7's `radarPNG_mask`); False: no masks.

    Returns:
      float32 rain rates in mm/h of shape (N, frames_per_sequence, H, W), NaN where masked.

    Raises:
      TypeError, ValueError, FileNotFoundError, NotADirectoryError: as `load_radar_pngs`; also
        FileNotFoundError if a `mask_folder` given is not a folder, ValueError if a mask cannot be read
        or is not of its frame's size.
    """
    from .units import HKO7_ZR_A, HKO7_ZR_B, pixels_to_rain

    folder = _check_folder(folder)
    if mask_folder is None:
        beside = folder.parent / f"{folder.name}_mask"
        mask_folder = beside if beside.is_dir() else False
    elif mask_folder is not False:
        mask_folder = _check_folder(mask_folder)
        if not mask_folder.is_dir():
            raise FileNotFoundError(f"No folder of HKO-7 masks at {os.fspath(mask_folder)!r}.")
    if size is not None:
        size = _check_int("size", size, 1)
    pixels = load_radar_pngs(
        folder,
        frames_per_sequence=frames_per_sequence,
        interval_minutes=interval_minutes,
        stride=stride,
        filename_format=filename_format,
    )[..., 0]
    rain = pixels_to_rain(pixels, HKO7_ZR_A, HKO7_ZR_B)
    if mask_folder is not False:
        sequences = _plan(folder, frames_per_sequence, interval_minutes, stride, filename_format)
        for n, sequence in enumerate(sequences):
            for t, (_, path) in enumerate(sequence):
                mask_path = mask_folder / path.relative_to(folder).with_suffix(".mask")
                if mask_path.is_file():
                    rain[n, t][~read_hko7_mask(mask_path, rain.shape[2:])] = np.nan
    if size is None or rain.shape[2:] == (size, size):
        return rain
    if rain.shape[2] != rain.shape[3]:
        raise ValueError(
            f"size={size} resizes square frames, got {rain.shape[2]} x {rain.shape[3]} under {os.fspath(folder)!r}; "
            "pass size=None to keep the files' size."
        )
    import cv2

    out = np.empty((*rain.shape[:2], size, size), np.float32)
    for n in range(rain.shape[0]):
        for t in range(rain.shape[1]):
            missing = np.isnan(rain[n, t])
            mean = cv2.resize(np.where(missing, 0, rain[n, t]), (size, size), interpolation=cv2.INTER_AREA)
            touched = cv2.resize(missing.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0
            out[n, t] = np.where(touched, np.float32(np.nan), mean)
    return out


def save_radar_pngs(
    frames: np.ndarray,
    folder: str | os.PathLike[str],
    start: datetime.datetime,
    *,
    interval_minutes: float = RADAR_INTERVAL_MINUTES,
    filename_format: str = HKO7_FILENAME_FORMAT,
) -> list[pathlib.Path]:
    """Writes frames as PNGs in HKO-7's layout, which `load_radar_pngs` reads back bit for bit.

    Frame `t` is at `start + t * interval_minutes` and goes to `folder/YYYY/MM/DD/<name>`, its year, month
    and day folders as in HKO-7's `radarPNG`, its name the time formatted with `filename_format`. Missing
    folders are made. Nothing is written if a file is already there or a name would not read back as its
    time (`filename_format` must hold the time to the step of `interval_minutes`; `%y` reads 1969..2068).

    Args:
      frames: uint8 pixels (HKO-7's encoding, e.g. `rain_to_pixels(rain)`), of shape (T, H, W) or (T, H, W, 1).
      folder: the root of the layout (HKO-7: its `radarPNG`).
      start: the time of the first frame, a `datetime.datetime`.
      interval_minutes: minutes between consecutive frames.
      filename_format: the `strftime` pattern of a file name, ending in `.png`.

    Returns:
      The paths written, in time order.

    Raises:
      TypeError: if `frames` is not a uint8 NumPy array or another argument has the wrong type.
      ValueError: if `frames` has another shape, `interval_minutes` is not positive, or `filename_format`
        does not end in `.png` or does not read back the times.
      FileExistsError: if a file to write is already there.
      OSError: if OpenCV fails to write a file.

    Examples:
      >>> import datetime, tempfile
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import save_radar_pngs
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     paths = save_radar_pngs(np.zeros((3, 4, 4), np.uint8), folder, datetime.datetime(2015, 6, 30, 23, 54))
      ...     [path.relative_to(folder).as_posix() for path in paths]
      ['2015/06/30/RAD150630235400.png', '2015/07/01/RAD150701000000.png', '2015/07/01/RAD150701000600.png']
    """
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a NumPy array, got {type(frames).__name__}.")
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 pixels (e.g. rain_to_pixels(rain)), got {frames.dtype}.")
    if frames.ndim == 4 and frames.shape[3] == 1:
        frames = frames[..., 0]
    if frames.ndim != 3 or 0 in frames.shape:
        raise ValueError(f"frames must have shape (T, H, W) or (T, H, W, 1) with no empty axis, got {frames.shape}.")
    folder = _check_folder(folder)
    if not isinstance(start, datetime.datetime):
        raise TypeError(f"start must be a datetime.datetime, got {type(start).__name__}.")
    step = _check_interval(interval_minutes)
    filename_format = _check_format(filename_format)
    if not filename_format.lower().endswith(".png"):
        raise ValueError(f"filename_format must end in .png (the frames are PNGs), got {filename_format!r}.")
    paths = []
    for t in range(frames.shape[0]):
        time = start + t * step
        name = time.strftime(filename_format)
        try:
            back = datetime.datetime.strptime(name, filename_format)
        except ValueError:
            back = None
        if back != time:
            raise ValueError(
                f"filename_format={filename_format!r} does not keep the time of frame {t}: {time.isoformat()} is "
                f"named {name!r}, which reads back as {back.isoformat() if back else 'no time'}."
            )
        paths.append(folder / f"{time.year:04d}" / f"{time.month:02d}" / f"{time.day:02d}" / name)
    existing = [path for path in paths if path.exists()]
    if existing:
        raise FileExistsError(
            f"{len(existing)} of the files to write are already there, e.g. {os.fspath(existing[0])!r}; "
            "nothing was written."
        )
    import cv2

    for path, frame in zip(paths, frames):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(os.fspath(path), np.ascontiguousarray(frame)):
            raise OSError(f"OpenCV could not write {os.fspath(path)!r}.")
    return paths


__all__ = [
    "HKO7_FILENAME_FORMAT",
    "RADAR_INTERVAL_MINUTES",
    "load_hko7_rain",
    "load_radar_pngs",
    "radar_png_times",
    "read_hko7_mask",
    "save_radar_pngs",
]
