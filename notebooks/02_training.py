# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training the encoder-forecaster in JAX
#
# The encoding-forecasting network of Shi et al. 2015 (Sec. 3.2), trained on moving digits with
# `convlstm_jax.training`: the data, the model built from the paper's notation, a run of `train`
# (optax RMSProp, a jitted step, Orbax checkpoints, resuming), its results against the forecast
# that repeats the last input frame, and the same steps written out by hand.
#
# Nothing is downloaded: the digits are generated from scikit-learn's bundled 8 x 8 handwritten
# digits. `convlstm-train` runs the same training from the command line.

# %%
import json
import os
import tempfile
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

from convlstm_jax.models import EncoderForecaster
from convlstm_jax.training import (
    TrainConfig,
    baseline_metrics,
    batch_indices,
    create_train_state,
    evaluate_dataset,
    load_data,
    make_optimizer,
    predict,
    split_sequences,
    to_unit,
    train,
    train_step,
)

# %% tags=["parameters"]
SMALL = os.environ.get("CONVLSTM_NOTEBOOK_SMALL") == "1"  # smaller sizes, for the test suite
# Full size: the library's defaults, 600 steps of ConvLSTM(3x3)-3x3-32 on 64 x 64 frames, 10 + 10 frames.
SIZES = (
    dict(
        spec="ConvLSTM(3x3)-3x3-8",
        size=32,
        input_frames=4,
        output_frames=4,
        train_sequences=32,
        val_sequences=8,
        batch_size=4,
        steps=20,
        eval_every=10,
        checkpoint_every=10,
    )
    if SMALL
    else {}
)
SEED = 0

# %% [markdown]
# ## The options of a run
#
# `TrainConfig` holds every option, with the command line's defaults (`convlstm-train --help`);
# invalid values raise `ConfigError` as it is built. The run's files go to a temporary folder.

# %%
workdir = tempfile.TemporaryDirectory(prefix="convlstm_train_")
config = TrainConfig(**SIZES, seed=SEED, workdir=workdir.name, progress=False)
print(config)

# %% [markdown]
# ## The data
#
# `load_data` generates `train_sequences + val_sequences` sequences of two digits bouncing in the
# frame (`training.bouncing_digits`, made as Moving MNIST is), uint8 `(N, T, H, W, 1)`: batch-first and
# channels-last. The first `input_frames` frames of a sequence are the model's input, the rest its
# targets. The digits are blurrier than MNIST's, so the figures below are not comparable with
# published Moving MNIST results; `TrainConfig(data="mnist_test_seq.npy")` trains on that file.

# %%
train_set, val_set = load_data(config)
train_inputs, train_targets = split_sequences(train_set, config.input_frames)
val_inputs, val_targets = split_sequences(val_set, config.input_frames)
print(f"train {train_set.shape} {train_set.dtype}, validation {val_set.shape}")


def show_rows(rows, labels, title=None):
    """Draws rows of frames (T, H, W) in [0, 1], one row per sequence, with a label on its left."""
    columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(0.9 * columns + 1, 0.9 * len(rows) + 0.3), squeeze=False, layout="constrained"
    )
    for row_axes, row, label in zip(axes, rows, labels):
        for t, ax in enumerate(row_axes):
            ax.set_xticks([])
            ax.set_yticks([])
            if t < len(row):
                ax.imshow(row[t], cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
        row_axes[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    plt.show()


shown = to_unit(train_set[:3, ..., 0])
show_rows(list(shown), [f"sequence {n}" for n in range(len(shown))], "Training sequences, t = 1, 2, ...")

# %% [markdown]
# ## The model, in the paper's notation
#
# `"ConvLSTM(3x3)-3x3-32"` reads: every input-to-state convolution is 3x3; then, per layer, its
# state-to-state kernel and hidden states (the paper's best network is
# `"ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64"`). Frames are cut into `patch_size` x `patch_size`
# patches (the paper: 4), so a 64 x 64 frame becomes 16 x 16 cells of 16 channels. An encoder reads
# the input frames; a forecaster of the same shape starts from its final states and runs for
# `output_frames` steps; a 1x1 convolution of the forecaster's hidden states gives each frame's
# logits, and `sigmoid(logits)` the predicted frames. `train.build_model(config)` makes the same
# model from a `TrainConfig`.

# %%
model = EncoderForecaster.from_spec(
    config.spec, patch_size=config.patch_size, output_frames=config.output_frames, peephole=config.peephole
)
example = to_unit(train_inputs[: config.batch_size])
shapes = jax.eval_shape(model.init, jax.random.key(SEED), example)  # shapes only, nothing computed
print(model.spec, f"{sum(leaf.size for leaf in jax.tree.leaves(shapes)):,} parameters")
print("input", example.shape, "-> logits", jax.eval_shape(model.apply, shapes, example).shape)

# %% [markdown]
# ## Training with the library
#
# `train(config)` makes the data and the model as above and then, for `config.steps` steps:
#
# - takes a batch that depends only on the step and the seed (`training.batch_indices`);
# - runs `train_step`, compiled once by `jax.jit`: the paper's loss (the cross-entropy of the
#   logits against the target frames, summed over a sequence's pixels), its gradient by
#   `jax.value_and_grad`, and one update of optax's RMSProp (learning rate 1e-3, decay 0.9, as the
#   paper; `optimizer="adam"` and `clip_norm` are options);
# - every `eval_every` steps, evaluates the validation set (`evaluate_dataset`);
# - every `checkpoint_every` steps and at the end, saves an Orbax checkpoint of the step, the
#   parameters and the optimiser's state, with the options.
#
# It writes `metrics.jsonl` (one JSON record per step and per evaluation), `config.json`, the
# checkpoints, and two figures, and returns a `TrainResult`.
#
# A workdir that holds a checkpoint is resumed: after an interruption, the same call restores the
# latest checkpoint and continues from its step, with the batches an uninterrupted run would have
# seen, and the log reads as one run's; a larger `steps` trains further. Only the schedule may
# change (`steps`, `eval_every`, ...): other options differing from the checkpoint's raise
# `ConfigError`. Use another workdir to start afresh.

# %%
result = train(config)
print(f"{result.steps_run} steps, {result.wall_time:.0f} s, checkpoints at steps {result.checkpoint_steps}")
print(sorted(path.name for path in result.workdir.iterdir()))

# %% [markdown]
# Called again, `train(config)` finds the run finished: it restores the last checkpoint, trains no
# further and evaluates. The restored parameters are those the run ended with, bit for bit.

# %%
again = train(config)
same = jax.tree.map(np.array_equal, result.state.params, again.state.params)
assert again.steps_run == 0 and all(jax.tree.leaves(same))
print(f"{again.steps_run} steps this time; restored step {int(again.state.step)}, parameters identical")

# %% [markdown]
# ## Against the baseline
#
# The baseline repeats the last input frame (`training.copy_last_frame`). The four metrics are
# `training.evaluate`'s, each a mean over the validation sequences: the cross-entropy per sequence
# (the paper's figure and the training loss), and per pixel the mean squared error, the mean
# absolute error and the structural similarity (SSIM, higher is better).
#
# At full size, the 600 steps take a few minutes on a CPU and the model's MSE ends at about half
# the baseline's (0.042 against 0.086 at the defaults), while its forecasts are still blurred: their
# SSIM is below the baseline's sharp, misplaced copies. Longer runs and the paper's network sharpen
# them. With `CONVLSTM_NOTEBOOK_SMALL=1` the model is too small and too briefly trained to beat
# the baseline.

# %%
scores = {
    "model": evaluate_dataset(result.state, val_inputs, val_targets, batch_size=config.batch_size),
    "copy last frame": baseline_metrics(val_inputs, val_targets, batch_size=config.batch_size),
}
print(f"{'':17}{'cross-entropy':>14}{'MSE':>10}{'MAE':>10}{'SSIM':>9}")
for name, values in scores.items():
    print(f"{name:17}{values['cross_entropy']:14.2f}{values['mse']:10.5f}{values['mae']:10.5f}{values['ssim']:9.4f}")
if not SMALL:
    assert scores["model"]["mse"] < scores["copy last frame"]["mse"], "the model does not beat the baseline"

# %% [markdown]
# ## Forecasts
#
# For three validation sequences: the input frames, the true future and the model's forecast
# (`predict`: the sigmoid of the logits). The baseline's forecast is the last input frame, repeated.
# After the full run, the forecast follows the digits' motion for the first frames as blurred shapes
# and fades further ahead.

# %%
count = min(3, len(val_inputs))
inputs, targets = to_unit(val_inputs[:count]), to_unit(val_targets[:count])
forecast = np.asarray(predict(result.state, inputs))
rows, labels = [], []
for n in range(count):
    rows += [inputs[n, ..., 0], targets[n, ..., 0], forecast[n, ..., 0]]
    labels += [f"#{n} input", f"#{n} truth", f"#{n} forecast"]
show_rows(rows, labels, f"Validation sequences after {int(result.state.step)} steps")

# %% [markdown]
# ## Learning curve
#
# From the run's `metrics.jsonl`: the loss of each training batch and of the validation set, and
# the validation MSE against the baseline's.

# %%
records = [json.loads(line) for line in (Path(result.workdir) / "metrics.jsonl").read_text().splitlines()]
steps_loss = [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]
validation = [r for r in records if r["kind"] == "val"]
(baseline_record,) = [r for r in records if r["kind"] == "baseline"]

fig, (loss_ax, mse_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
loss_ax.plot(*zip(*steps_loss), alpha=0.5, linewidth=1, label="training batch")
loss_ax.plot([r["step"] for r in validation], [r["cross_entropy"] for r in validation], "o-", label="validation")
loss_ax.set(xlabel="step", ylabel="cross-entropy per sequence", title="Loss")
mse_ax.plot([r["step"] for r in validation], [r["mse"] for r in validation], "o-", color="tab:orange", label="model")
mse_ax.axhline(baseline_record["mse"], color="gray", linestyle="--", label="copy the last frame")
mse_ax.set(xlabel="step", ylabel="MSE per pixel", title="Validation MSE")
mse_ax.set_ylim(bottom=0)
for ax in (loss_ax, mse_ax):
    ax.legend()
    ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## The same steps by hand
#
# `train` is a loop over public pieces, which another loop can use one by one: `make_optimizer`
# (the optax transformation), `create_train_state` (parameters initialised from the seed, the
# optimiser's state, step 0), and `train_step`, which returns the new state and the loss of the
# batch. A few steps from a fresh state, on the run's first batches, repeat the losses of its log:

# %%
state = create_train_state(model, make_optimizer(config), train_inputs, seed=config.seed)
for step in range(3):
    batch = batch_indices(len(train_inputs), config.batch_size, step, seed=config.seed)
    state, loss = train_step(state, to_unit(train_inputs[batch]), to_unit(train_targets[batch]))
    print(f"step {int(state.step)}: loss {float(loss):.2f}, in the run's log {steps_loss[step][1]:.2f}")

# %% [markdown]
# To keep the run, pass a folder of your own as `workdir`; this one is deleted.

# %%
workdir.cleanup()
