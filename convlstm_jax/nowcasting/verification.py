"""Verification of radar nowcasts, with pysteps' scores per lead time, and a skill table.

Shi et al. 2015 scored their nowcasts on CSI, FAR, POD, the rainfall MSE and the correlation.
The scores are pysteps', the community library of radar nowcasting, rather than rewritten:

- `Verification`: categorical scores (`pysteps.verification.detcatscores`: CSI, POD, FAR, HSS)
  at rain-rate thresholds, the fractions skill score (`pysteps.verification.spatialscores`: FSS)
  at thresholds and scales, and continuous scores (`pysteps.verification.detcontscores`: MSE of
  the rain rate, Pearson correlation), each per lead time, accumulated batch by batch over a
  validation set; `result()` is a plain JSON-serialisable dict. `verify` scores one forecast.
  Only observed pixels count (NaN truth is missing); a NaN forecast where the truth is observed
  counts as no rain, so that a method gains nothing from being blind; a mask restricts a region.
- `reachable`: the pixels extrapolation reaches from inside the domain, by pysteps' own scheme, the
  region where no method is blind by construction (`REGIONS`: "frame" and "reachable").
- `bootstrap_differences`: the model-minus-baseline difference of each headline score (CSI at each
  threshold, MSE) with its paired bootstrap interval, from the per-sequence counts of the results.
- `score_by_lead_time`: one score of such a dict, lead time by lead time.
- `skill_table`: that dict for several methods as a fixed-width table per lead time in minutes, and
  a run's skill (both regions and the intervals).

pysteps is the `nowcast` extra: `pip install "convlstm-jax[nowcast]"`. Importing this module does
not need it; the functions import pysteps when called, without the line it prints on import.

Example:
  >>> import numpy as np
  >>> from convlstm_jax.nowcasting import Verification, persistence, skill_table
  >>> rain = np.zeros((2, 6, 16, 16), np.float32)
  >>> rain[:, :, 4:8, 2:6] = 3.0  # a 3 mm/h cell, staying where it is
  >>> forecast = persistence(rain[:, :4], 2)
  >>> verification = Verification(2)
  >>> verification.accumulate(forecast, rain[:, 4:])
  >>> result = verification.result()
  >>> result["CSI"]["0.5"], result["MSE"]
  ([1.0, 1.0], [0.0, 0.0])
  >>> print(skill_table({"persistence": result}).splitlines()[2])
  6 min   persistence      1.000   1.000   0.000   1.000      0.000   1.000
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .baselines import DB_THRESHOLD, DB_ZERO_VALUE, _check_int, _check_motion, _estimate_motion, _pysteps
from .readers import RADAR_INTERVAL_MINUTES

THRESHOLDS = (0.5, 2.0, 5.0, 10.0, 30.0)
"""Default rain-rate thresholds (mm/h) of the categorical scores and FSS: Shi et al. 2015's 0.5 mm/h
(rain or not), then moderate to heavy rain, and HKO-7's 30 mm/h (Shi et al. 2017's highest)."""

FSS_SCALES = (1, 5, 15)
"""Default FSS window sides in pixels: 1 (pixel by pixel), 5 (a convective cell of a 64 x 64 frame)
and 15 (about a quarter of such a frame); odd, so that the windows are centred."""

SCORES = ("CSI", "POD", "FAR", "HSS", "FSS", "MSE", "corr")
"""The scores in a `Verification.result()`, by key."""

_CATEGORICAL = ("CSI", "POD", "FAR", "HSS")
_COUNTS = ("hits", "misses", "false_alarms", "correct_negatives")

REGIONS = ("frame", "reachable")
"""The regions a nowcast is scored on: "frame", every observed pixel; "reachable", the observed pixels
whose backward trajectory under the motion of the input frames stays inside the domain (`reachable`)."""


def threshold_key(threshold: float) -> str:
    """The key of a threshold in a `Verification.result()`: its shortest decimal form, e.g. "0.5", "2".

    Examples:
      >>> from convlstm_jax.nowcasting import threshold_key
      >>> threshold_key(0.5), threshold_key(2.0), threshold_key(10)
      ('0.5', '2', '10')
    """
    return format(float(threshold), "g")


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}.")
    return float(value)


def _describe(x: Any) -> str:
    dtype = getattr(x, "dtype", None)
    return f"an array of {dtype}" if dtype is not None else type(x).__name__


def _check_scored(name: str, x: Any) -> np.ndarray:
    """`x` as float64 rain rates (N, L, H, W) or (L, H, W), >= 0 or NaN (missing, or not forecast)."""
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
        raise ValueError(f"{name} must be (N, L, H, W) or one sequence without N, got shape {tuple(x.shape)}.")
    x = np.asarray(x, np.float64)
    if np.isinf(x).any():
        raise ValueError(f"{name} must be finite or NaN (missing): it holds {int(np.isinf(x).sum())} infinite values.")
    if (x < 0).any():
        raise ValueError(f"{name} must be rain rates >= 0 mm/h, got a minimum of {np.nanmin(x):g}.")
    return x


def _floats(values: Any) -> list[float | None]:
    """A list of Python floats, None where a value is NaN (undefined), as JSON takes them."""
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, np.float64).ravel()]


class Verification:
    """Verification scores of a forecast per lead time, accumulated over a validation set.

    Each `accumulate(forecast, truth)` adds a batch; `result()` computes the scores over all the
    pixels of all the sequences seen so far, lead time by lead time (pooled, not averaged over
    batches or sequences: one call on the whole set gives the same numbers). All of it is pysteps':

    - Categorical scores at each threshold t (`detcatscores.det_cat_fct_init/accum/compute`): a pixel
      is an event where its rate exceeds t (> t). With H hits (forecast and observed), M misses
      (observed only), F false alarms (forecast only) and R correct negatives: CSI = H / (H + M + F),
      the critical success index (the fraction of forecast or observed events that were both);
      POD = H / (H + M), the probability of detection; FAR = F / (H + F), the false alarm ratio;
      HSS = 2 (H R - F M) / ((H + M)(M + R) + (H + F)(F + R)), the Heidke skill score (1 perfect,
      0 no better than chance). Higher is better except for FAR.
    - The fractions skill score at each threshold and scale s (`spatialscores.fss_init/accum/compute`):
      the fractions of pixels >= t in s x s windows (zeros beyond the frame's edge) are compared:
      FSS = 1 - sum (f_fcst - f_obs)^2 / sum (f_fcst^2 + f_obs^2), from 0 (no overlap) to 1 (the same
      fractions); a forecast slightly misplaced scores low at s = 1 and well at larger s.
    - Continuous scores (`detcontscores.det_cont_fct_init/accum/compute`): MSE, the mean squared
      error of the rain rate in (mm/h)^2 (Shi et al.'s rainfall MSE), and corr, Pearson's correlation
      of forecast and observed rates over the pixels (Shi et al. used an uncentred correlation).

    Undefined scores are None in the result (pysteps computes NaN): the categorical ones where their
    denominator is 0, e.g. CSI, POD, FAR and HSS at a threshold that neither the forecast nor the
    truth exceeds anywhere (no event), POD where it was never observed, FAR where it was never
    forecast, HSS where every pixel is an event or none; FSS where neither exceeds the threshold;
    corr where the forecast or the truth is constant (all dry, say). A perfect forecast scores
    CSI = POD = HSS = FSS = 1, FAR = 0, MSE = 0 and corr = 1 where these are defined.

    Args:
      lead_times: L, the frames of each forecast.
      thresholds: rain rates in mm/h of the categorical scores and FSS (default `THRESHOLDS`).
      fss_scales: window sides in pixels of FSS (default `FSS_SCALES`); () for no FSS.

    Raises:
      TypeError, ValueError: if an argument is not of its type or range, or thresholds repeat.
      ImportError: if pysteps is not installed.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import Verification
      >>> truth = np.zeros((1, 1, 4, 4), np.float32)
      >>> truth[0, 0, 0, :2] = 1.0  # two wet pixels; the forecast gets one, and one false alarm
      >>> forecast = np.zeros_like(truth)
      >>> forecast[0, 0, 0, 1:3] = 1.0
      >>> verification = Verification(1, thresholds=(0.5,), fss_scales=(1,))
      >>> verification.accumulate(forecast, truth)
      >>> result = verification.result()
      >>> result["CSI"]["0.5"], result["POD"]["0.5"], result["FAR"]["0.5"], result["FSS"]["0.5"]["1"]
      ([0.3333333333333333], [0.5], [0.5], [0.5])
    """

    def __init__(
        self,
        lead_times: int,
        *,
        thresholds: Sequence[float] = THRESHOLDS,
        fss_scales: Sequence[int] = FSS_SCALES,
    ) -> None:
        self.lead_times = _check_int("lead_times", lead_times, 1)
        for name, values in (("thresholds", thresholds), ("fss_scales", fss_scales)):
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise TypeError(f"{name} must be a sequence, got {type(values).__name__}.")
        if not thresholds:
            raise ValueError("thresholds must hold at least one rain rate in mm/h, got none.")
        self.thresholds = tuple(_check_positive("thresholds[]", t) for t in thresholds)
        if len({threshold_key(t) for t in self.thresholds}) != len(self.thresholds):
            raise ValueError(f"thresholds must differ from each other, got {tuple(thresholds)!r}.")
        self.fss_scales = tuple(_check_int("fss_scales[]", s, 1) for s in fss_scales)
        if len(set(self.fss_scales)) != len(self.fss_scales):
            raise ValueError(f"fss_scales must differ from each other, got {tuple(fss_scales)!r}.")
        verification = _pysteps().verification
        self._categorical = verification.detcatscores
        self._spatial = verification.spatialscores
        self._continuous = verification.detcontscores
        # Contingency counts per sequence and lead time, (N, L) a batch, at each threshold; the squared
        # errors and scored pixels likewise: pooled for the scores, resampled by `bootstrap_differences`.
        self._counts: dict[float, dict[str, list[np.ndarray]]] = {t: {c: [] for c in _COUNTS} for t in self.thresholds}
        self._squared_errors: list[np.ndarray] = []
        self._pixels: list[np.ndarray] = []
        self._fss = {
            (t, s): [self._spatial.fss_init(t, s) for _ in range(self.lead_times)]
            for t in self.thresholds
            for s in self.fss_scales
        }
        self._errors = [self._continuous.det_cont_fct_init() for _ in range(self.lead_times)]
        self.num_sequences = 0

    def accumulate(self, forecast: np.ndarray, truth: np.ndarray, *, mask: np.ndarray | None = None) -> None:
        """Adds a batch of forecasts and the rain that fell.

        Only observed pixels are scored: where the truth is NaN (missing) the pixel counts in no
        score. A NaN forecast where the truth is observed (a method blind there, e.g. extrapolation
        beyond the domain's edge) counts as no rain, 0 mm/h, so that a method gains nothing from
        being blind. `mask` restricts the scores to a region, e.g. `reachable(...)`'s pixels.

        Args:
          forecast: forecast rain rates in mm/h, (N, L, H, W) or (L, H, W), >= 0 or NaN.
          truth: observed rain rates in mm/h, of the same shape, >= 0 or NaN (missing).
          mask: the pixels to score, a boolean array of the same shape (default: all).

        Raises:
          TypeError: if an input is not a floating-point array, or `mask` not a boolean one.
          ValueError: if the shapes differ, are not (N, L, H, W) with this L, or a rate is infinite
            or negative.
        """
        forecast = _check_scored("forecast", forecast)
        truth = _check_scored("truth", truth)
        if forecast.shape != truth.shape:
            raise ValueError(f"forecast and truth must have one shape, got {forecast.shape} and {truth.shape}.")
        scored = np.isfinite(truth)
        if mask is not None:
            if getattr(mask, "dtype", None) is None or np.dtype(mask.dtype) != np.bool_:
                raise TypeError(f"mask must be a boolean array of the pixels to score, got {_describe(mask)}.")
            if tuple(mask.shape) != truth.shape:
                raise ValueError(f"mask must have the shape of truth, {truth.shape}, got {tuple(mask.shape)}.")
            scored &= np.asarray(mask)
        if forecast.ndim == 3:
            forecast, truth, scored = forecast[np.newaxis], truth[np.newaxis], scored[np.newaxis]
        if forecast.shape[1] != self.lead_times:
            raise ValueError(
                f"forecast and truth must have lead_times={self.lead_times} frames (axis 1 of (N, L, H, W)), "
                f"got shape {forecast.shape}."
            )
        # The pairs scored: the observed pixels of the region, a blind forecast there dry; NaN elsewhere,
        # which pysteps' continuous scores leave out and its FSS takes as no event in both fields alike.
        forecast = np.where(scored, np.nan_to_num(forecast, nan=0.0), np.nan)
        truth = np.where(scored, truth, np.nan)
        for t, counts in self._counts.items():
            predicted, observed = forecast > t, truth > t  # NaN exceeds nothing; `scored` drops it
            for name, cells in zip(
                _COUNTS,
                (predicted & observed, ~predicted & observed, predicted & ~observed, ~predicted & ~observed),
                strict=True,
            ):
                counts[name].append(np.sum(cells & scored, axis=(2, 3), dtype=np.int64))
        self._squared_errors.append(np.nansum((forecast - truth) ** 2, axis=(2, 3)))
        self._pixels.append(np.sum(scored, axis=(2, 3), dtype=np.int64))
        for objects in self._fss.values():
            for lead, fss in enumerate(objects):
                for n in range(forecast.shape[0]):
                    self._spatial.fss_accum(fss, forecast[n, lead], truth[n, lead])
        for lead, errors in enumerate(self._errors):
            if scored[:, lead].any():
                self._continuous.det_cont_fct_accum(errors, forecast[:, lead], truth[:, lead])
        self.num_sequences += forecast.shape[0]

    def result(self) -> dict[str, Any]:
        """The scores so far, as a JSON-serialisable dict of lists of floats (None where undefined).

        Returns:
          {"lead_times": [1, ..., L] (frames ahead), "thresholds": [mm/h, ...], "fss_scales":
          [pixels, ...], "num_sequences": N, "observed_pixels": [pixels scored per lead time],
          "CSI"/"POD"/"FAR"/"HSS": {threshold_key(t): [one per lead time]}, "FSS":
          {threshold_key(t): {str(s): [one per lead time]}}, "MSE": [...], "corr": [...],
          "contingency": {threshold_key(t): {"hits"/"misses"/"false_alarms"/"correct_negatives":
          [int per lead time]}}, "per_sequence": {"contingency": {threshold_key(t): {"hits"/...:
          [[int per lead time] per sequence]}}, "squared_error": [[(mm/h)^2 summed per lead time]
          per sequence], "pixels": [[pixels scored per lead time] per sequence]}}. The per-sequence
          sums are what `bootstrap_differences` resamples.

        Raises:
          ValueError: if nothing was accumulated yet.
        """
        if self.num_sequences == 0:
            raise ValueError("Nothing to score yet: call accumulate(forecast, truth) first.")
        result: dict[str, Any] = {
            "lead_times": list(range(1, self.lead_times + 1)),
            "thresholds": list(self.thresholds),
            "fss_scales": list(self.fss_scales),
            "num_sequences": self.num_sequences,
        }
        pixels = np.concatenate(self._pixels)
        result["observed_pixels"] = [int(v) for v in pixels.sum(axis=0)]
        per_sequence: dict[str, Any] = {"contingency": {}}
        with np.errstate(divide="ignore", invalid="ignore"):
            for score in _CATEGORICAL:
                result[score] = {}
            result["contingency"] = {}
            for t, counts in self._counts.items():
                counts = {c: np.concatenate(v) for c, v in counts.items()}
                table = {"thr": t, "axis": None, **{c: v.sum(axis=0) for c, v in counts.items()}}
                scores = self._categorical.det_cat_fct_compute(table, list(_CATEGORICAL))
                for score in _CATEGORICAL:
                    result[score][threshold_key(t)] = _floats(scores[score])
                result["contingency"][threshold_key(t)] = {c: [int(v) for v in table[c]] for c in _COUNTS}
                per_sequence["contingency"][threshold_key(t)] = {c: v.tolist() for c, v in counts.items()}
            result["FSS"] = {threshold_key(t): {} for t in self.thresholds}
            for (t, s), objects in self._fss.items():
                result["FSS"][threshold_key(t)][str(s)] = _floats([self._spatial.fss_compute(f) for f in objects])
            continuous = [self._continuous.det_cont_fct_compute(e, ["MSE", "corr_p"]) for e in self._errors]
            unscored = pixels.sum(axis=0) == 0  # no pair at this lead time: the scores are undefined
            result["MSE"] = _floats(np.where(unscored, np.nan, [c["MSE"] for c in continuous]))
            result["corr"] = _floats(np.where(unscored, np.nan, [c["corr_p"] for c in continuous]))
        per_sequence["squared_error"] = np.concatenate(self._squared_errors).tolist()
        per_sequence["pixels"] = pixels.tolist()
        result["per_sequence"] = per_sequence
        return result


def reachable(
    observed: np.ndarray,
    lead_times: int,
    *,
    motion: str = "lucaskanade",
    motion_frames: int = 3,
    motion_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The pixels extrapolation can forecast: where pysteps' semi-Lagrangian scheme returns a value.

    Each sequence's motion is estimated as `optical_flow` estimates it (dBR of the last
    `motion_frames` frames, pysteps' `motion.get_method(motion)`); a field that is 1 where the last
    frame is observed and NaN where it is missing is moved along it by
    `pysteps.extrapolation.semilagrangian.extrapolate` with `outval=NaN`, and the pixels where a
    value comes back are reachable: their backward trajectory stays inside the domain and starts at
    an observed pixel. Every method that extrapolates the last frame along this motion (optical
    flow, and S-PROG, ANVIL and STEPS, which advect their cascades along it) forecasts these pixels;
    beyond them (the upwind band, widening lead time by lead time) they forecast nothing, so
    scoring there only counts how the band is filled.

    Args:
      observed: rain rates in mm/h, (N, T_in, H, W) or (T_in, H, W), >= 0 or NaN (missing), of a
        floating-point dtype; T_in >= `motion_frames`.
      lead_times: L, the frames of the forecasts.
      motion, motion_frames, motion_kwargs: the motion, as `optical_flow` takes it.

    Returns:
      Booleans (N, L, H, W), or (L, H, W) for one sequence: True where extrapolation reaches.

    Raises:
      TypeError, ValueError: as `optical_flow`.
      ImportError: if pysteps, or OpenCV for Lucas-Kanade, is not installed.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting.verification import reachable
      >>> rows, columns = np.mgrid[:32, :32]
      >>> cell = lambda t: 10 * np.exp(-((rows - 16) ** 2 + (columns - 8 - 2 * t) ** 2) / 18)
      >>> mask = reachable(np.stack([cell(t) for t in range(4)]), 3)  # moving 2 pixels a frame right
      >>> [int((~frame[16]).sum()) for frame in mask]  # the band on the left, widening
      [3, 5, 7]
    """
    x = _check_scored("observed", observed)
    lead_times = _check_int("lead_times", lead_times, 1)
    motion, motion_frames, motion_kwargs = _check_motion(motion, motion_frames, motion_kwargs)
    if x.shape[-3] < motion_frames:
        raise ValueError(
            f"reachable estimates the motion from the last motion_frames={motion_frames} frames; observed has "
            f"{x.shape[-3]} (shape {x.shape})."
        )
    single = x.ndim == 3
    x = x[np.newaxis] if single else x
    pysteps = _pysteps()
    if motion == "lucaskanade":
        from .baselines import _check_opencv

        _check_opencv()
    else:
        motion_kwargs.setdefault("verbose", False)
    estimate = pysteps.motion.get_method(motion)
    extrapolate = pysteps.extrapolation.semilagrangian.extrapolate
    db_transform = pysteps.utils.transformation.dB_transform
    mask = np.empty((x.shape[0], lead_times, *x.shape[2:]), bool)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Singular matrix during outlier detection")
        for n, sequence in enumerate(x):
            db = db_transform(sequence[-motion_frames:], threshold=DB_THRESHOLD, zerovalue=DB_ZERO_VALUE)[0]
            velocity = _estimate_motion(estimate, db, motion_kwargs)
            ones = np.where(np.isfinite(sequence[-1]), 1.0, np.nan)
            moved = extrapolate(ones, velocity, lead_times, outval=np.nan, allow_nonfinite_values=True)
            mask[n] = np.isfinite(moved)
    return mask[0] if single else mask


def _per_sequence(result: Mapping[str, Any], name: str) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    if not isinstance(result, Mapping) or "per_sequence" not in result or "lead_times" not in result:
        raise ValueError(
            f"{name!r} has no per-sequence counts: it is not a Verification.result() (or one read back from JSON)."
        )
    per_sequence = result["per_sequence"]
    counts = {
        key: {c: np.asarray(table[c], np.float64) for c in _COUNTS}
        for key, table in per_sequence["contingency"].items()
    }
    errors = np.stack([np.asarray(per_sequence[k], np.float64) for k in ("squared_error", "pixels")])
    return counts, errors  # (2, N, L): squared errors summed, and pixels scored


def _headline(counts: Mapping[str, Mapping[str, np.ndarray]], errors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """CSI at each threshold and MSE, means over the lead times, of sequences drawn `weights` times each:
    (B, thresholds + 1) for weights (B, N), the pooled counts recomputed per draw."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a mean of no defined value is NaN
        scores = []
        for table in counts.values():
            hits, misses, false_alarms = (weights @ table[c] for c in _COUNTS[:3])
            scores.append(np.nanmean(hits / (hits + misses + false_alarms), axis=-1))
        scores.append(np.nanmean((weights @ errors[0]) / (weights @ errors[1]), axis=-1))
    return np.stack(scores, axis=-1)


def bootstrap_differences(
    results: Mapping[str, Mapping[str, Any]],
    *,
    reference: str = "model",
    lead_times: Sequence[int] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """The reference-minus-method difference of each headline score, with its paired bootstrap interval.

    The headline scores are CSI at each threshold and the rain rate's MSE, each the mean over
    `lead_times` of its per-lead-time score from pooled counts, as `Verification.result()` computes
    them. The sequences are resampled with replacement, the same draw for the reference and the
    method (they forecast the same sequences, so the draw keeps their pairing); each resample
    pools its sequences' contingency counts and squared errors again and recomputes the scores. Draw
    b takes `numpy.random.default_rng(seed).integers(0, N, N)`, the b-th call; the interval is the
    central `confidence` percentile range of the B differences (undefined resamples left out).

    Args:
      results: {method name: `Verification.result()` over the same sequences}, `reference` among them.
      reference: the method whose differences are taken, e.g. "model".
      lead_times: the lead times (frames ahead) to average over (default: those every method has).
      resamples: B, how many resamples.
      seed: the seed of the resampling.
      confidence: the interval's coverage, in (0, 1).

    Returns:
      {method: {"CSI": {threshold_key(t): {"difference", "low", "high"}}, "MSE": {"difference",
      "low", "high"}}} for every method but the reference, None where undefined; a positive CSI
      difference and a negative MSE difference favour the reference.

    Raises:
      TypeError, ValueError: if an argument is not of its type or range, the reference is missing,
        a result has no per-sequence counts, or the results differ in sequences or thresholds.
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must map method names to Verification.result() dicts, got {type(results).__name__}.")
    if reference not in results:
        raise ValueError(f"results has no {reference!r} to take the differences from; it has {list(results)}.")
    resamples = _check_int("resamples", resamples, 1)
    seed = _check_int("seed", seed, 0)
    confidence = _check_positive("confidence", confidence)
    if confidence >= 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    common = (
        _common_lead_times(results) if lead_times is None else [_check_int("lead_times[]", t, 1) for t in lead_times]
    )
    base = results[reference]
    keys = list(base["per_sequence"]["contingency"]) if "per_sequence" in base else []
    sequences = base.get("num_sequences")
    selected = {}
    for name, result in results.items():
        counts, errors = _per_sequence(result, name)
        if result.get("num_sequences") != sequences:
            raise ValueError(
                f"results must score the same sequences to be paired: {name!r} has {result.get('num_sequences')}, "
                f"{reference!r} {sequences}."
            )
        if list(counts) != keys:
            raise ValueError(f"results must share their thresholds: {name!r} has {list(counts)}, {reference!r} {keys}.")
        missing = [t for t in common if t not in result["lead_times"]]
        if missing:
            raise ValueError(f"{name!r} has no lead times {missing}; it has {list(result['lead_times'])}.")
        index = [list(result["lead_times"]).index(t) for t in common]
        selected[name] = (
            {k: {c: v[:, index] for c, v in table.items()} for k, table in counts.items()},
            errors[:, :, index],
        )
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, sequences))
    for b in range(resamples):
        np.add.at(weights[b], rng.integers(0, sequences, sequences), 1.0)
    everything = np.ones((1, sequences))
    reference_point, reference_draws = (_headline(*selected[reference], w) for w in (everything, weights))
    low, high = 50 * (1 - confidence), 50 * (1 + confidence)
    out: dict[str, dict[str, Any]] = {}
    for name in results:
        if name == reference:
            continue
        point = reference_point[0] - _headline(*selected[name], everything)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all resamples undefined: NaN
            bounds = np.nanpercentile(reference_draws - _headline(*selected[name], weights), [low, high], axis=0)
        entries = [
            dict(zip(("difference", "low", "high"), _floats([point[i], bounds[0, i], bounds[1, i]]), strict=True))
            for i in range(len(point))
        ]
        out[name] = {"CSI": dict(zip(keys, entries[:-1], strict=True)), "MSE": entries[-1]}
    return out


def _common_lead_times(results: Mapping[str, Mapping[str, Any]]) -> list[int]:
    """The lead times every result has, in the first's order."""
    lead_times = None
    for result in results.values():
        have = list(result["lead_times"]) if isinstance(result, Mapping) and "lead_times" in result else []
        lead_times = have if lead_times is None else [t for t in lead_times if t in have]
    return lead_times or []


def verify(
    forecast: np.ndarray,
    truth: np.ndarray,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    fss_scales: Sequence[int] = FSS_SCALES,
) -> dict[str, Any]:
    """The `Verification.result()` of one batch: the scores of `forecast` (N, L, H, W) against `truth`.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import verify
      >>> truth = np.full((1, 2, 8, 8), 1.0, np.float32)
      >>> verify(truth * 2, truth, thresholds=(0.5,), fss_scales=())["MSE"]
      [1.0, 1.0]
    """
    lead_times = _check_scored("forecast", forecast).shape[-3]
    verification = Verification(lead_times, thresholds=thresholds, fss_scales=fss_scales)
    verification.accumulate(forecast, truth)
    return verification.result()


def score_by_lead_time(
    result: Mapping[str, Any], score: str, *, threshold: float | None = None, scale: int | None = None
) -> np.ndarray:
    """One score of a `Verification.result()` per lead time, float64 with NaN where undefined.

    Args:
      result: a `Verification.result()` (or the same dict read back from JSON).
      score: one of `SCORES`.
      threshold: the rain rate in mm/h, for CSI, POD, FAR, HSS and FSS; one of the result's thresholds.
      scale: the window side in pixels, for FSS; one of the result's scales (default: its first).

    Raises:
      TypeError: if `result` is not a mapping.
      ValueError: if the score, threshold or scale is not in `result`, or one is given where the
        score has none.

    Example:
      >>> from convlstm_jax.nowcasting import score_by_lead_time
      >>> score_by_lead_time({"lead_times": [1, 2], "MSE": [0.5, None]}, "MSE")
      array([0.5, nan])
    """
    if not isinstance(result, Mapping):
        raise TypeError(f"result must be a Verification.result() dict, got {type(result).__name__}.")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
    if score not in result or "lead_times" not in result:
        raise ValueError(f"result has no {score!r} per lead time: it is not a Verification.result() with it.")
    values = result[score]
    if score in ("MSE", "corr"):
        if threshold is not None or scale is not None:
            raise ValueError(f"{score} is over all pixels: it takes no threshold or scale.")
    else:
        if threshold is None:
            raise ValueError(f"{score} is per threshold: pass one of {result.get('thresholds')} mm/h.")
        key = threshold_key(_check_positive("threshold", threshold))
        if key not in values:
            raise ValueError(f"result has no {score} at {key} mm/h; its thresholds are {list(values)}.")
        values = values[key]
        if score == "FSS":
            scale = next(iter(values), None) if scale is None else str(_check_int("scale", scale, 1))
            if scale not in values:
                raise ValueError(f"result has no FSS at scale {scale}; its scales are {list(values)}.")
            values = values[scale]
        elif scale is not None:
            raise ValueError(f"{score} takes no scale (FSS does).")
    if len(values) != len(result["lead_times"]):
        raise ValueError(f"result's {score} has {len(values)} values for {len(result['lead_times'])} lead times.")
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _format(value: float, width: int, decimals: int) -> str:
    return f"{'n/a':>{width}}" if not math.isfinite(value) else f"{value:>{width}.{decimals}f}"


def _is_skill(results: Mapping[str, Any]) -> bool:
    """Whether `results` is a run's skill (`evaluation.nowcast_skill`): scores per region, differences."""
    regions = results.get("regions")
    return isinstance(regions, Mapping) and "lead_times" not in regions


def skill_table(
    results: Mapping[str, Any],
    *,
    threshold: float = 0.5,
    interval_minutes: float = RADAR_INTERVAL_MINUTES,
) -> str:
    """A fixed-width table of the skill of several forecasts per lead time, and its mean.

    One line per lead time (in minutes) and method, in the order of `results`: CSI, POD, FAR and HSS
    at `threshold`, then the rain rate's MSE in (mm/h)^2 and Pearson correlation; n/a where a score
    is undefined or a method has no forecast that far. The last lines give each method's mean over
    the lead times every method has (the plain mean of the per-lead-time scores where defined), so
    that a method forecasting fewer frames neither shortens nor biases the others' means.

    Given a run's skill (`{"regions": {region: {method: result}}, "differences": {region: ...}}`,
    as `skill.json` holds it), one such table per region ("frame", then "reachable"), then the
    model-minus-method differences of CSI at `threshold` and of the MSE, means over the common lead
    times, with their paired bootstrap intervals (`bootstrap_differences`).

    Args:
      results: {method name: `Verification.result()`}, e.g. "model", "persistence", "optical_flow",
        each with `threshold`; or a run's skill dict.
      threshold: the rain rate in mm/h of the categorical scores.
      interval_minutes: minutes between frames (`convlstm_jax.nowcasting.RADAR_INTERVAL_MINUTES`).

    Returns:
      The table, lines joined by newlines, without a final newline.

    Raises:
      TypeError: if `results` is not a mapping of names to result dicts.
      ValueError: if `results` is empty, a result lacks `threshold` or a score, or the methods share
        no lead time.

    Example:
      >>> from convlstm_jax.nowcasting import skill_table
      >>> result = {"lead_times": [1], "CSI": {"0.5": [0.5]}, "POD": {"0.5": [1.0]}, "FAR": {"0.5": [0.5]},
      ...           "HSS": {"0.5": [0.25]}, "MSE": [2.0], "corr": [None]}
      >>> print(skill_table({"model": result}))
      CSI, POD, FAR, HSS at 0.5 mm/h; MSE in (mm/h)^2, Pearson corr; mean over the 1 lead times every method has
      lead    method             CSI     POD     FAR     HSS        MSE    corr
      6 min   model            0.500   1.000   0.500   0.250      2.000     n/a
      mean    model            0.500   1.000   0.500   0.250      2.000     n/a
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must map method names to Verification.result() dicts, got {type(results).__name__}.")
    if not results:
        raise ValueError("results must hold at least one method's Verification.result(), got none.")
    interval_minutes = _check_positive("interval_minutes", interval_minutes)
    threshold = _check_positive("threshold", threshold)
    if _is_skill(results):
        return _skill_tables(results, threshold, interval_minutes)
    columns: dict[str, list[np.ndarray]] = {}
    leads: dict[str, list[int]] = {}
    for name, result in results.items():
        if not isinstance(name, str):
            raise TypeError(f"results must be keyed by method names (str), got {name!r}.")
        series = [score_by_lead_time(result, s, threshold=threshold) for s in _CATEGORICAL]
        series += [score_by_lead_time(result, s) for s in ("MSE", "corr")]
        columns[name], leads[name] = series, list(result["lead_times"])
    common = _common_lead_times(results)
    if not common:
        raise ValueError(f"results must share a lead time to be compared, got {leads}.")
    lead_times = sorted({t for have in leads.values() for t in have})
    width = max(12, *(len(name) for name in results)) + 2
    header = f"{'lead':<8}{'method':<{width}}" + "".join(f"{s:>8}" for s in _CATEGORICAL) + f"{'MSE':>11}{'corr':>8}"

    def row(lead: str, name: str, values: list[float]) -> str:
        cells = [_format(v, 8, 3) for v in values[:4]] + [_format(values[4], 11, 3), _format(values[5], 8, 3)]
        return f"{lead:<8}{name:<{width}}" + "".join(cells)

    lines = [
        f"CSI, POD, FAR, HSS at {threshold_key(threshold)} mm/h; MSE in (mm/h)^2, Pearson corr; "
        f"mean over the {len(common)} lead times every method has",
        header,
    ]
    for lead in lead_times:
        label = f"{format(lead * interval_minutes, 'g')} min"
        for j, (name, series) in enumerate(columns.items()):
            i = leads[name].index(lead) if lead in leads[name] else None
            lines.append(row(label if j == 0 else "", name, [math.nan if i is None else s[i] for s in series]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no defined value is NaN: n/a
        for j, (name, series) in enumerate(columns.items()):
            index = [leads[name].index(t) for t in common]
            lines.append(row("mean" if j == 0 else "", name, [float(np.nanmean(s[index])) for s in series]))
    return "\n".join(lines)


_REGION_LINES = {
    "frame": "frame: every observed pixel (a forecast's NaN, e.g. beyond extrapolation's reach, counted dry)",
    "reachable": "reachable: the observed pixels extrapolation reaches from inside the domain",
}


def _skill_tables(skill: Mapping[str, Any], threshold: float, interval_minutes: float) -> str:
    regions = skill["regions"]
    lines = []
    for region, results in regions.items():
        lines += [
            _REGION_LINES.get(region, f"{region}:"),
            skill_table(results, threshold=threshold, interval_minutes=interval_minutes),
            "",
        ]
    differences = skill.get("differences") or {}
    if differences:
        key = threshold_key(threshold)
        bootstrap = skill.get("bootstrap") or {}
        confidence = format(100 * bootstrap.get("confidence", 0.95), "g")
        resamples = bootstrap.get("resamples")
        reference = bootstrap.get("reference", "model")
        common = _common_lead_times(next(iter(regions.values())))
        lines.append(
            f"{reference} minus each method, means over the {len(common)} lead times every method has, with paired "
            f"bootstrap {confidence}% intervals" + (f" ({resamples} resamples of the sequences)" if resamples else "")
        )
        names = [name for region in differences.values() for name in region]
        width = max(12, *(len(name) for name in names)) + 2 if names else 14
        lines.append(f"{'region':<11}{'method':<{width}}{f'CSI at {key} mm/h':>27}{'MSE':>27}")

        def cell(entry: Mapping[str, Any] | None) -> str:
            if not entry or entry.get("difference") is None:
                return f"{'n/a':>27}"
            low, high = (math.nan if entry.get(b) is None else entry[b] for b in ("low", "high"))
            text = f"{entry['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"
            return f"{text:>27}"

        for region, entries in differences.items():
            for j, (name, entry) in enumerate(entries.items()):
                lines.append(
                    f"{region if j == 0 else '':<11}{name:<{width}}{cell(entry['CSI'].get(key))}{cell(entry['MSE'])}"
                )
    else:
        lines.pop()
    return "\n".join(lines)


__all__ = [
    "FSS_SCALES",
    "REGIONS",
    "SCORES",
    "THRESHOLDS",
    "Verification",
    "bootstrap_differences",
    "reachable",
    "score_by_lead_time",
    "skill_table",
    "threshold_key",
    "verify",
]
