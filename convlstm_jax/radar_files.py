"""Radar frames on disk in HKO-7's layout, read into the sequences `ConvLSTM` takes.

HKO-7 (Shi et al. 2017, "Deep learning for precipitation nowcasting: a benchmark and a new model")
is the Hong Kong Observatory's radar archive of the benchmark that followed ConvLSTM. Each radar
frame, one every 6 minutes, is an 8-bit grayscale PNG (480 x 480 in HKO-7) whose pixels encode
reflectivity as pixel = 255 (dBZ + 10) / 70, so 0..255 spans -10..60 dBZ
(`convlstm_jax.data.pixels_to_dbz`, `convlstm_jax.data.pixels_to_rain`). A frame observed at
`time` is stored at

    <root>/YYYY/MM/DD/RADyymmddHHMMSS.png     (yy = YYYY - 2000, so 2000..2099)

as HKO-7's own iterator (`convert_datetime_to_filepath`) names it. `load_hko_sequences` finds the
frames under a root folder (any sub-folders: the name alone gives the time), keeps the runs of
consecutive frames without a gap, and returns them as uint8 sequences of shape (N, T, H, W, 1),
batch-first and channels-last like `convlstm_jax.data`'s, or (N, T, 1, H, W) for the torch twin.

Other radar data joins the same path: convert it to dBZ (pysteps' importers read ODIM HDF5,
MRMS, ... as rain rate or reflectivity), encode it with `convlstm_jax.data.dbz_to_pixels` and write
it with `save_hko_frames`.

HKO-7 also ships per-frame masks of unreliable pixels (`radarPNG_mask`); they are not read here.
Reading PNG files needs Pillow (installed with matplotlib, a dependency of the `train` extra).
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import RADAR_INTERVAL_MINUTES

# HKO-7's file name: RAD, then two digits each of year - 2000, month, day, hour, minute, second.
_NAME = re.compile(r"RAD(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\.png")
_FIRST_YEAR, _LAST_YEAR = 2000, 2099


def _pillow():
    """The `PIL.Image` module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError(
            "Reading and writing radar PNG files needs Pillow: pip install pillow "
            "(it comes with matplotlib, in convlstm-jax[train])."
        ) from error
    return Image


def _check_int(name: str, value: Any, minimum: int) -> int:
    """Returns `value` as an int; TypeError unless it is an integer, ValueError if below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value}.")
    return int(value)


def _check_time(name: str, time: Any) -> datetime.datetime:
    """Returns `time` if it is a naive `datetime.datetime`; TypeError or ValueError otherwise."""
    if not isinstance(time, datetime.datetime):
        raise TypeError(f"{name} must be a datetime.datetime, got {type(time).__name__}.")
    if time.tzinfo is not None:
        raise ValueError(
            f"{name} must be a naive datetime (HKO-7's file names carry no time zone), got {time.isoformat()}."
        )
    return time


def _check_root(root: Any) -> Path:
    """`root` as a Path; TypeError unless it is a path, FileNotFoundError unless it is a folder."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder's path (str or os.PathLike), got {type(root).__name__}.")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No radar folder at {os.fspath(root)!r}.")
    return root


def _check_pixels(name: str, pixels: Any) -> np.ndarray:
    """`pixels` as (H, W) uint8: a NumPy uint8 array of shape (H, W) or (H, W, 1)."""
    if not isinstance(pixels, np.ndarray):
        raise TypeError(f"{name} must be a NumPy uint8 array, got {type(pixels).__name__}.")
    if pixels.dtype != np.uint8:
        raise TypeError(
            f"{name} must be uint8 pixels (255 (dBZ + 10) / 70; convert reflectivity with "
            f"convlstm_jax.data.dbz_to_pixels), got {pixels.dtype}."
        )
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2 or 0 in pixels.shape:
        raise ValueError(f"{name} must be one frame of shape (H, W) or (H, W, 1), got shape {pixels.shape}.")
    return pixels


def hko_frame_path(root: str | os.PathLike[str], time: datetime.datetime) -> Path:
    """Where HKO-7's layout stores the frame observed at `time`: `root/YYYY/MM/DD/RADyymmddHHMMSS.png`.

    Args:
      root: the folder of the frames (HKO-7's `radarPNG`).
      time: a naive `datetime.datetime` in 2000..2099, in whole seconds.

    Returns:
      The file's path (which need not exist).

    Raises:
      TypeError: if `root` is not a path or `time` not a `datetime.datetime`.
      ValueError: if `time` has a time zone, is outside 2000..2099 or has microseconds.

    Examples:
      >>> import datetime
      >>> from convlstm_jax.radar_files import hko_frame_path
      >>> hko_frame_path("radarPNG", datetime.datetime(2009, 3, 1, 12, 6)).as_posix()
      'radarPNG/2009/03/01/RAD090301120600.png'
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder's path (str or os.PathLike), got {type(root).__name__}.")
    time = _check_time("time", time)
    if not _FIRST_YEAR <= time.year <= _LAST_YEAR:
        raise ValueError(
            f"HKO-7's file names hold years {_FIRST_YEAR}..{_LAST_YEAR} (two digits), got {time.isoformat()}."
        )
    if time.microsecond:
        raise ValueError(f"HKO-7's file names hold whole seconds, got {time.isoformat()}.")
    return Path(root) / f"{time:%Y}" / f"{time:%m}" / f"{time:%d}" / f"RAD{time:%y%m%d%H%M%S}.png"


def hko_frame_time(path: str | os.PathLike[str]) -> datetime.datetime:
    """The time of an HKO-7 frame, read from its file name `RADyymmddHHMMSS.png` (yy = year - 2000).

    Raises:
      TypeError: if `path` is not a path.
      ValueError: if the file name is not of that form, or not a valid date and time.

    Examples:
      >>> from convlstm_jax.radar_files import hko_frame_time
      >>> hko_frame_time("radarPNG/2009/03/01/RAD090301120600.png")
      datetime.datetime(2009, 3, 1, 12, 6)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file's path (str or os.PathLike), got {type(path).__name__}.")
    name = Path(path).name
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not an HKO-7 frame name: expected RADyymmddHHMMSS.png, as RAD090301120600.png.")
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    try:
        return datetime.datetime(_FIRST_YEAR + year, month, day, hour, minute, second)
    except ValueError as error:
        raise ValueError(f"{name!r} names no valid time: {error}.") from None


def read_radar_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads one radar frame stored as an 8-bit grayscale PNG, as HKO-7 stores its frames.

    A PNG stored as RGB(A) or with a palette is read when every pixel is gray (R = G = B) and
    opaque, which is the same frame; a colour image (a radar colour scale), a transparent one, or
    other bit depths are refused, since their values are not HKO-7 pixels.

    Args:
      path: the PNG file.

    Returns:
      A uint8 array of shape (H, W): the pixels, 255 (dBZ + 10) / 70.

    Raises:
      FileNotFoundError: if there is no file at `path`.
      ValueError: if the file is not a PNG image, or not 8-bit gray.

    Examples:
      >>> import tempfile
      >>> import numpy as np
      >>> from convlstm_jax.radar_files import read_radar_png, write_radar_png
      >>> pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     write_radar_png(f"{folder}/frame.png", pixels)
      ...     frame = read_radar_png(f"{folder}/frame.png")
      >>> frame.shape, frame.dtype, bool((frame == pixels).all())
      ((3, 4), dtype('uint8'), True)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file's path (str or os.PathLike), got {type(path).__name__}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No radar frame at {os.fspath(path)!r}.")
    image_module = _pillow()
    try:
        with image_module.open(path) as image:
            image.load()
            found, mode = image.format, image.mode
            if mode in ("P", "PA"):
                image = image.convert("RGBA")
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's errors for files it cannot decode
        raise ValueError(f"{os.fspath(path)!r} is not a readable image: {error}") from error
    if found != "PNG":
        raise ValueError(f"{os.fspath(path)!r} is a {found} image, expected a PNG (as HKO-7 stores radar frames).")
    if mode == "L":
        return np.ascontiguousarray(array)
    if mode not in ("LA", "RGB", "RGBA", "P", "PA"):
        raise ValueError(
            f"{os.fspath(path)!r} has pixels of mode {mode!r}; radar frames are 8-bit grayscale "
            "(mode 'L': 255 (dBZ + 10) / 70, 0..255 for -10..60 dBZ)."
        )
    if array.shape[-1] in (2, 4):
        if np.any(array[..., -1] != 255):
            raise ValueError(
                f"{os.fspath(path)!r} has transparent pixels; radar frames are opaque 8-bit grayscale images."
            )
        array = array[..., :-1]
    if np.any(array != array[..., :1]):
        raise ValueError(
            f"{os.fspath(path)!r} is a colour image (its channels differ); radar frames are 8-bit grayscale "
            "(255 (dBZ + 10) / 70): a colour scale must be converted back to reflectivity first."
        )
    return np.ascontiguousarray(array[..., 0])


def write_radar_png(path: str | os.PathLike[str], pixels: np.ndarray) -> None:
    """Writes one radar frame as an 8-bit grayscale PNG, as HKO-7 stores its frames.

    Args:
      path: the file to write (replaced if it exists; its folder must exist).
      pixels: uint8 pixels of shape (H, W) or (H, W, 1), 255 (dBZ + 10) / 70
        (`convlstm_jax.data.dbz_to_pixels`, `convlstm_jax.data.rain_to_pixels`).

    Raises:
      TypeError: if `pixels` is not a uint8 NumPy array.
      ValueError: if `pixels` is not one frame.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file's path (str or os.PathLike), got {type(path).__name__}.")
    pixels = _check_pixels("pixels", pixels)
    _pillow().fromarray(np.ascontiguousarray(pixels)).save(path, format="PNG")


def save_hko_frames(
    root: str | os.PathLike[str],
    frames: np.ndarray,
    start: datetime.datetime,
    *,
    interval_minutes: int = RADAR_INTERVAL_MINUTES,
) -> list[Path]:
    """Writes a sequence of radar frames in HKO-7's layout, one PNG per frame.

    Frame t is observed at `start + t * interval_minutes` and written to `hko_frame_path(root, ...)`,
    its folders created; an existing file of the same time is replaced.

    Args:
      root: the folder of the frames (HKO-7's `radarPNG`).
      frames: uint8 pixels of shape (T, H, W) or (T, H, W, 1), 255 (dBZ + 10) / 70.
      start: the time of the first frame, a naive `datetime.datetime`.
      interval_minutes: minutes between frames (HKO-7: 6).

    Returns:
      The paths written, in time order.

    Raises:
      TypeError: if `frames` is not a uint8 NumPy array, or an argument is of another type.
      ValueError: if `frames` is not (T, H, W[, 1]), or a time cannot be named (see `hko_frame_path`).

    Examples:
      >>> import datetime, tempfile
      >>> import numpy as np
      >>> from convlstm_jax.radar_files import save_hko_frames
      >>> frames = np.zeros((2, 4, 4), np.uint8)
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     paths = save_hko_frames(folder, frames, datetime.datetime(2015, 6, 1, 23, 54))
      ...     names = [path.relative_to(folder).as_posix() for path in paths]
      >>> names
      ['2015/06/01/RAD150601235400.png', '2015/06/02/RAD150602000000.png']
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder's path (str or os.PathLike), got {type(root).__name__}.")
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a NumPy uint8 array, got {type(frames).__name__}.")
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    if frames.ndim != 3 or 0 in frames.shape:
        raise ValueError(f"frames must be of shape (T, H, W) or (T, H, W, 1), got shape {frames.shape}.")
    _check_pixels("frames[0]", frames[0])
    start = _check_time("start", start)
    step = datetime.timedelta(minutes=_check_int("interval_minutes", interval_minutes, 1))
    paths = [hko_frame_path(root, start + t * step) for t in range(len(frames))]  # every name checked first
    for path, frame in zip(paths, frames):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_radar_png(path, frame)
    return paths


def find_hko_frames(
    root: str | os.PathLike[str],
    *,
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
) -> list[tuple[datetime.datetime, Path]]:
    """The HKO-7 frames under `root`, in time order: every `RAD*.png` in it or in any sub-folder.

    The time of a frame is read from its file name (`hko_frame_time`), so the year/month/day
    folders of HKO-7's layout are optional. Other files are left alone.

    Args:
      root: the folder to search (HKO-7's `radarPNG`).
      start: if given, frames observed before it are left out.
      end: if given, frames observed after it are left out.

    Returns:
      `(time, path)` pairs sorted by time; no file is opened.

    Raises:
      FileNotFoundError: if `root` is not a folder.
      ValueError: if a `RAD*.png` file name is not HKO-7's, or two files hold the same time.
    """
    root = _check_root(root)
    start = None if start is None else _check_time("start", start)
    end = None if end is None else _check_time("end", end)
    if start is not None and end is not None and end < start:
        raise ValueError(f"end must not be before start, got start={start.isoformat()} and end={end.isoformat()}.")
    found: dict[datetime.datetime, Path] = {}
    for path in root.rglob("RAD*.png"):
        if not path.is_file():
            continue
        time = hko_frame_time(path)
        if time in found:
            raise ValueError(f"Two frames of {time.isoformat()} under {os.fspath(root)!r}: {found[time]} and {path}.")
        found[time] = path
    return [
        (time, found[time])
        for time in sorted(found)
        if (start is None or time >= start) and (end is None or time <= end)
    ]


def _check_crop(crop: Any) -> tuple[int, int, int, int] | None:
    if crop is None:
        return None
    if not isinstance(crop, Sequence) or isinstance(crop, str) or len(crop) != 4:
        raise TypeError(f"crop must be (top, left, height, width), four ints, got {crop!r}.")
    top, left = (_check_int(f"crop's {name}", value, 0) for name, value in zip(("top", "left"), crop[:2]))
    height, width = (_check_int(f"crop's {name}", value, 1) for name, value in zip(("height", "width"), crop[2:]))
    return top, left, height, width


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 2:
        raise TypeError(f"size must be (height, width), two ints, got {size!r}.")
    height, width = (_check_int(f"size's {name}", value, 1) for name, value in zip(("height", "width"), size))
    return height, width


def load_hko_sequences(
    root: str | os.PathLike[str],
    num_frames: int,
    *,
    stride: int | None = None,
    interval_minutes: int = RADAR_INTERVAL_MINUTES,
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
    crop: tuple[int, int, int, int] | None = None,
    size: tuple[int, int] | None = None,
    channels_last: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of consecutive radar frames from a folder in HKO-7's layout.

    The frames under `root` (`find_hko_frames`) are walked in time order. A sequence starts at a
    frame when the `num_frames - 1` frames after it, `interval_minutes` apart, all exist: a
    sequence never spans a missing frame. After a sequence starting at time t, the next one starts
    at t + `stride` intervals or later (the default, `num_frames`, shares no frame between
    sequences; 1 takes every start). Each frame is read once (`read_radar_png`); all must have
    the same size. `crop` then cuts a window, and `size` reduces it by area averaging (each pixel the
    mean of the stored pixels it covers, weighted by their overlap: OpenCV's `INTER_AREA`), as Shi
    et al. 2015 (Sec. 4.2) cropped the central 330 x 330 of their radar maps and resized them to
    100 x 100. Pixels are averaged as stored, that is in dBZ, and rounded.

    Args:
      root: the folder of the frames (HKO-7's `radarPNG`; see `find_hko_frames`).
      num_frames: T, frames per sequence (inputs and targets: `convlstm_jax.data.split_sequences`).
      stride: intervals between the starts of successive sequences, at least 1; default `num_frames`.
      interval_minutes: minutes between consecutive frames (HKO-7: 6).
      start: if given, frames observed before it are not used.
      end: if given, frames observed after it are not used.
      crop: `(top, left, height, width)` in pixels of the stored frames, or None for the whole frame.
      size: `(height, width)` to reduce each (cropped) frame to, at most its own size, or None to keep it.
      channels_last: (N, T, H, W, 1), as `convlstm_jax.ConvLSTM` takes by default, if True;
        (N, T, 1, H, W), as `convlstm_torch.ConvLSTM(..., batch_first=True)` takes, if False.

    Returns:
      `(sequences, times)`: the uint8 pixels, of shape (N, T, H, W, 1) or (N, T, 1, H, W), and
      each frame's time as `datetime64[s]`, of shape (N, T).

    Raises:
      TypeError: if an argument is of the wrong type.
      FileNotFoundError: if `root` is not a folder, or holds no HKO-7 frame (between start and end).
      ValueError: if an argument is out of range, no `num_frames` consecutive frames exist, the
        frames differ in size, `crop` does not fit in them, or a file is not a radar PNG.

    Examples:
      >>> import datetime, tempfile
      >>> import numpy as np
      >>> from convlstm_jax.data import pixels_to_rain, rain_to_pixels
      >>> from convlstm_jax.radar_files import load_hko_sequences, save_hko_frames
      >>> rain = np.random.default_rng(0).gamma(0.5, 4.0, size=(7, 8, 8))  # mm/h
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     _ = save_hko_frames(folder, rain_to_pixels(rain), datetime.datetime(2015, 6, 1, 12, 0))
      ...     sequences, times = load_hko_sequences(folder, 3)
      >>> sequences.shape, sequences.dtype  # 7 frames: two sequences of 3, one frame left
      ((2, 3, 8, 8, 1), dtype('uint8'))
      >>> times[1].astype(str).tolist()
      ['2015-06-01T12:18:00', '2015-06-01T12:24:00', '2015-06-01T12:30:00']
      >>> bool(np.allclose(pixels_to_rain(sequences[0, ..., 0]), rain[:3], rtol=0.05, atol=0.01))
      True
    """
    num_frames = _check_int("num_frames", num_frames, 1)
    stride = num_frames if stride is None else _check_int("stride", stride, 1)
    step = datetime.timedelta(minutes=_check_int("interval_minutes", interval_minutes, 1))
    crop, size = _check_crop(crop), _check_size(size)
    if not isinstance(channels_last, (bool, np.bool_)):
        raise TypeError(f"channels_last must be a bool, got {type(channels_last).__name__}.")
    frames = dict(find_hko_frames(root, start=start, end=end))
    if not frames:
        between = "" if start is None and end is None else f" between start={start} and end={end}"
        raise FileNotFoundError(f"No HKO-7 frame (RADyymmddHHMMSS.png) under {os.fspath(root)!r}{between}.")

    starts, next_start = [], None
    for time in frames:  # in time order
        if next_start is not None and time < next_start:
            continue
        if all(time + k * step in frames for k in range(1, num_frames)):
            starts.append(time)
            next_start = time + stride * step
    if not starts:
        run: dict[datetime.datetime, int] = {}
        for time in frames:
            run[time] = run.get(time - step, 0) + 1
        raise ValueError(
            f"No {num_frames} consecutive frames {interval_minutes} minutes apart among the {len(frames)} "
            f"frames under {os.fspath(root)!r}; the longest run without a gap has {max(run.values())}."
        )

    times = [[time + k * step for k in range(num_frames)] for time in starts]
    pixels: dict[datetime.datetime, np.ndarray] = {}
    stored_shape = None
    for time in sorted({time for sequence in times for time in sequence}):
        frame = read_radar_png(frames[time])
        if stored_shape is None:
            stored_shape = frame.shape
            _check_window(frame.shape, crop, size, frames[time])
        elif frame.shape != stored_shape:
            raise ValueError(
                f"Radar frames differ in size: {frames[time]} is {frame.shape[0]} x {frame.shape[1]}, the frames "
                f"before it {stored_shape[0]} x {stored_shape[1]} (H x W)."
            )
        pixels[time] = _resample(frame, crop, size)

    sequences = np.stack([np.stack([pixels[time] for time in sequence]) for sequence in times])
    sequences = sequences[..., np.newaxis] if channels_last else sequences[:, :, np.newaxis]
    stamps = np.array([[np.datetime64(time, "s") for time in sequence] for sequence in times])
    return np.ascontiguousarray(sequences), stamps


def _check_window(
    shape: tuple[int, ...], crop: tuple[int, int, int, int] | None, size: tuple[int, int] | None, path: Path
) -> None:
    """ValueError unless `crop` fits in frames of `shape` and `size` is at most the cropped size."""
    if crop is not None and (crop[0] + crop[2] > shape[0] or crop[1] + crop[3] > shape[1]):
        raise ValueError(
            f"crop (top, left, height, width)={crop} does not fit in frames of {shape[0]} x {shape[1]} "
            f"pixels (H x W, {path})."
        )
    window = shape if crop is None else crop[2:]
    if size is not None and (size[0] > window[0] or size[1] > window[1]):
        cropped = "" if crop is None else "cropped "
        raise ValueError(
            f"size={size} is larger than the {cropped}frames, {window[0]} x {window[1]} (H x W, {path}): area "
            "averaging only reduces."
        )


def _area_matrix(source: int, target: int) -> np.ndarray:
    """The (target, source) matrix of area averaging along one axis, target <= source: output pixel i is
    the mean of the stored pixels over [i s, (i + 1) s), s = source / target, each weighted by its overlap."""
    scale = source / target
    edges = np.arange(target + 1) * scale
    pixel = np.arange(source)
    overlap = np.minimum(edges[1:, np.newaxis], pixel + 1) - np.maximum(edges[:-1, np.newaxis], pixel)
    return np.clip(overlap, 0, None) / scale


def _resample(frame: np.ndarray, crop: tuple[int, int, int, int] | None, size: tuple[int, int] | None) -> np.ndarray:
    """`frame` cut to `crop`, then reduced to `size` by area averaging, rounded to uint8."""
    if crop is not None:
        top, left, height, width = crop
        frame = frame[top : top + height, left : left + width]
    if size is not None and size != frame.shape:
        rows, columns = _area_matrix(frame.shape[0], size[0]), _area_matrix(frame.shape[1], size[1])
        frame = np.clip(np.rint(rows @ frame.astype(np.float64) @ columns.T), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)
