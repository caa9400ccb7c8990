"""Figures of radar nowcasts: a verification score against lead time, and forecast strips in rain rate.

Every function draws on a `matplotlib.figure.Figure` rendered by the Agg canvas and saves a PNG:
none calls `pyplot` nor changes matplotlib's global backend, so they are safe to call from a
notebook or a server. matplotlib is imported when a function is called, not with this module.
`plot_radar_forecasts` takes pysteps' radar colour scale; importing pysteps imports `pyplot`,
without choosing a backend.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

_SKILL_LIMITS = {"CSI": (0, 1), "POD": (0, 1), "FAR": (0, 1), "FSS": (0, 1), "corr": (None, 1)}
_SKILL_NAMES = {
    "CSI": "critical success index",
    "POD": "probability of detection",
    "FAR": "false alarm ratio",
    "HSS": "Heidke skill score",
    "FSS": "fractions skill score",
    "MSE": "rain rate MSE, (mm/h)²",
    "corr": "Pearson correlation of the rain rate",
}


def plot_skill(
    path: str | os.PathLike[str],
    results: Mapping[str, Any],
    *,
    score: str = "CSI",
    threshold: float | None = 0.5,
    scale: int | None = None,
    interval_minutes: float = 6,
) -> None:
    """Saves one verification score against lead time, a line per method, as a 640 x 400 PNG.

    Args:
      path: the PNG file to write.
      results: {method name: `convlstm_jax.nowcasting.Verification.result()`}, drawn in this order
        (e.g. "model", "persistence", "optical_flow"), each at its own lead times; or a run's skill
        (`{"regions": {region: {method: result}}, ...}`, as `skill.json` holds it): a line per
        method and region, "frame" solid and "reachable" dashed, one colour per method.
      score: one of `convlstm_jax.nowcasting.SCORES`: "CSI", "POD", "FAR", "HSS", "FSS" (at
        `threshold`), "MSE" or "corr" (over all pixels).
      threshold: the rain rate in mm/h of a categorical score or FSS; MSE and corr ignore it.
      scale: the FSS window side in pixels (default: the result's first).
      interval_minutes: minutes between frames (`convlstm_jax.nowcasting.RADAR_INTERVAL_MINUTES`).
        Undefined scores (None in the results) leave gaps in the lines.

    Raises:
      TypeError: if `results` is not a mapping of names to result dicts.
      ValueError: if `results` is empty, a result lacks the score, threshold or scale, or
        `interval_minutes` is not positive.

    Example:
      >>> import tempfile
      >>> from convlstm_jax.nowcasting import plot_skill
      >>> result = {"lead_times": [1, 2, 3], "thresholds": [0.5], "CSI": {"0.5": [0.8, 0.6, None]}}
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     plot_skill(f"{folder}/csi.png", {"model": result, "persistence": result})
    """
    from .verification import _is_skill, score_by_lead_time, threshold_key

    if isinstance(results, Mapping) and _is_skill(results):
        regions = dict(results["regions"])
    else:
        regions = {"": results}
    if not isinstance(results, Mapping):
        raise TypeError(f"results must map method names to Verification.result() dicts, got {type(results).__name__}.")
    if not results:
        raise ValueError("results must hold at least one method's Verification.result(), got none.")
    if isinstance(interval_minutes, bool) or not isinstance(interval_minutes, (int, float)):
        raise TypeError(f"interval_minutes must be a number, got {type(interval_minutes).__name__}.")
    if not (math.isfinite(interval_minutes) and interval_minutes > 0):
        raise ValueError(f"interval_minutes must be positive, got {interval_minutes}.")
    per_threshold = score not in ("MSE", "corr")
    if scale is not None and score != "FSS":
        raise ValueError(f"scale is the side of FSS's windows; {score!r} takes none.")
    lines: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for region, region_results in regions.items():
        if not isinstance(region_results, Mapping) or not region_results:
            raise ValueError(f"results' region {region!r} must map method names to Verification.result() dicts.")
        for name, result in region_results.items():
            if not isinstance(name, str):
                raise TypeError(f"results must be keyed by method names (str), got {name!r}.")
            values = score_by_lead_time(
                result, score, threshold=threshold if per_threshold else None, scale=scale if score == "FSS" else None
            )
            lines[region, name] = np.asarray(result["lead_times"], np.float64) * interval_minutes, values
    lead_times = sorted({t for minutes, _ in lines.values() for t in minutes})
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    minutes = np.asarray(lead_times, np.float64)
    colours: dict[str, Any] = {}
    for (region, name), (x, values) in lines.items():
        style = "s--" if region == "reachable" else "o-"
        label = f"{name}, {region}" if region else name
        (line,) = axes.plot(x, values, style, markersize=4, label=label, color=colours.get(name))
        colours.setdefault(name, line.get_color())
    title = f"{score}, {_SKILL_NAMES[score]}"
    if per_threshold:
        title += f", at {threshold:g} mm/h"
    if score == "FSS":
        first = next(iter(next(iter(regions.values())).values()))["FSS"][threshold_key(threshold)]
        title += f" in {scale or next(iter(first))} px windows"
    axes.set(xlabel="lead time (minutes)", ylabel=score, title=title)
    axes.set_ylim(*_SKILL_LIMITS.get(score, (None, None)))
    if score == "MSE":
        axes.set_ylim(bottom=0)
    axes.set_xticks(minutes if len(minutes) <= 12 else minutes[:: math.ceil(len(minutes) / 12)])
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=100)


def _radar_colormap() -> tuple[Any, Any, list[float], list[str]]:
    """pysteps' colour scale of rain rate in mm/h: (cmap, BoundaryNorm, levels, level labels)."""
    from .baselines import _pysteps

    get_colormap = _pysteps().visualization.precipfields.get_colormap
    with warnings.catch_warnings():
        # pysteps sets the colours beyond the scale with Colormap.set_over etc., which matplotlib 3.11
        # marks for deprecation; the colormap it makes is the same.
        warnings.filterwarnings("ignore", message=r"The set_(over|under|bad) function")
        return get_colormap("intensity", "mm/h", "pysteps")


def _shown(count: int, max_columns: int) -> list[int]:
    """Every k-th of `count` frames, ending at the last, so that at most `max_columns` remain."""
    step = math.ceil(count / max_columns)
    return list(range(count - 1, -1, -step))[::-1]


def plot_radar_forecasts(
    path: str | os.PathLike[str],
    inputs: np.ndarray,
    truth: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    *,
    interval_minutes: float = 6,
    max_columns: int = 10,
    title: str | None = None,
) -> None:
    """Saves the frames of one radar sequence in rain rate: its inputs, its true future, and each
    method's forecast, a row each, with pysteps' radar colour scale.

    Columns are labelled with the time in minutes from the last input frame (0 min); past
    `max_columns` frames a row shows every k-th frame, ending at the last. Rates below 0.08 mm/h
    (the scale's first level) are white, above 160 mm/h dark red, NaN grey. Each frame is about 1.2
    inches wide at 100 dpi, plus the row labels and the colour bar: the PNG is wider with more
    columns and taller with more rows.

    Args:
      path: the PNG file to write.
      inputs: observed rain rates in mm/h, (T_in, H, W).
      truth: the rain that fell after them, (L, H, W).
      forecasts: {method name: forecast rain rates (L, H, W)}, one row each, in this order.
      interval_minutes: minutes between frames (`convlstm_jax.nowcasting.RADAR_INTERVAL_MINUTES`).
      max_columns: the most frames shown in a row.
      title: a title above the rows.

    Raises:
      TypeError: if an array is not floating-point, `forecasts` not a mapping of names to arrays, or
        `max_columns` not an int.
      ValueError: if the shapes do not fit together, `forecasts` is empty, or `interval_minutes` or
        `max_columns` is not positive.
      ImportError: if pysteps is not installed.

    Example:
      >>> import tempfile
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import plot_radar_forecasts
      >>> rain = np.zeros((8, 16, 16), np.float32)
      >>> rain[:, 4:9, 4:9] = 5.0
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     plot_radar_forecasts(f"{folder}/radar.png", rain[:4], rain[4:], {"persistence": rain[3:4].repeat(4, 0)})
    """
    arrays = {"inputs": inputs, "truth": truth}
    if not isinstance(forecasts, Mapping):
        raise TypeError(f"forecasts must map method names to forecasts (L, H, W), got {type(forecasts).__name__}.")
    if not forecasts:
        raise ValueError("forecasts must hold at least one method's forecast, got none.")
    for name, forecast in forecasts.items():
        if not isinstance(name, str) or name in arrays:
            raise TypeError(f"forecasts must be keyed by method names (str other than inputs/truth), got {name!r}.")
        arrays[name] = forecast
    for name, array in arrays.items():
        dtype = getattr(array, "dtype", None)
        if dtype is None or np.dtype(dtype).kind != "f":
            raise TypeError(f"{name} must be a floating-point array of rain rates in mm/h, got {dtype or type(array)}.")
        if len(array.shape) != 3:
            raise ValueError(f"{name} must be 3-D (T, H, W), one sequence, got shape {tuple(array.shape)}.")
    frame = tuple(truth.shape[1:])
    for name, array in arrays.items():
        if tuple(array.shape[1:]) != frame or (name != "inputs" and array.shape != truth.shape):
            raise ValueError(
                f"{name} must be of shape {('T_in', *frame) if name == 'inputs' else tuple(truth.shape)} "
                f"(truth's frames), got {tuple(array.shape)}."
            )
    if isinstance(interval_minutes, bool) or not isinstance(interval_minutes, (int, float)):
        raise TypeError(f"interval_minutes must be a number, got {type(interval_minutes).__name__}.")
    if not (math.isfinite(interval_minutes) and interval_minutes > 0):
        raise ValueError(f"interval_minutes must be positive, got {interval_minutes}.")
    if isinstance(max_columns, bool) or not isinstance(max_columns, int):
        raise TypeError(f"max_columns must be an int, got {type(max_columns).__name__}.")
    if max_columns < 1:
        raise ValueError(f"max_columns must be >= 1, got {max_columns}.")
    cmap, norm, levels, labels = _radar_colormap()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    past = _shown(inputs.shape[0], max_columns)
    future = _shown(truth.shape[0], max_columns)
    rows = [("input", np.asarray(inputs, np.float32), past)] + [
        (name, np.asarray(array, np.float32), future) for name, array in arrays.items() if name != "inputs"
    ]
    columns = max(len(past), len(future))
    figure = Figure(figsize=(1.2 * columns + 1.8, 1.3 * len(rows) + (0.7 if title else 0.4)), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for r, (label, frames, shown) in enumerate(rows):
        for c in range(columns):
            axes = grid[r, c]
            axes.set_xticks([])
            axes.set_yticks([])
            if c >= len(shown):
                axes.set_visible(False)
                continue
            t = shown[c]
            axes.imshow(frames[t], cmap=cmap, norm=norm, interpolation="nearest")
            for spine in axes.spines.values():
                spine.set_color("0.7")
            if r <= 1:
                minutes = (t - inputs.shape[0] + 1 if r == 0 else t + 1) * interval_minutes
                axes.set_title(f"{minutes:+g} min" if minutes else "0 min", fontsize=8)
            if c == 0:
                axes.set_ylabel(label, fontsize=9)
    bar = figure.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), ax=grid, ticks=levels, extend="max", fraction=0.04, aspect=30
    )
    bar.ax.set_yticklabels(labels, fontsize=7)
    bar.set_label("rain rate (mm/h)", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)


__all__ = [
    "plot_radar_forecasts",
    "plot_skill",
]
