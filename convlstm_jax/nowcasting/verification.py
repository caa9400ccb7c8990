"""Verification of radar nowcasts, with pysteps' scores per lead time, and a skill table.

Shi et al. 2015 scored their nowcasts on CSI, FAR, POD, the rainfall MSE and the correlation.
The scores are pysteps', the community library of radar nowcasting, rather than rewritten:

- `Verification`: categorical scores (`pysteps.verification.detcatscores`: CSI, POD, FAR, HSS)
  at rain-rate thresholds, the fractions skill score (`pysteps.verification.spatialscores`: FSS)
  at thresholds and scales, and continuous scores (`pysteps.verification.detcontscores`: MSE of
  the rain rate, Pearson correlation), each per lead time, accumulated batch by batch over a
  validation set; `result()` is a plain JSON-serialisable dict. `verify` scores one forecast.
- `score_by_lead_time`: one score of such a dict, lead time by lead time.
- `skill_table`: that dict for several methods as a fixed-width table per lead time in minutes.

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

from .baselines import _check_int, _check_rain, _pysteps
from .readers import RADAR_INTERVAL_MINUTES

THRESHOLDS = (0.5, 2.0, 5.0, 10.0)
"""Default rain-rate thresholds (mm/h) of the categorical scores and FSS: Shi et al. 2015's 0.5 mm/h
(rain or not), then moderate to heavy rain."""

FSS_SCALES = (1, 5, 15)
"""Default FSS window sides in pixels: 1 (pixel by pixel), 5 (a convective cell of a 64 x 64 frame)
and 15 (about a quarter of such a frame); odd, so that the windows are centred."""

SCORES = ("CSI", "POD", "FAR", "HSS", "FSS", "MSE", "corr")
"""The scores in a `Verification.result()`, by key."""

_CATEGORICAL = ("CSI", "POD", "FAR", "HSS")
_COUNTS = ("hits", "misses", "false_alarms", "correct_negatives")


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
        # One contingency table per threshold, with a count per lead time (axis 1 of (N, L, H, W) kept).
        self._tables = {t: self._categorical.det_cat_fct_init(t, axis=(0, 2, 3)) for t in self.thresholds}
        self._fss = {
            (t, s): [self._spatial.fss_init(t, s) for _ in range(self.lead_times)]
            for t in self.thresholds
            for s in self.fss_scales
        }
        self._errors = [self._continuous.det_cont_fct_init() for _ in range(self.lead_times)]
        self.num_sequences = 0

    def accumulate(self, forecast: np.ndarray, truth: np.ndarray) -> None:
        """Adds a batch of forecasts and the rain that fell.

        Args:
          forecast: forecast rain rates in mm/h, (N, L, H, W) or (L, H, W), finite and >= 0.
          truth: observed rain rates in mm/h, of the same shape.

        Raises:
          TypeError: if an input is not a floating-point array.
          ValueError: if the shapes differ, are not (N, L, H, W) with this L, or a rate is NaN,
            infinite or negative.
        """
        forecast = _check_rain("forecast", forecast, "(N, L, H, W)")
        truth = _check_rain("truth", truth, "(N, L, H, W)")
        if forecast.shape != truth.shape:
            raise ValueError(f"forecast and truth must have one shape, got {forecast.shape} and {truth.shape}.")
        if forecast.ndim == 3:
            forecast, truth = forecast[np.newaxis], truth[np.newaxis]
        if forecast.shape[1] != self.lead_times:
            raise ValueError(
                f"forecast and truth must have lead_times={self.lead_times} frames (axis 1 of (N, L, H, W)), "
                f"got shape {forecast.shape}."
            )
        for table in self._tables.values():
            self._categorical.det_cat_fct_accum(table, forecast, truth)
        for objects in self._fss.values():
            for lead, fss in enumerate(objects):
                for n in range(forecast.shape[0]):
                    self._spatial.fss_accum(fss, forecast[n, lead], truth[n, lead])
        for lead, errors in enumerate(self._errors):
            self._continuous.det_cont_fct_accum(errors, forecast[:, lead], truth[:, lead])
        self.num_sequences += forecast.shape[0]

    def result(self) -> dict[str, Any]:
        """The scores so far, as a JSON-serialisable dict of lists of floats (None where undefined).

        Returns:
          {"lead_times": [1, ..., L] (frames ahead), "thresholds": [mm/h, ...], "fss_scales":
          [pixels, ...], "num_sequences": N, "CSI"/"POD"/"FAR"/"HSS": {threshold_key(t): [one per lead
          time]}, "FSS": {threshold_key(t): {str(s): [one per lead time]}}, "MSE": [...], "corr":
          [...], "contingency": {threshold_key(t): {"hits"/"misses"/"false_alarms"/
          "correct_negatives": [int per lead time]}}}.

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
        with np.errstate(divide="ignore", invalid="ignore"):
            for score in _CATEGORICAL:
                result[score] = {}
            result["contingency"] = {}
            for t, table in self._tables.items():
                scores = self._categorical.det_cat_fct_compute(table, list(_CATEGORICAL))
                for score in _CATEGORICAL:
                    result[score][threshold_key(t)] = _floats(scores[score])
                result["contingency"][threshold_key(t)] = {c: [int(v) for v in table[c]] for c in _COUNTS}
            result["FSS"] = {threshold_key(t): {} for t in self.thresholds}
            for (t, s), objects in self._fss.items():
                result["FSS"][threshold_key(t)][str(s)] = _floats([self._spatial.fss_compute(f) for f in objects])
            continuous = [self._continuous.det_cont_fct_compute(e, ["MSE", "corr_p"]) for e in self._errors]
            result["MSE"] = _floats([c["MSE"] for c in continuous])
            result["corr"] = _floats([c["corr_p"] for c in continuous])
        return result


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
    lead_times = _check_rain("forecast", forecast, "(N, L, H, W)").shape[-3]
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


def skill_table(
    results: Mapping[str, Mapping[str, Any]],
    *,
    threshold: float = 0.5,
    interval_minutes: float = RADAR_INTERVAL_MINUTES,
) -> str:
    """A fixed-width table of the skill of several forecasts per lead time, and its mean.

    One line per lead time (in minutes) and method, in the order of `results`: CSI, POD, FAR and HSS
    at `threshold`, then the rain rate's MSE in (mm/h)^2 and Pearson correlation; n/a where a score
    is undefined. The last lines give each method's mean over the lead times where its score is
    defined (the plain mean of the per-lead-time scores).

    Args:
      results: {method name: `Verification.result()`}, e.g. "model", "persistence", "optical_flow";
        all over the same lead times, each with `threshold`.
      threshold: the rain rate in mm/h of the categorical scores.
      interval_minutes: minutes between frames (`convlstm_jax.nowcasting.RADAR_INTERVAL_MINUTES`).

    Returns:
      The table, lines joined by newlines, without a final newline.

    Raises:
      TypeError: if `results` is not a mapping of names to result dicts.
      ValueError: if `results` is empty, a result lacks `threshold` or a score, or the lead times differ.

    Example:
      >>> from convlstm_jax.nowcasting import skill_table
      >>> result = {"lead_times": [1], "CSI": {"0.5": [0.5]}, "POD": {"0.5": [1.0]}, "FAR": {"0.5": [0.5]},
      ...           "HSS": {"0.5": [0.25]}, "MSE": [2.0], "corr": [None]}
      >>> print(skill_table({"model": result}))
      Skill per lead time: CSI, POD, FAR, HSS at 0.5 mm/h; MSE in (mm/h)^2 and Pearson corr of the rain rate
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
    columns: dict[str, list[np.ndarray]] = {}
    lead_times = None
    for name, result in results.items():
        if not isinstance(name, str):
            raise TypeError(f"results must be keyed by method names (str), got {name!r}.")
        series = [score_by_lead_time(result, s, threshold=threshold) for s in _CATEGORICAL]
        series += [score_by_lead_time(result, s) for s in ("MSE", "corr")]
        if lead_times is None:
            lead_times = list(result["lead_times"])
        elif list(result["lead_times"]) != lead_times:
            raise ValueError(
                f"results must share their lead times: {name!r} has {list(result['lead_times'])}, "
                f"the first {lead_times}."
            )
        columns[name] = series
    width = max(12, *(len(name) for name in results)) + 2
    header = f"{'lead':<8}{'method':<{width}}" + "".join(f"{s:>8}" for s in _CATEGORICAL) + f"{'MSE':>11}{'corr':>8}"

    def row(lead: str, name: str, values: list[float]) -> str:
        cells = [_format(v, 8, 3) for v in values[:4]] + [_format(values[4], 11, 3), _format(values[5], 8, 3)]
        return f"{lead:<8}{name:<{width}}" + "".join(cells)

    lines = [
        f"Skill per lead time: CSI, POD, FAR, HSS at {threshold_key(threshold)} mm/h; "
        "MSE in (mm/h)^2 and Pearson corr of the rain rate",
        header,
    ]
    for i, lead in enumerate(lead_times):
        label = f"{format(lead * interval_minutes, 'g')} min"
        for j, (name, series) in enumerate(columns.items()):
            lines.append(row(label if j == 0 else "", name, [s[i] for s in series]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no defined value is NaN: n/a
        for j, (name, series) in enumerate(columns.items()):
            lines.append(row("mean" if j == 0 else "", name, [float(np.nanmean(s)) for s in series]))
    return "\n".join(lines)


__all__ = [
    "FSS_SCALES",
    "SCORES",
    "THRESHOLDS",
    "Verification",
    "score_by_lead_time",
    "skill_table",
    "threshold_key",
    "verify",
]
