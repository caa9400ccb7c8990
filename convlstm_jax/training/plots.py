"""Figures of a training run: forecasts next to the truth, and the learning curve.

Every function draws on a `matplotlib.figure.Figure` rendered by the Agg canvas and saves a PNG:
none calls `pyplot` nor changes matplotlib's global backend, so they are safe to call from a
notebook or a server. matplotlib is imported when a function is called, not with this module.
The figures of radar nowcasts are in `convlstm_jax.nowcasting.plots`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

_GAP = 2  # pixels of white between frames, and between the rows of a sequence


def _mosaic(rows: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """Tiles rows of frames (T_i, H, W) into one (H, W) image, left-aligned, white between tiles."""
    height, width = rows[0].shape[1:]
    columns = max(len(row) for row in rows)
    image = np.ones((len(rows) * (height + gap) - gap, columns * (width + gap) - gap), np.float32)
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            image[top : top + height, left : left + width] = frame
    return image


def plot_forecasts(
    path: str | os.PathLike[str],
    inputs: np.ndarray,
    targets: np.ndarray,
    predictions: np.ndarray,
    *,
    title: str | None = None,
) -> None:
    """Saves, for each sequence, three rows of frames: its inputs, its true future, the forecast.

    Args:
      path: the PNG file to write.
      inputs: input frames in [0, 1], of shape (N, T_in, H, W, 1).
      targets: true future frames in [0, 1], of shape (N, T_out, H, W, 1).
      predictions: forecast frames in [0, 1], of the shape of `targets`.
      title: a title above the rows.

    Raises:
      ValueError: if the shapes do not fit together or the frames have more than one channel.

    Example:
      >>> import tempfile
      >>> import numpy as np
      >>> from convlstm_jax.training import plot_forecasts
      >>> frames = np.zeros((2, 3, 8, 8, 1), np.float32)
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     plot_forecasts(f"{folder}/forecasts.png", frames, frames, frames)
    """
    inputs, targets, predictions = (np.asarray(x, np.float32) for x in (inputs, targets, predictions))
    if targets.shape != predictions.shape:
        raise ValueError(f"targets and predictions must have one shape, got {targets.shape} and {predictions.shape}.")
    if inputs.ndim != 5 or targets.ndim != 5 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"inputs and targets must be (N, T, H, W, 1) with one N, got {inputs.shape} and {targets.shape}."
        )
    if inputs.shape[2:] != targets.shape[2:] or inputs.shape[-1] != 1:
        raise ValueError(
            f"Frames must be single-channel and of one size, got inputs {inputs.shape} and targets {targets.shape}."
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    num_inputs, num_outputs = inputs.shape[1], targets.shape[1]
    labels, rows = [], []
    for n in range(inputs.shape[0]):
        labels += [
            f"#{n + 1} input, t = 1..{num_inputs}",
            f"#{n + 1} truth, t = {num_inputs + 1}..{num_inputs + num_outputs}",
            f"#{n + 1} forecast",
        ]
        rows += [inputs[n, ..., 0], targets[n, ..., 0], predictions[n, ..., 0]]
    image = _mosaic(rows, _GAP)
    height = inputs.shape[2]
    figure = Figure(figsize=(2.4 + image.shape[1] / 60, 0.6 + image.shape[0] / 60), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes.set_yticks([r * (height + _GAP) + (height - 1) / 2 for r in range(len(rows))], labels, fontsize=8)
    axes.set_xticks([])
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    if title:
        axes.set_title(title, fontsize=10)
    figure.savefig(path, dpi=100)


def plot_learning_curve(
    path: str | os.PathLike[str],
    *,
    train_steps: Sequence[int],
    train_loss: Sequence[float],
    val_steps: Sequence[int],
    val_cross_entropy: Sequence[float],
    val_mse: Sequence[float],
    baseline_mse: float | None = None,
) -> None:
    """Saves two panels: the cross-entropy by step (training batches and validation), and the
    validation MSE by step next to the baseline's.

    Args:
      path: the PNG file to write.
      train_steps, train_loss: the training loss (cross-entropy per sequence) after each step.
      val_steps, val_cross_entropy, val_mse: the validation figures at each evaluation.
      baseline_mse: the validation MSE of a baseline forecast, drawn as a horizontal line.

    Example:
      >>> import tempfile
      >>> from convlstm_jax.training import plot_learning_curve
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     plot_learning_curve(
      ...         f"{folder}/curve.png", train_steps=[1, 2], train_loss=[9.0, 8.0],
      ...         val_steps=[2], val_cross_entropy=[8.5], val_mse=[0.1], baseline_mse=0.2,
      ...     )
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, mse_axes = figure.subplots(1, 2)
    loss_axes.plot(train_steps, train_loss, color="tab:blue", alpha=0.5, linewidth=1, label="training batch")
    loss_axes.plot(val_steps, val_cross_entropy, "o-", color="tab:orange", markersize=3, label="validation")
    loss_axes.set(xlabel="step", ylabel="cross-entropy per sequence", title="Loss")
    loss_axes.legend()
    mse_axes.plot(val_steps, val_mse, "o-", color="tab:orange", markersize=3, label="model")
    if baseline_mse is not None:
        mse_axes.axhline(baseline_mse, color="gray", linestyle="--", label="copy the last input frame")
    mse_axes.set(xlabel="step", ylabel="MSE per pixel", title="Validation MSE")
    mse_axes.set_ylim(bottom=0)
    mse_axes.legend()
    for axes in (loss_axes, mse_axes):
        axes.grid(alpha=0.3)
    figure.savefig(path, dpi=100)


__all__ = [
    "plot_forecasts",
    "plot_learning_curve",
]
