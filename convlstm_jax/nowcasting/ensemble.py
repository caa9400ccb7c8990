"""Verification of ensemble nowcasts per lead time with pysteps: CRPS, rank histogram, reliability.

An ensemble (STEPS', say: `baselines.steps`) is scored against the observed rain rates with pysteps'
accumulators, lead time by lead time, pooled over every sequence seen:

- CRPS, the continuous ranked probability score (`pysteps.verification.probscores.CRPS_init/accum/
  compute`): the integral over x of (F(x) - H(x - y))^2, with F the members' empirical CDF and H the
  step at the observation y; in mm/h, lower is better. For one member it is |x - y|: a deterministic
  forecast's CRPS is its mean absolute error, so that the model and the ensemble are scored on the
  same footing.
- The rank histogram (`pysteps.verification.ensscores.rankhist_init/accum/compute`): how often the
  observation falls below all M members, between two, ..., above all (M + 1 bins), over the pixels
  where the observation or a member reaches `rank_threshold`; flat for a reliable ensemble, U-shaped
  for one too narrow.
- The reliability diagram at each threshold (`pysteps.verification.probscores.reldiag_init/accum/
  compute`): the forecast probability of rain >= the threshold (the fraction of members,
  `pysteps.postprocessing.ensemblestats.excprob`), binned, against the observed frequency.

Only observed pixels count: NaN in the truth (missing data) is left out, as are pixels where a
member has no value (NaN: beyond the reach of its extrapolation); `result()` gives both counts, so
that a blind forecast shows. To compare methods on the same pixels, pass a `mask` (the pixels every
method reaches, say).

Example:
  >>> import numpy as np
  >>> from convlstm_jax.nowcasting import verify_ensemble
  >>> truth = np.ones((1, 2, 4, 4), np.float32)
  >>> ensemble = np.stack([truth - 0.5, truth + 0.5], axis=1)  # (N, M, L, H, W): two members
  >>> result = verify_ensemble(ensemble, truth, thresholds=(0.5,))
  >>> result["CRPS"], result["observed_pixels"], result["rank_histogram"][0]
  ([0.25, 0.25], [16, 16], [0.0, 1.0, 0.0])
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .baselines import DB_THRESHOLD, _check_int, _pysteps
from .verification import THRESHOLDS, threshold_key

RELIABILITY_BINS = 10
"""Bins of forecast probability in the reliability diagram: pysteps' default."""

RELIABILITY_MIN_COUNT = 10
"""Bins of the reliability diagram with fewer pixels than this are None: pysteps' default."""


def _check_rates(name: str, x: Any, ranks: tuple[int, ...], layout: str) -> np.ndarray:
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array of rain rates in mm/h, got {type(x).__name__}.")
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"{name} must be rain rates in mm/h of a floating-point dtype, got {np.dtype(dtype)}.")
    if len(x.shape) not in ranks or 0 in x.shape:
        raise ValueError(f"{name} must be {layout}, got shape {tuple(x.shape)}.")
    x = np.asarray(x, np.float64)
    if np.isinf(x).any():
        raise ValueError(f"{name} must be finite rain rates or NaN (missing): it holds infinite values.")
    if (x < 0).any():
        raise ValueError(f"{name} must be rain rates >= 0 mm/h, got a minimum of {np.nanmin(x):g}.")
    return x


def _check_thresholds(thresholds: Any) -> tuple[float, ...]:
    if isinstance(thresholds, str) or not isinstance(thresholds, Sequence):
        raise TypeError(f"thresholds must be a sequence of rain rates in mm/h, got {type(thresholds).__name__}.")
    values = []
    for t in thresholds:
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"thresholds must be positive finite rain rates in mm/h, got {tuple(thresholds)!r}.")
        values.append(float(t))
    if len({threshold_key(t) for t in values}) != len(values):
        raise ValueError(f"thresholds must not repeat, got {tuple(thresholds)!r}.")
    return tuple(values)


def _floats(values: Any) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, np.float64).ravel()]


class EnsembleVerification:
    """CRPS, rank histogram and reliability of an ensemble per lead time, accumulated batch by batch.

    `accumulate(forecast, truth)` adds a batch: an ensemble (N, M, L, H, W) or a deterministic
    forecast (N, L, H, W), one member, whose CRPS is then its mean absolute error. `result()` scores
    every pixel seen so far, per lead time, with pysteps' accumulators (see the module): pooled, so
    that one call on the whole set gives the same numbers, but for the rank histogram's ties (an
    observation equal to several members, as dry pixels are), which pysteps breaks at random: here
    from `seed`.

    Args:
      lead_times: L, the frames of each forecast.
      thresholds: rain rates in mm/h of the reliability diagrams (default `THRESHOLDS`).
      rank_threshold: rain rate in mm/h below which pixels where the observation and every member
        stay are left out of the rank histogram (default 0.1 mm/h, `DB_THRESHOLD`).
      reliability_bins: bins of forecast probability (default 10).
      reliability_min_count: bins with fewer pixels are None (default 10).
      seed: the seed of the rank histogram's tie breaks.

    Raises:
      TypeError, ValueError: if an argument is not of its type or range.
      ImportError: if pysteps is not installed.
    """

    def __init__(
        self,
        lead_times: int,
        *,
        thresholds: Sequence[float] = THRESHOLDS,
        rank_threshold: float = DB_THRESHOLD,
        reliability_bins: int = RELIABILITY_BINS,
        reliability_min_count: int = RELIABILITY_MIN_COUNT,
        seed: int = 0,
    ) -> None:
        self.lead_times = _check_int("lead_times", lead_times, 1)
        self.thresholds = _check_thresholds(thresholds)
        if isinstance(rank_threshold, bool) or not isinstance(rank_threshold, numbers.Real):
            raise TypeError(f"rank_threshold must be a real number, got {type(rank_threshold).__name__}.")
        if not (math.isfinite(rank_threshold) and rank_threshold >= 0):
            raise ValueError(f"rank_threshold must be a finite rain rate >= 0 mm/h, got {rank_threshold}.")
        self.rank_threshold = float(rank_threshold)
        self.reliability_bins = _check_int("reliability_bins", reliability_bins, 1)
        self.reliability_min_count = _check_int("reliability_min_count", reliability_min_count, 1)
        self._rng = np.random.RandomState(_check_int("seed", seed, 0))
        self._verification = _pysteps().verification
        self._members: int | None = None
        self._crps = [self._verification.probscores.CRPS_init() for _ in range(self.lead_times)]
        self._rank: list[dict] = []
        self._reliability = [
            [self._verification.probscores.reldiag_init(t, self.reliability_bins, 0) for t in self.thresholds]
            for _ in range(self.lead_times)
        ]
        self._observed = np.zeros(self.lead_times, np.int64)

    def accumulate(self, forecast: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Adds a batch: `forecast` (N, M, L, H, W) members or (N, L, H, W), `truth` (N, L, H, W).

        Args:
          forecast: rain rates in mm/h, >= 0 or NaN (no value); the same M members every batch.
          truth: the observed rain rates in mm/h, >= 0 or NaN (missing).
          mask: optional bool (H, W) or (N, L, H, W): the pixels to score (the others are left out).

        Raises:
          TypeError, ValueError: if an array is not of its type, shape or range, or M changed; the
            scores are left as they were.
        """
        truth = _check_rates("truth", truth, (4,), "(N, L, H, W)")
        forecast = _check_rates("forecast", forecast, (4, 5), "(N, M, L, H, W) members or (N, L, H, W)")
        if forecast.ndim == 4:
            forecast = forecast[:, np.newaxis]
        expected = (truth.shape[0], forecast.shape[1], self.lead_times, *truth.shape[2:])
        if truth.shape[1] != self.lead_times or forecast.shape != expected:
            raise ValueError(
                f"forecast (N, M, L, H, W) and truth (N, L, H, W) must agree with L={self.lead_times} lead times, "
                f"got {forecast.shape} and {truth.shape}."
            )
        if self._members is not None and forecast.shape[1] != self._members:
            raise ValueError(
                f"forecast must have the {self._members} members of the batches before, got {forecast.shape[1]}."
            )
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape not in (truth.shape[-2:], truth.shape):
                raise ValueError(
                    f"mask must be bool of shape (H, W) {truth.shape[-2:]} or (N, L, H, W) {truth.shape}, got "
                    f"{mask.dtype} {mask.shape}."
                )
            truth = np.where(mask, truth, np.nan)
        if self._members is None:
            self._members = forecast.shape[1]
            self._rank = [
                self._verification.ensscores.rankhist_init(self._members, self.rank_threshold)
                for _ in range(self.lead_times)
            ]
        excprob = _pysteps().postprocessing.ensemblestats.excprob
        # pysteps breaks the rank histogram's ties with numpy's global generator: seeded here, and restored.
        state = np.random.get_state()  # noqa: NPY002
        np.random.set_state(self._rng.get_state())  # noqa: NPY002
        try:
            for k in range(self.lead_times):
                members = np.moveaxis(forecast[:, :, k], 1, 0)  # (M, N, H, W), as pysteps takes them
                observed = truth[:, k]
                self._observed[k] += int(np.isfinite(observed).sum())
                self._verification.probscores.CRPS_accum(self._crps[k], members, observed)
                self._verification.ensscores.rankhist_accum(self._rank[k], members, observed)
                blind = ~np.isfinite(members).all(axis=0)
                for j, t in enumerate(self.thresholds):
                    probability = np.where(blind, np.nan, excprob(np.nan_to_num(members), t))
                    self._verification.probscores.reldiag_accum(self._reliability[k][j], probability, observed)
        finally:
            self._rng.set_state(np.random.get_state())  # noqa: NPY002
            np.random.set_state(state)  # noqa: NPY002

    def result(self) -> dict[str, Any]:
        """The scores so far, a JSON-serialisable dict, each a list over the lead times.

        Returns:
          {"CRPS": [mm/h, None before any scored pixel], "observed_pixels": [observed pixels seen
          (in the mask)], "scored_pixels": [those where every member has a value], "rank_histogram":
          [[M + 1 frequencies summing to 1, None where no pixel counted]], "reliability": {threshold
          key: [{"forecast_probability": [mean per bin], "observed_frequency": [per bin], "pixels":
          [per bin]}]}}, with None for bins of fewer than `reliability_min_count` pixels.
        """
        crps, scored, ranks = [], [], []
        reliability: dict[str, list] = {threshold_key(t): [] for t in self.thresholds}
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            for k in range(self.lead_times):
                n = int(self._crps[k]["n"])
                scored.append(n)
                crps.append(float(self._verification.probscores.CRPS_compute(self._crps[k])) if n else None)
                if self._rank and self._rank[k]["n"].sum():
                    ranks.append(_floats(self._verification.ensscores.rankhist_compute(self._rank[k])))
                else:
                    ranks.append(None)
                for j, t in enumerate(self.thresholds):
                    diagram = self._reliability[k][j]
                    probability, frequency = self._verification.probscores.reldiag_compute(diagram)
                    few = diagram["sample_size"] < self.reliability_min_count
                    reliability[threshold_key(t)].append(
                        {
                            "forecast_probability": _floats(np.where(few, np.nan, probability)),
                            "observed_frequency": _floats(np.where(few, np.nan, frequency)),
                            "pixels": [int(c) for c in diagram["sample_size"]],
                        }
                    )
        return {
            "CRPS": crps,
            "observed_pixels": [int(c) for c in self._observed],
            "scored_pixels": scored,
            "rank_histogram": ranks,
            "reliability": reliability,
        }


def verify_ensemble(
    forecast: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None, **options: Any
) -> dict[str, Any]:
    """`EnsembleVerification(L, **options)` of one batch: its `result()`.

    Args:
      forecast: (N, M, L, H, W) members or a deterministic (N, L, H, W) forecast, in mm/h.
      truth: the observed (N, L, H, W) rain rates in mm/h, NaN where missing.
      mask: optional bool (H, W) or (N, L, H, W), the pixels to score.
      **options: `EnsembleVerification`'s keyword arguments.

    Returns:
      `EnsembleVerification.result()`.
    """
    lead_times = truth.shape[1] if hasattr(truth, "shape") and len(truth.shape) == 4 else 1
    verification = EnsembleVerification(lead_times, **options)
    verification.accumulate(forecast, truth, mask)
    return verification.result()


__all__ = ["RELIABILITY_BINS", "RELIABILITY_MIN_COUNT", "EnsembleVerification", "verify_ensemble"]
