"""Metrics over a whole set of sequences (the model's and the copy-the-last-frame baseline's), their
printed form, the run's two plots, `forecasts.png` and `learning_curve.png`, and for radar the
nowcasting skill of the model and of pysteps' baselines, with its table and plots."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import nowcasting
from ..nowcasting import RADAR_INTERVAL_MINUTES, pixels_to_rain, plot_radar_forecasts, plot_skill
from . import metrics
from .batches import copy_last_frame, to_unit
from .placement import Placer
from .plots import plot_forecasts, plot_learning_curve
from .steps import TrainState, eval_step, predict
from .workdir import CURVE_FIGURE, FORECASTS_FIGURE, RADAR_FIGURE, SKILL_FIGURE

# The metrics of an evaluation, as `evaluate_dataset` and `baseline_metrics` name them.
METRICS = ("cross_entropy", "mse", "mae", "ssim")

# The baseline's frames are grey levels k / 255. As probabilities they are kept half a level away from
# 0 and 1: one white pixel where the truth is black would otherwise make their cross-entropy infinite.
BASELINE_FLOOR = 1 / 510


def _batches(count: int, batch_size: int) -> list[slice]:
    return [slice(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def _mean_over_batches(score: Callable[[slice], Mapping[str, Any]], count: int, batch_size: int) -> dict[str, float]:
    """The mean over `count` sequences of per-batch means, weighted by batch length, in float64."""
    totals: dict[str, float] = {}
    for batch in _batches(count, batch_size):
        length = batch.stop - batch.start
        for name, value in score(batch).items():
            totals[name] = totals.get(name, 0.0) + float(value) * length
    return {name: total / count for name, total in totals.items()}


def evaluate_dataset(
    state: TrainState,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    place: Placer | None = None,
) -> dict[str, float]:
    """`eval_step`'s four metrics over a whole set of sequences, batch by batch.

    Every metric is a mean over sequences of equal size, so the figure is the same however the set
    is cut into batches (up to float rounding).

    Args:
      state: the trained state.
      inputs, targets: pixel sequences (N, T_in, H, W, C) and (N, T_out, H, W, C), uint8 or float
        with NaN where missing (`batches.to_unit`); the metrics count observed target pixels only.
      batch_size: sequences per call of `eval_step`.
      place: puts a batch `(inputs, targets)` of float32 arrays on the devices (default: as is).

    Returns:
      `{"cross_entropy": ..., "mse": ..., "mae": ..., "ssim": ...}` as Python floats.
    """
    place = place or (lambda batch: batch)

    def score(batch: slice) -> Mapping[str, Any]:
        return eval_step(state, *place((to_unit(inputs[batch]), to_unit(targets[batch]))))

    return _mean_over_batches(score, len(inputs), batch_size)


@jax.jit
def _baseline_step(forecast: jax.Array, truth: jax.Array) -> dict[str, jax.Array]:
    forecast = jnp.where(jnp.isnan(forecast), jnp.zeros((), forecast.dtype), forecast)  # missing: no rain, as the model
    p = jnp.clip(forecast, BASELINE_FLOOR, 1 - BASELINE_FLOOR)
    return {
        "cross_entropy": metrics.cross_entropy(jnp.log(p) - jnp.log1p(-p), truth),
        "mse": metrics.mse(forecast, truth),
        "mae": metrics.mae(forecast, truth),
        "ssim": metrics.ssim(forecast, truth),
    }


def baseline_metrics(inputs: np.ndarray, targets: np.ndarray, *, batch_size: int = 64) -> dict[str, float]:
    """The four metrics of the forecast that repeats the last input frame (`batches.copy_last_frame`).

    MSE, MAE and SSIM are those of the repeated frames themselves; the cross-entropy takes them as
    probabilities kept `BASELINE_FLOOR` (half a grey level) away from 0 and 1. A missing pixel (NaN)
    of the last input frame is repeated as 0, as the model sees it; missing targets are left out.

    Args:
      inputs, targets: pixel sequences (N, T_in, H, W, C) and (N, T_out, H, W, C), uint8 or float
        with NaN where missing (`batches.to_unit`).
      batch_size: sequences per batch.

    Returns:
      `{"cross_entropy": ..., "mse": ..., "mae": ..., "ssim": ...}` as Python floats.
    """

    def score(batch: slice) -> Mapping[str, Any]:
        truth = to_unit(targets[batch])
        return _baseline_step(to_unit(copy_last_frame(inputs[batch], truth.shape[1])), truth)

    return _mean_over_batches(score, len(inputs), batch_size)


def _format(values: Mapping[str, float]) -> str:
    return (
        f"cross-entropy {values['cross_entropy']:9.2f}  MSE {values['mse']:.5f}  "
        f"MAE {values['mae']:.5f}  SSIM {values['ssim']:.4f}"
    )


def _save_figures(
    workdir: pathlib.Path,
    records: Sequence[Mapping[str, Any]],
    state: TrainState,
    val_inputs: np.ndarray,
    val_targets: np.ndarray,
    place_batch: Placer,
) -> None:
    count = min(3, len(val_inputs))
    inputs, targets = to_unit(val_inputs[:count]), to_unit(val_targets[:count])
    forecast = predict(state, place_batch((inputs,))[0])
    step = int(state.step)
    plot_forecasts(
        workdir / FORECASTS_FIGURE, inputs, targets, np.asarray(forecast), title=f"Validation sequences, step {step}"
    )
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    baseline = [r for r in records if r["kind"] == "baseline"]
    plot_learning_curve(
        workdir / CURVE_FIGURE,
        train_steps=[r["step"] for r in train],
        train_loss=[r["loss"] for r in train],
        val_steps=[r["step"] for r in val],
        val_cross_entropy=[r["cross_entropy"] for r in val],
        val_mse=[r["mse"] for r in val],
        baseline_mse=baseline[0]["mse"] if baseline else None,
    )


def _model_rain(state: TrainState, inputs: np.ndarray, place: Placer) -> np.ndarray:
    """The model's forecast of uint8 radar frames (B, T_in, H, W, 1) as rain rates (B, T_out, H, W) in mm/h."""
    forecast = np.asarray(predict(state, place((to_unit(inputs),))[0]), np.float32)
    return pixels_to_rain(forecast[..., 0] * 255)


def _deterministic(forecasts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The forecasts (N, L, H, W) to score, by name: an ensemble (N, M, L, H, W) by its members' mean (NaN
    where a member is), named "X_mean" for "X_ensemble" (or "X"), unless `forecasts` already holds that mean."""
    out = {}
    for name, forecast in forecasts.items():
        if forecast.ndim == 5:
            mean = (name.removesuffix("_ensemble") if name.endswith("_ensemble") else name) + "_mean"
            if mean not in forecasts:
                out[mean] = np.mean(forecast, axis=1)  # NaN where a member is: unforecast, as theirs
        else:
            out[name] = forecast
    return out


def nowcast_skill(
    state: TrainState,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    place: Placer | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The skill of the model's nowcasts and of pysteps' baselines, per lead time, on two regions.

    The frames are radar echoes in HKO-7's encoding (`nowcasting.pixels_to_rain`); every forecast,
    the model's and each one `nowcasting.baselines` returns (an ensemble by its members' mean), is
    scored as rain rates in mm/h against the same truth by `nowcasting.Verification` (pysteps'
    categorical scores, FSS, rainfall MSE and correlation), accumulated over the whole set, on
    observed pixels only (NaN truth is missing), on two regions:

    - "frame": every observed pixel; a forecast's NaN there (extrapolation beyond the domain's edge)
      counts as no rain, so a method gains nothing from being blind.
    - "reachable": the observed pixels extrapolation reaches from inside the domain
      (`nowcasting.verification.reachable`, with the baselines' motion), where no method is blind.

    On each region, the model-minus-baseline difference of each headline score (CSI at each
    threshold and MSE, means over the lead times every method has) gets a paired bootstrap 95%
    interval over the sequences (`nowcasting.verification.bootstrap_differences`).

    Args:
      state: the trained state.
      inputs, targets: radar frames in HKO-7's pixels (N, T_in, H, W, 1) and (N, T_out, H, W, 1),
        uint8 or float with NaN where missing.
      batch_size: sequences per call of the model.
      place: puts a batch `(inputs,)` of float32 arrays on the devices (default: as is).
      resamples: resamples of the bootstrap.
      seed: the bootstrap's seed.

    Returns:
      `{"regions": {"frame": {method: Verification.result()}, "reachable": {...}}, "differences":
      {"frame": {baseline: ...}, "reachable": {...}} (`bootstrap_differences`), "bootstrap":
      {"reference": "model", "resamples", "seed", "confidence": 0.95}}`, methods in the order
      "model", then `nowcasting.baselines`' order.
    """
    place = place or (lambda batch: batch)
    lead_times = targets.shape[1]
    regions: dict[str, dict[str, nowcasting.Verification]] = {region: {} for region in nowcasting.REGIONS}
    for batch in _batches(len(inputs), batch_size):
        observed, truth = pixels_to_rain(inputs[batch][..., 0]), pixels_to_rain(targets[batch][..., 0])
        forecasts = _deterministic(
            {"model": _model_rain(state, inputs[batch], place), **nowcasting.baselines(observed, lead_times)}
        )
        masks = {"frame": None, "reachable": nowcasting.reachable(observed, lead_times)}
        for region, verifications in regions.items():
            for name, forecast in forecasts.items():
                verification = verifications.setdefault(name, nowcasting.Verification(lead_times))
                verification.accumulate(forecast, truth, mask=masks[region])
    scores = {
        region: {name: verification.result() for name, verification in verifications.items()}
        for region, verifications in regions.items()
    }
    return {
        "regions": scores,
        "differences": {
            region: nowcasting.bootstrap_differences(results, resamples=resamples, seed=seed)
            for region, results in scores.items()
        },
        "bootstrap": {"reference": "model", "resamples": resamples, "seed": seed, "confidence": 0.95},
    }


def _save_radar_figures(
    workdir: pathlib.Path,
    skill: Mapping[str, Mapping[str, Any]],
    state: TrainState,
    val_inputs: np.ndarray,
    val_targets: np.ndarray,
    place_batch: Placer,
    interval_minutes: float = RADAR_INTERVAL_MINUTES,
) -> None:
    plot_skill(workdir / SKILL_FIGURE, skill, score="CSI", threshold=0.5, interval_minutes=interval_minutes)
    inputs, truth = pixels_to_rain(val_inputs[:1, ..., 0]), pixels_to_rain(val_targets[:1, ..., 0])
    forecasts = _deterministic(
        {"model": _model_rain(state, val_inputs[:1], place_batch), **nowcasting.baselines(inputs, truth.shape[1])}
    )
    plot_radar_forecasts(
        workdir / RADAR_FIGURE,
        inputs[0],
        truth[0],
        {name: forecast[0] for name, forecast in forecasts.items()},
        interval_minutes=interval_minutes,
        title=f"Validation sequence 0, step {int(state.step)}",
    )
