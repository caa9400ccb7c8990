"""The baselines of radar nowcasting, made with pysteps: the last frame frozen or moved, S-PROG,
ANVIL and STEPS.

A nowcast takes the last radar frames of rain rate (mm/h) and forecasts the next ones; Shi et al.
2015 compared ConvLSTM with optical flow. The baselines are pysteps', the community library of radar
nowcasting, each one `pysteps.nowcasts.get_method` away and set up as in pysteps' examples:

- `persistence`: the last frame, frozen (pysteps' Eulerian persistence,
  `pysteps.nowcasts.get_method("eulerian")`).
- `optical_flow`: the last frame moved along a motion field, as pysteps' extrapolation example
  does it: rain rates to dBR (`pysteps.utils.transformation.dB_transform`, 0.1 mm/h threshold,
  -15 dBR where drier), a motion field from the last 3 frames (`pysteps.motion.get_method`,
  Lucas-Kanade with OpenCV, or VET), semi-Lagrangian extrapolation of the last frame
  (`pysteps.nowcasts.get_method("extrapolation")`), and back to mm/h.
- `sprog`: S-PROG (Seed 2003), the extrapolation of a cascade of scales in dBR whose small scales
  fade as they lose predictability: a smooth forecast, the fair comparison for a model trained on a
  mean-square error (`get_method("sprog")`).
- `anvil`: ANVIL (Pulkkinen et al. 2020) on rain rates, extrapolation with growth and decay learnt
  from the last frames by local autoregressive models (`get_method("anvil")`).
- `steps`: STEPS (Bowler et al. 2006, Seed et al. 2013), S-PROG plus stochastic noise and motion
  perturbations: an ensemble (`get_method("steps")`); `baselines` also gives its mean.
- `baselines`: any of them, by name, the motion field estimated once per sequence and shared.

All but persistence move rain along the same motion field, from the same frames, and none can bring
rain in from beyond the frame: pixels whose trajectory leaves the domain have no value, NaN (pysteps'
convention), as have pixels carried from missing input. Which pixels to score is the scores' choice
(all observed ones, or those every method reaches).

pysteps (and OpenCV for Lucas-Kanade) are the `nowcast` extra: `pip install "convlstm-jax[nowcast]"`.
Importing this module needs neither; the functions import pysteps when called, without the lines it
prints.

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
"""The baselines `baselines` makes by default, by name: the two fast ones."""

ALL_BASELINES = ("persistence", "optical_flow", "sprog", "anvil", "steps_mean", "steps_ensemble")
"""Every baseline `baselines` makes, by name: "steps_ensemble" is STEPS' ensemble, (N, members, L, H, W),
and "steps_mean" its mean; the others are (N, L, H, W)."""

ENSEMBLE_BASELINES = ("steps_ensemble",)
"""The baselines of `ALL_BASELINES` that are ensembles, (N, members, L, H, W)."""

MOTION_METHODS = ("lucaskanade", "vet")
"""The motion fields `optical_flow` takes: pysteps' Lucas-Kanade (needs OpenCV) and VET."""

DB_THRESHOLD = 0.1
"""mm/h: `optical_flow` works in dBR = 10 log10(R) above this rate (-10 dBR), as pysteps' examples."""

DB_ZERO_VALUE = -15.0
"""dBR given to rates below `DB_THRESHOLD` in `optical_flow`, `sprog` and `steps`, as pysteps' examples."""

AR_ORDER = 2
"""The order of the autoregressive models of S-PROG, ANVIL and STEPS, as pysteps' examples: S-PROG and
STEPS take the last 3 frames (`AR_ORDER` + 1), ANVIL the last 4 (`AR_ORDER` + 2)."""

CASCADE_LEVELS = 6
"""The spatial scales (cascade levels) of S-PROG, ANVIL and STEPS: pysteps' default."""

ANVIL_WINDOW_RADIUS = 25
"""Pixels: the radius of ANVIL's local autoregressive models, as pysteps' ANVIL example."""

ENSEMBLE_MEMBERS = 10
"""The default number of STEPS members: few, for speed (pysteps' examples take 12 to 24)."""

KM_PER_PIXEL = 1.0
"""The default pixel size in km given to STEPS' motion perturbations (HKO-7's frames: about 1.07 km)."""

DEFAULT_TIMESTEP = 6.0
"""The default frame interval in minutes given to STEPS' motion perturbations (HKO-7's)."""

_FRAMES_NEEDED = {
    "sprog": AR_ORDER + 1,
    "anvil": AR_ORDER + 2,
    "steps_mean": AR_ORDER + 1,
    "steps_ensemble": AR_ORDER + 1,
}


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


def _check_rain(name: str, x: Any, layout: str, *, allow_missing: bool = False) -> np.ndarray:
    """`x` as float64 rain rates of rank 3 or 4 (`layout` names the axes of rank 4), >= 0 and finite, or
    NaN (missing) too if `allow_missing`."""
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
    if allow_missing:
        if np.isinf(x).any():
            raise ValueError(
                f"{name} must be finite rain rates or NaN (missing): it holds {int(np.isinf(x).sum())} infinite values."
            )
    elif not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite: it holds {int(np.sum(~np.isfinite(x)))} NaN or infinite values.")
    if (x < 0).any():
        raise ValueError(f"{name} must be rain rates >= 0 mm/h, got a minimum of {np.nanmin(x):g}.")
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


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}.")
    return float(value)


def _check_ensemble(n_ens_members: Any, seed: Any, kmperpixel: Any, timestep: Any) -> tuple[int, int, float, float]:
    n_ens_members = _check_int("n_ens_members", n_ens_members, 1)
    seed = _check_int("seed", seed, 0)
    return n_ens_members, seed, _check_positive("kmperpixel", kmperpixel), _check_positive("timestep", timestep)


def _check_frames(x: np.ndarray, methods: Sequence[str], motion_frames: int) -> None:
    """Enough frames for each method, and no frame it reads entirely missing (pysteps cannot move it)."""
    frames = x.shape[-3]
    needed = 1
    for name in methods:
        if name == "persistence":
            continue
        if name == "optical_flow" and frames < motion_frames:
            raise ValueError(
                f"optical_flow estimates the motion from the last motion_frames={motion_frames} frames; observed "
                f"has {frames} (shape {x.shape})."
            )
        least = max(motion_frames, _FRAMES_NEEDED.get(name, 1))
        if frames < least:
            raise ValueError(
                f"{name} needs the last {least} frames (its model's and motion_frames={motion_frames}); observed "
                f"has {frames} (shape {x.shape})."
            )
        needed = max(needed, least)
    if needed > 1:
        sequences = x.reshape(-1, *x.shape[-3:])
        observed = np.isfinite(sequences[:, -needed:]).any(axis=(-2, -1))
        if not observed.all():
            n, t = np.argwhere(~observed)[0]
            raise ValueError(
                f"observed frame {frames - needed + t} of sequence {n} is entirely missing (NaN): the motion and "
                f"the extrapolation of {tuple(methods)} read its last {needed} frames."
            )


def _estimate_motion(estimate: Any, db: np.ndarray, motion_kwargs: Mapping[str, Any]) -> np.ndarray:
    """`estimate(db, **motion_kwargs)`, pysteps' motion field of frames in dB.

    Where Lucas-Kanade finds two vectors or fewer (a small or nearly featureless frame), its outlier
    test takes the covariance of a single neighbour: NaN, with numpy's warnings of zero degrees of
    freedom and of a division by zero, and every vector is kept, which is right; those warnings are
    left out here, and only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Degrees of freedom <= 0", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="divide by zero encountered", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
        return estimate(db, **motion_kwargs)


def _forecasts(
    x: np.ndarray,
    lead_times: int,
    methods: Sequence[str],
    motion: str,
    motion_frames: int,
    motion_kwargs: dict[str, Any],
    n_ens_members: int,
    seed: int,
    kmperpixel: float,
    timestep: float,
) -> dict[str, np.ndarray]:
    """The checked (N, T_in, H, W) rain rates' forecasts by `methods`, one motion field a sequence."""
    pysteps = _pysteps()
    moving = [name for name in methods if name != "persistence"]
    if moving and motion == "lucaskanade":
        _check_opencv()
    elif moving:
        motion_kwargs.setdefault("verbose", False)
    n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    forecasts = {}
    for name in methods:
        members = (n_ens_members,) if name == "steps_ensemble" else ()
        forecasts[name] = np.empty((n, *members, lead_times, height, width), np.float32)
    db_transform = pysteps.utils.transformation.dB_transform
    db_rain = 10 * math.log10(DB_THRESHOLD)  # -10 dBR: below it, dry

    def to_rain(db: np.ndarray) -> np.ndarray:
        return db_transform(db, threshold=db_rain, inverse=True)[0]

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # Lucas-Kanade's outlier test finds a singular covariance where every vector is the same (a
        # pure translation) and keeps them all, which is right; pysteps says so with a warning.
        warnings.filterwarnings("ignore", message="Singular matrix during outlier detection")
        for i, sequence in enumerate(x):
            if "persistence" in methods:
                forecasts["persistence"][i] = pysteps.nowcasts.get_method("eulerian")(sequence[-1], None, lead_times)
            if not moving:
                continue
            db = db_transform(sequence, threshold=DB_THRESHOLD, zerovalue=DB_ZERO_VALUE)[0]  # NaN stays NaN
            velocity = _estimate_motion(pysteps.motion.get_method(motion), db[-motion_frames:], motion_kwargs)
            steps_forecast = None
            for name in moving:
                if name == "optical_flow":
                    extrap_kwargs = {"allow_nonfinite_values": True} if np.isnan(db[-1]).any() else {}
                    moved = pysteps.nowcasts.get_method("extrapolation")(
                        db[-1], velocity, lead_times, extrap_kwargs=extrap_kwargs
                    )
                    forecasts[name][i] = to_rain(moved)
                elif name == "sprog":
                    smooth = pysteps.nowcasts.get_method("sprog")(
                        db[-(AR_ORDER + 1) :],
                        velocity,
                        lead_times,
                        precip_thr=db_rain,
                        n_cascade_levels=CASCADE_LEVELS,
                        ar_order=AR_ORDER,
                        probmatching_method="mean",
                    )
                    forecasts[name][i] = to_rain(smooth)
                elif name == "anvil":
                    frames = sequence[-(AR_ORDER + 2) :]
                    if not (frames >= DB_THRESHOLD).any():
                        # No rain to grow (pysteps' ANVIL divides by zero): dry, but where input is missing,
                        # as S-PROG and STEPS do without rain.
                        forecasts[name][i] = np.where(np.isnan(frames).any(axis=0), np.nan, 0.0)
                        continue
                    grown = pysteps.nowcasts.get_method("anvil")(
                        frames,
                        velocity,
                        lead_times,
                        n_cascade_levels=CASCADE_LEVELS,
                        ar_order=AR_ORDER,
                        ar_window_radius=ANVIL_WINDOW_RADIUS,
                    )
                    forecasts[name][i] = np.where(grown < 0, 0.0, grown)  # NaN stays NaN
                else:
                    if steps_forecast is None:
                        ensemble = pysteps.nowcasts.get_method("steps")(
                            db[-(AR_ORDER + 1) :],
                            velocity,
                            lead_times,
                            n_ens_members,
                            n_cascade_levels=CASCADE_LEVELS,
                            precip_thr=db_rain,
                            kmperpixel=kmperpixel,
                            timestep=timestep,
                            ar_order=AR_ORDER,
                            noise_method="nonparametric",
                            vel_pert_method="bps",
                            mask_method="incremental",
                            seed=seed,
                        )
                        steps_forecast = to_rain(ensemble)
                    if name == "steps_ensemble":
                        forecasts[name][i] = steps_forecast
                    else:
                        forecasts[name][i] = steps_forecast.mean(axis=0)  # NaN where any member is
    return forecasts


def _run(
    observed: np.ndarray,
    lead_times: int,
    methods: Sequence[str],
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
    n_ens_members: int = ENSEMBLE_MEMBERS,
    seed: int = 0,
    kmperpixel: float = KM_PER_PIXEL,
    timestep: float = DEFAULT_TIMESTEP,
) -> tuple[dict[str, np.ndarray], bool]:
    """Every check, then the forecasts of (N, ...) sequences, and whether `observed` was one sequence."""
    x = _check_rain("observed", observed, "(N, T_in, H, W)", allow_missing=True)
    lead_times = _check_int("lead_times", lead_times, 1)
    moving = [name for name in methods if name != "persistence"]
    if moving:
        motion, motion_frames, motion_kwargs = _check_motion(motion, motion_frames, motion_kwargs)
    else:
        motion_kwargs = {}
    if any(name.startswith("steps") for name in methods):
        n_ens_members, seed, kmperpixel, timestep = _check_ensemble(n_ens_members, seed, kmperpixel, timestep)
    _check_frames(x, methods, motion_frames)
    single = x.ndim == 3
    x = x[np.newaxis] if single else x
    forecasts = _forecasts(
        x, lead_times, methods, motion, motion_frames, motion_kwargs, n_ens_members, seed, kmperpixel, timestep
    )
    return forecasts, single


def persistence(observed: np.ndarray, lead_times: int) -> np.ndarray:
    """The Eulerian persistence nowcast: the last observed frame, repeated for every lead time.

    The forecast any nowcast must beat at short lead times; it knows nothing of motion, so its skill
    falls as the rain moves away. Computed by pysteps' `nowcasts.get_method("eulerian")`.

    Missing data: NaN where the last frame is NaN (missing), and nowhere else.

    Args:
      observed: rain rates in mm/h, (N, T_in, H, W) sequences or one (T_in, H, W) sequence, >= 0 or
        NaN (missing), of a floating-point dtype.
      lead_times: L, how many frames to forecast.

    Returns:
      The forecast rain rates in mm/h, float32 (N, L, H, W), or (L, H, W) for one sequence.

    Raises:
      TypeError: if `observed` is not a floating-point array or `lead_times` not an int.
      ValueError: if `observed` is not 3-D or 4-D, holds infinite or negative rates, or `lead_times`
        < 1.
      ImportError: if pysteps is not installed.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import persistence
      >>> observed = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
      >>> persistence(observed, 2)[:, 0, 0]  # the last frame's pixel, twice
      array([8., 8.], dtype=float32)
    """
    forecasts, single = _run(observed, lead_times, ("persistence",))
    return forecasts["persistence"][0] if single else forecasts["persistence"]


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

    Where it is blind, NaN: rain cannot come from outside the frame, so pixels whose trajectory
    leaves the domain have no forecast (pysteps' NaN, kept). That band lies upwind and widens by
    the speed at each lead time; score on the pixels every method reaches, or fill the band (with
    persistence, say) before scoring, rather than count it as dry.

    Missing data (NaN in `observed`): the motion methods mask it (Lucas-Kanade and VET fill it with
    the frame's lowest dBR, as dry), and the extrapolation carries the last frame's missing pixels
    along the motion: NaN where the trajectory starts on a missing pixel.

    Args:
      observed: rain rates in mm/h, (N, T_in, H, W) sequences or one (T_in, H, W) sequence, >= 0 or
        NaN (missing), of a floating-point dtype; T_in >= `motion_frames`, none of the last
        `motion_frames` frames entirely missing.
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
      The forecast rain rates in mm/h, float32 (N, L, H, W), or (L, H, W) for one sequence; NaN
      where the forecast has no value (above). Where `observed` holds no NaN, the values are those
      of pysteps' extrapolation example, and NaN only in the band that rain enters by.

    Raises:
      TypeError: if `observed` is not a floating-point array, `lead_times` or `motion_frames` not an
        int, or `motion_kwargs` not a mapping.
      ValueError: if `observed` is not 3-D or 4-D, holds infinite or negative rates, has fewer than
        `motion_frames` frames or one of them entirely missing, or `lead_times` < 1,
        `motion_frames` < 2, `motion` unknown.
      ImportError: if pysteps, or OpenCV for Lucas-Kanade, is not installed.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import optical_flow
      >>> rows, columns = np.mgrid[:32, :32]
      >>> cell = lambda t: 10 * np.exp(-((rows - 16) ** 2 + (columns - 8 - 2 * t) ** 2) / 18)
      >>> observed = np.stack([cell(t) for t in range(4)])  # moving 2 pixels a frame to the right
      >>> forecast = optical_flow(observed, 3)
      >>> [int(np.nanargmax(frame[16])) for frame in forecast]  # the column of the core
      [16, 18, 20]
      >>> [int(np.isnan(frame[16]).sum()) for frame in forecast]  # where rain enters: 2 a frame, and 1
      [3, 5, 7]
    """
    forecasts, single = _run(
        observed, lead_times, ("optical_flow",), motion=motion, motion_frames=motion_frames, motion_kwargs=motion_kwargs
    )
    return forecasts["optical_flow"][0] if single else forecasts["optical_flow"]


def sprog(
    observed: np.ndarray,
    lead_times: int,
    *,
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The S-PROG nowcast (Seed 2003): extrapolation whose unpredictable small scales fade away.

    Each sequence, as in pysteps' STEPS example: the rates become dBR as in `optical_flow`, the same
    motion field is estimated, and pysteps' S-PROG (`nowcasts.get_method("sprog")`) moves the last
    `AR_ORDER` + 1 = 3 frames to a common time, splits them into `CASCADE_LEVELS` spatial scales, and
    forecasts each scale by an AR(2) model fitted to it, so that small scales, which lose correlation
    quickly, fade first; the sum is rescaled to the last frame's mean rain in dBR ("mean"
    probability matching, as in the example) and goes back to mm/h (below 0.1 mm/h dry). A forecast
    that grows smoother with the lead time, like the conditional mean a model trained on the
    mean-square error learns: the fair comparison for such a model.

    Where it is blind, NaN: as `optical_flow`, the band rain enters by; and pixels missing in any of
    its 3 input frames (pysteps' domain mask), carried along the motion. Missing input is otherwise
    filled with the lowest dBR (dry) for the cascade.

    Args:
      observed: as `optical_flow`; T_in >= 3 and >= `motion_frames`.
      lead_times: L, how many frames to forecast.
      motion, motion_frames, motion_kwargs: the motion field, as `optical_flow`'s.

    Returns:
      The forecast rain rates in mm/h, float32 (N, L, H, W), or (L, H, W) for one sequence; NaN where
      it has no value (above).

    Raises:
      TypeError, ValueError: as `optical_flow`, before any forecast is made.
      ImportError: if pysteps, or OpenCV for Lucas-Kanade, is not installed.
    """
    forecasts, single = _run(
        observed, lead_times, ("sprog",), motion=motion, motion_frames=motion_frames, motion_kwargs=motion_kwargs
    )
    return forecasts["sprog"][0] if single else forecasts["sprog"]


def anvil(
    observed: np.ndarray,
    lead_times: int,
    *,
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The ANVIL nowcast (Pulkkinen et al. 2020): extrapolation with growth and decay.

    Each sequence, as in pysteps' ANVIL example: the motion field is `optical_flow`'s (from dBR), and
    pysteps' ANVIL (`nowcasts.get_method("anvil")`) works on the rain rates themselves: it moves the
    last `AR_ORDER` + 2 = 4 frames to a common time, splits their differences into `CASCADE_LEVELS`
    scales and fits local AR(2) models (in windows of radius `ANVIL_WINDOW_RADIUS` = 25 pixels) that
    carry the recent growth or decay of each place forward; negative rates are set to 0. Without rain
    (no rate >= 0.1 mm/h in those frames) the forecast is dry.

    Where it is blind, NaN: the band rain enters by, wider than `optical_flow`'s since its older
    input frames are moved too; and pixels missing in any of its 4 input frames, carried along the
    motion (pysteps sets them to 0 for the models and masks them out after).

    Args:
      observed: as `optical_flow`; T_in >= 4 and >= `motion_frames`.
      lead_times: L, how many frames to forecast.
      motion, motion_frames, motion_kwargs: the motion field, as `optical_flow`'s.

    Returns:
      The forecast rain rates in mm/h, float32 (N, L, H, W), or (L, H, W) for one sequence; NaN where
      it has no value (above).

    Raises:
      TypeError, ValueError: as `optical_flow`, before any forecast is made.
      ImportError: if pysteps, or OpenCV for Lucas-Kanade, is not installed.
    """
    forecasts, single = _run(
        observed, lead_times, ("anvil",), motion=motion, motion_frames=motion_frames, motion_kwargs=motion_kwargs
    )
    return forecasts["anvil"][0] if single else forecasts["anvil"]


def steps(
    observed: np.ndarray,
    lead_times: int,
    *,
    n_ens_members: int = ENSEMBLE_MEMBERS,
    seed: int = 0,
    kmperpixel: float = KM_PER_PIXEL,
    timestep: float = DEFAULT_TIMESTEP,
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The STEPS ensemble nowcast (Bowler et al. 2006; Seed et al. 2013): S-PROG plus noise.

    Each sequence, as in pysteps' STEPS example: the rates become dBR and the motion field is
    estimated as in `optical_flow`; pysteps' STEPS (`nowcasts.get_method("steps")`) forecasts the
    cascade of scales as `sprog` does and adds to each member noise with the spatial structure of
    the last frame ("nonparametric") and a perturbation of the motion field ("bps", whose statistics
    are in km and minutes: hence `kmperpixel` and `timestep`); each member's CDF is matched to the
    last frame's, its wet area grown as observed ("incremental" mask), and it goes back to mm/h
    (below 0.1 mm/h dry). The members keep the variance of the observed rain where S-PROG smooths
    it; their mean is smooth. Every sequence is forecast with the same `seed`, so that a sequence's
    forecast does not depend on the others in the batch.

    Where it is blind, NaN: as `sprog` (the band rain enters by, different in each member as its
    motion is perturbed, and missing input carried along the motion).

    Args:
      observed: as `optical_flow`; T_in >= 3 and >= `motion_frames`.
      lead_times: L, how many frames to forecast.
      n_ens_members: M, the members of the ensemble (`ENSEMBLE_MEMBERS` = 10 by default).
      seed: the seed of the noise and motion perturbations, an int >= 0.
      kmperpixel: the pixel size in km (`KM_PER_PIXEL` = 1 by default).
      timestep: the frame interval in minutes (`DEFAULT_TIMESTEP` = 6 by default).
      motion, motion_frames, motion_kwargs: the motion field, as `optical_flow`'s.

    Returns:
      The members' rain rates in mm/h, float32 (N, M, L, H, W), or (M, L, H, W) for one sequence;
      NaN where a member has no value (above).

    Raises:
      TypeError, ValueError: as `optical_flow`, and if `n_ens_members` or `seed` is not an int
        (>= 1, >= 0), `kmperpixel` or `timestep` not a positive number, before any forecast.
      ImportError: if pysteps, or OpenCV for Lucas-Kanade, is not installed.
    """
    forecasts, single = _run(
        observed,
        lead_times,
        ("steps_ensemble",),
        motion=motion,
        motion_frames=motion_frames,
        motion_kwargs=motion_kwargs,
        n_ens_members=n_ens_members,
        seed=seed,
        kmperpixel=kmperpixel,
        timestep=timestep,
    )
    return forecasts["steps_ensemble"][0] if single else forecasts["steps_ensemble"]


def baselines(
    observed: np.ndarray,
    lead_times: int,
    *,
    methods: Sequence[str] = BASELINES,
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
    n_ens_members: int = ENSEMBLE_MEMBERS,
    seed: int = 0,
    kmperpixel: float = KM_PER_PIXEL,
    timestep: float = DEFAULT_TIMESTEP,
) -> dict[str, np.ndarray]:
    """The baseline nowcasts of `observed`, by name, each from the same motion field.

    The names (`ALL_BASELINES`): "persistence", "optical_flow", "sprog", "anvil" (each as the
    function of that name), "steps_ensemble" (`steps`) and "steps_mean", the mean of its members
    (NaN where any member is). The motion field of a sequence is estimated once and shared; STEPS
    runs once for both of its names.

    Where a method is blind, its forecast is NaN (see each function): the band rain enters by, for
    every method but persistence, and missing input carried along the motion. Nothing is filled:
    which pixels count is the scores' choice.

    Args:
      observed: rain rates in mm/h, (N, T_in, H, W) or (T_in, H, W), >= 0 or NaN (missing).
      lead_times: L, how many frames to forecast.
      methods: which baselines, among `ALL_BASELINES`, in the order of the returned dict (default
        `BASELINES`: persistence and optical flow, the fast ones).
      motion, motion_frames, motion_kwargs: the motion field, as `optical_flow`'s.
      n_ens_members, seed, kmperpixel, timestep: STEPS' options, as `steps`'.

    Returns:
      {name: float32 forecast of rain rates in mm/h (N, L, H, W), or (L, H, W) for one sequence;
      "steps_ensemble": (N, M, L, H, W), or (M, L, H, W)}.

    Raises:
      TypeError, ValueError: as the functions, before any forecast is made; also if `methods` is
        empty, repeats a name or names another.
      ImportError: if pysteps, or OpenCV for Lucas-Kanade, is not installed.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import baselines
      >>> forecasts = baselines(np.zeros((2, 4, 16, 16), np.float32), 3)
      >>> {name: forecast.shape for name, forecast in forecasts.items()}
      {'persistence': (2, 3, 16, 16), 'optical_flow': (2, 3, 16, 16)}
      >>> forecasts = baselines(np.zeros((4, 16, 16), np.float32), 3, methods=("sprog", "steps_ensemble"))
      >>> {name: forecast.shape for name, forecast in forecasts.items()}
      {'sprog': (3, 16, 16), 'steps_ensemble': (10, 3, 16, 16)}
    """
    if isinstance(methods, str) or not isinstance(methods, Sequence):
        raise TypeError(f"methods must be a sequence of names among {ALL_BASELINES}, got {methods!r}.")
    if not methods or len(set(methods)) != len(methods) or not set(methods) <= set(ALL_BASELINES):
        raise ValueError(f"methods must name each of some of {ALL_BASELINES} once, got {tuple(methods)!r}.")
    forecasts, single = _run(
        observed,
        lead_times,
        tuple(methods),
        motion=motion,
        motion_frames=motion_frames,
        motion_kwargs=motion_kwargs,
        n_ens_members=n_ens_members,
        seed=seed,
        kmperpixel=kmperpixel,
        timestep=timestep,
    )
    return {name: forecast[0] if single else forecast for name, forecast in forecasts.items()}


__all__ = [
    "ALL_BASELINES",
    "ANVIL_WINDOW_RADIUS",
    "AR_ORDER",
    "BASELINES",
    "CASCADE_LEVELS",
    "DB_THRESHOLD",
    "DB_ZERO_VALUE",
    "DEFAULT_TIMESTEP",
    "ENSEMBLE_BASELINES",
    "ENSEMBLE_MEMBERS",
    "INSTALL",
    "KM_PER_PIXEL",
    "MOTION_METHODS",
    "anvil",
    "baselines",
    "optical_flow",
    "persistence",
    "sprog",
    "steps",
]
