"""The two baselines of radar nowcasting, made with pysteps: the last frame frozen, and moved.

A nowcast takes the last radar frames of rain rate (mm/h) and forecasts the next ones; Shi et al.
2015 compared ConvLSTM with optical flow. The baselines are pysteps', the community library of radar
nowcasting, rather than rewritten:

- `persistence`: the last frame, frozen (pysteps' Eulerian persistence,
  `pysteps.nowcasts.get_method("eulerian")`).
- `optical_flow`: the last frame moved along a motion field, as pysteps' extrapolation example
  does it: rain rates to dBR (`pysteps.utils.transformation.dB_transform`, 0.1 mm/h threshold,
  -15 dBR where drier), a motion field from the last 3 frames (`pysteps.motion.get_method`,
  Lucas-Kanade with OpenCV, or VET), semi-Lagrangian extrapolation of the last frame
  (`pysteps.nowcasts.get_method("extrapolation")`), and back to mm/h.
- `baselines`: either or both, by name.

pysteps (and OpenCV for Lucas-Kanade) are the `nowcast` extra: `pip install "convlstm-jax[nowcast]"`.
Importing this module needs neither; the functions import pysteps when called, without the line it
prints on import.

Example:
  >>> import numpy as np
  >>> from convlstm_jax.nowcasting import persistence
  >>> rain = np.zeros((2, 4, 16, 16), np.float32)
  >>> rain[:, :, 4:8, 2:6] = 3.0  # a 3 mm/h cell, staying where it is
  >>> forecast = persistence(rain, 2)
  >>> forecast.shape, forecast.dtype, bool((forecast == rain[:, -1:]).all())
  ((2, 2, 16, 16), dtype('float32'), True)
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

INSTALL = 'pip install "convlstm-jax[nowcast]"'
"""How to install what this module runs on: pysteps and opencv-python-headless."""

BASELINES = ("persistence", "optical_flow")
"""The baselines `baselines` makes, by name."""

MOTION_METHODS = ("lucaskanade", "vet")
"""The motion fields `optical_flow` takes: pysteps' Lucas-Kanade (needs OpenCV) and VET."""

DB_THRESHOLD = 0.1
"""mm/h: `optical_flow` works in dBR = 10 log10(R) above this rate (-10 dBR), as pysteps' examples."""

DB_ZERO_VALUE = -15.0
"""dBR given to rates below `DB_THRESHOLD` in `optical_flow`, as pysteps' examples."""


def _pysteps() -> Any:
    """The pysteps package, imported without the line it prints (where its configuration file is)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import pysteps
    except ImportError as error:
        raise ImportError(f"convlstm_jax.nowcasting runs on pysteps, which is not installed: {INSTALL}") from error
    return pysteps


def _check_opencv() -> None:
    try:
        import cv2  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"optical_flow(motion='lucaskanade') needs OpenCV, which is not installed: {INSTALL}, or pass motion='vet'."
        ) from error


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_rain(name: str, x: Any, layout: str) -> np.ndarray:
    """`x` as float64 rain rates of rank 3 or 4 (`layout` names the axes of rank 4), finite and >= 0."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array of rain rates in mm/h, got {type(x).__name__}.")
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and "float" not in dtype.name:
        raise TypeError(
            f"{name} must be rain rates in mm/h of a floating-point dtype, got {dtype} (convert HKO-7 pixels "
            "with convlstm_jax.nowcasting.pixels_to_rain)."
        )
    if len(x.shape) not in (3, 4) or 0 in x.shape:
        raise ValueError(f"{name} must be {layout} or one sequence without N, got shape {tuple(x.shape)}.")
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite: it holds {int(np.sum(~np.isfinite(x)))} NaN or infinite values.")
    if (x < 0).any():
        raise ValueError(f"{name} must be rain rates >= 0 mm/h, got a minimum of {x.min():g}.")
    return x


def _check_motion(motion: Any, motion_frames: Any, motion_kwargs: Any) -> tuple[str, int, dict[str, Any]]:
    if not isinstance(motion, str) or motion not in MOTION_METHODS:
        raise ValueError(f"motion must be one of {MOTION_METHODS}, got {motion!r}.")
    motion_frames = _check_int("motion_frames", motion_frames, 2)
    if motion_kwargs is None:
        motion_kwargs = {}
    if not isinstance(motion_kwargs, Mapping) or not all(isinstance(k, str) for k in motion_kwargs):
        raise TypeError(f"motion_kwargs must be a mapping of keyword arguments, got {type(motion_kwargs).__name__}.")
    return motion, motion_frames, dict(motion_kwargs)


def persistence(observed: np.ndarray, lead_times: int) -> np.ndarray:
    """The Eulerian persistence nowcast: the last observed frame, repeated for every lead time.

    The forecast any nowcast must beat at short lead times; it knows nothing of motion, so its skill
    falls as the rain moves away. Computed by pysteps' `nowcasts.get_method("eulerian")`.

    Args:
      observed: rain rates in mm/h, (N, T_in, H, W) sequences or one (T_in, H, W) sequence, finite
        and >= 0, of a floating-point dtype.
      lead_times: L, how many frames to forecast.

    Returns:
      The forecast rain rates in mm/h, float32 (N, L, H, W), or (L, H, W) for one sequence.

    Raises:
      TypeError: if `observed` is not a floating-point array or `lead_times` not an int.
      ValueError: if `observed` is not 3-D or 4-D, holds NaN, infinite or negative rates, or
        `lead_times` < 1.
      ImportError: if pysteps is not installed.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import persistence
      >>> observed = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
      >>> persistence(observed, 2)[:, 0, 0]  # the last frame's pixel, twice
      array([8., 8.], dtype=float32)
    """
    x = _check_rain("observed", observed, "(N, T_in, H, W)")
    lead_times = _check_int("lead_times", lead_times, 1)
    single = x.ndim == 3
    x = x[np.newaxis] if single else x
    extrapolate = _pysteps().nowcasts.get_method("eulerian")
    forecast = np.empty((x.shape[0], lead_times, *x.shape[2:]), np.float32)
    for n, sequence in enumerate(x):
        forecast[n] = extrapolate(sequence[-1], None, lead_times)
    return forecast[0] if single else forecast


def optical_flow(
    observed: np.ndarray,
    lead_times: int,
    *,
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The optical-flow (extrapolation) nowcast: the last frame moved along the rain's motion.

    Each sequence, as in pysteps' extrapolation example: the rates become dBR, 10 log10(R / 1 mm/h),
    above `DB_THRESHOLD` = 0.1 mm/h and `DB_ZERO_VALUE` = -15 dBR below it (the motion of the rain's
    pattern, not of its amount, is sought); pysteps estimates a motion field (pixels a frame) from the
    last `motion_frames` frames; its semi-Lagrangian scheme moves the last frame along it for each
    lead time (backward trajectories, bilinear interpolation in dBR; Germann and Zawadzki 2002); and
    the forecast goes back to mm/h, with rates below 0.1 mm/h dry (0). The motion is held constant:
    growth, decay and new cells are beyond it.

    Rain cannot come from outside the frame: pixels whose trajectory leaves the domain (NaN in
    pysteps) are dry, 0 mm/h. That band, upwind and widening by the speed at each lead time, is where
    this baseline misses rain that moves in.

    Args:
      observed: rain rates in mm/h, (N, T_in, H, W) sequences or one (T_in, H, W) sequence, finite
        and >= 0, of a floating-point dtype; T_in >= `motion_frames`.
      lead_times: L, how many frames to forecast.
      motion: "lucaskanade" (the default; pysteps' dense Lucas-Kanade: Shi-Tomasi corners tracked by
        OpenCV's pyramidal Lucas-Kanade, outliers removed, vectors interpolated to every pixel; fast)
        or "vet" (Variational Echo Tracking, Laroche and Zawadzki 1995: a smooth field minimising the
        squared difference of the warped frames; no OpenCV, but slower: about 0.5 s a sequence of
        64 x 64 frames with pysteps' default sectors, against 20-40 ms for Lucas-Kanade. Its OpenMP
        threads wait for each other at every step: on busy CPUs, one thread (`OMP_NUM_THREADS=1`, or
        `threadpoolctl.threadpool_limits(1, "openmp")`) was 50 times faster than two).
      motion_frames: how many of the last frames the motion is estimated from: 3, as pysteps' examples
        (Lucas-Kanade pools the vectors of the 2 pairs of consecutive frames; VET fits one field to
        the 3 frames).
      motion_kwargs: keyword arguments of the pysteps motion method (`dense_lucaskanade` or `vet`),
        such as `{"sectors": (8, 4, 2)}` for a faster VET on small frames; VET gets `verbose=False`
        unless given.

    Returns:
      The forecast rain rates in mm/h, float32 (N, L, H, W), or (L, H, W) for one sequence.

    Raises:
      TypeError: if `observed` is not a floating-point array, `lead_times` or `motion_frames` not an
        int, or `motion_kwargs` not a mapping.
      ValueError: if `observed` is not 3-D or 4-D, holds NaN, infinite or negative rates, has fewer
        than `motion_frames` frames, or `lead_times` < 1, `motion_frames` < 2, `motion` unknown.
      ImportError: if pysteps, or OpenCV for Lucas-Kanade, is not installed.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import optical_flow
      >>> rows, columns = np.mgrid[:32, :32]
      >>> cell = lambda t: 10 * np.exp(-((rows - 16) ** 2 + (columns - 8 - 2 * t) ** 2) / 18)
      >>> observed = np.stack([cell(t) for t in range(4)])  # moving 2 pixels a frame to the right
      >>> forecast = optical_flow(observed, 3)
      >>> [int(np.argmax(frame[16])) for frame in forecast]  # the column of the core
      [16, 18, 20]
    """
    x = _check_rain("observed", observed, "(N, T_in, H, W)")
    lead_times = _check_int("lead_times", lead_times, 1)
    motion, motion_frames, motion_kwargs = _check_motion(motion, motion_frames, motion_kwargs)
    if x.shape[-3] < motion_frames:
        raise ValueError(
            f"optical_flow estimates the motion from the last motion_frames={motion_frames} frames; observed has "
            f"{x.shape[-3]} (shape {x.shape})."
        )
    single = x.ndim == 3
    x = x[np.newaxis] if single else x
    pysteps = _pysteps()
    if motion == "lucaskanade":
        _check_opencv()
    else:
        motion_kwargs.setdefault("verbose", False)
    estimate = pysteps.motion.get_method(motion)
    extrapolate = pysteps.nowcasts.get_method("extrapolation")
    db_transform = pysteps.utils.transformation.dB_transform
    forecast = np.empty((x.shape[0], lead_times, *x.shape[2:]), np.float32)
    with warnings.catch_warnings():
        # Lucas-Kanade's outlier test finds a singular covariance where every vector is the same (a
        # pure translation) and keeps them all, which is right; pysteps says so with a warning.
        warnings.filterwarnings("ignore", message="Singular matrix during outlier detection")
        for n, sequence in enumerate(x):
            db = db_transform(sequence[-motion_frames:], threshold=DB_THRESHOLD, zerovalue=DB_ZERO_VALUE)[0]
            velocity = estimate(db, **motion_kwargs)
            moved = extrapolate(db[-1], velocity, lead_times)
            rain = db_transform(moved, threshold=10 * math.log10(DB_THRESHOLD), inverse=True)[0]
            forecast[n] = np.nan_to_num(rain, nan=0.0)
    return forecast[0] if single else forecast


def baselines(
    observed: np.ndarray,
    lead_times: int,
    *,
    methods: Sequence[str] = BASELINES,
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """The baseline nowcasts of `observed`, by name: `persistence` and `optical_flow`.

    Args:
      observed: rain rates in mm/h, (N, T_in, H, W) or (T_in, H, W), as `persistence` takes them.
      lead_times: L, how many frames to forecast.
      methods: which baselines, among `BASELINES`, in the order of the returned dict.
      motion, motion_frames, motion_kwargs: `optical_flow`'s options.

    Returns:
      {name: float32 forecast of rain rates in mm/h (N, L, H, W), or (L, H, W) for one sequence}.

    Raises:
      TypeError, ValueError: as `persistence` and `optical_flow`, before any forecast is made; also
        if `methods` is empty, repeats a name or names another.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import baselines
      >>> forecasts = baselines(np.zeros((2, 4, 16, 16), np.float32), 3)
      >>> {name: forecast.shape for name, forecast in forecasts.items()}
      {'persistence': (2, 3, 16, 16), 'optical_flow': (2, 3, 16, 16)}
    """
    if isinstance(methods, str) or not isinstance(methods, Sequence):
        raise TypeError(f"methods must be a sequence of names among {BASELINES}, got {methods!r}.")
    if not methods or len(set(methods)) != len(methods) or not set(methods) <= set(BASELINES):
        raise ValueError(f"methods must name each of some of {BASELINES} once, got {tuple(methods)!r}.")
    x = _check_rain("observed", observed, "(N, T_in, H, W)")
    _check_int("lead_times", lead_times, 1)
    if "optical_flow" in methods:
        motion, motion_frames, motion_kwargs = _check_motion(motion, motion_frames, motion_kwargs)
        if x.shape[-3] < motion_frames:
            raise ValueError(
                f"optical_flow estimates the motion from the last motion_frames={motion_frames} frames; observed "
                f"has {x.shape[-3]} (shape {x.shape})."
            )
    forecasts = {}
    for name in methods:
        if name == "persistence":
            forecasts[name] = persistence(x, lead_times)
        else:
            forecasts[name] = optical_flow(
                x, lead_times, motion=motion, motion_frames=motion_frames, motion_kwargs=motion_kwargs
            )
    return forecasts


__all__ = [
    "BASELINES",
    "DB_THRESHOLD",
    "DB_ZERO_VALUE",
    "INSTALL",
    "MOTION_METHODS",
    "baselines",
    "optical_flow",
    "persistence",
]
