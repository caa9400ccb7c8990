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
# # From a PyTorch ConvLSTM to JAX, checked
#
# A `convlstm_torch.ConvLSTM` (the state_dict keys of KL4805/ConvLSTM-Pytorch) is converted with
# `convlstm_jax.torch_to_flax`; both models run on the same input, in float32, and are held to the
# library's tolerance policy (`convlstm_common.tolerance`): outputs, final states, and the gradient of
# a loss with respect to the input. The last step converts the weights back and loads them into
# PyTorch.
#
# To check your own weights, set `HYPERPARAMETERS` to your model's and load your state_dict into
# `torch_model`; `convlstm-parity --checkpoint model.pt` runs the same comparison from the command
# line.

# %%
import copy
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import torch

import convlstm_jax
import convlstm_torch
from convlstm_common.tolerance import tolerance_for

# %% tags=["parameters"]
SMALL = os.environ.get("CONVLSTM_NOTEBOOK_SMALL") == "1"  # smaller sizes, for the test suite
BATCH, STEPS, HEIGHT, WIDTH = (2, 4, 12, 12) if SMALL else (4, 8, 24, 24)
SEED = 0

# %% [markdown]
# ## A PyTorch model and an input
#
# Two layers, 1 -> 16 -> 8 channels, 3x3 kernels, convolutional peepholes (`peephole="conv"`,
# the layout of KL4805/ConvLSTM-Pytorch checkpoints). The input is batch-first, `(B, T, C, H, W)`.

# %%
HYPERPARAMETERS = dict(input_dim=1, hidden_dim=[16, 8], kernel_size=(3, 3), num_layers=2, batch_first=True)

torch.manual_seed(SEED)
torch_model = convlstm_torch.ConvLSTM(**HYPERPARAMETERS, peephole="conv")
x = torch.randn(BATCH, STEPS, 1, HEIGHT, WIDTH)
{key: tuple(value.shape) for key, value in torch_model.state_dict().items()}

# %% [markdown]
# ## Converting the weights
#
# The JAX model takes the same hyperparameters. `torch_to_flax` reads the architecture from the
# state_dict; with `model=` it also holds the weights to that model and raises one `ValueError`
# listing every missing, unexpected or mis-shaped key. Conversion only slices and transposes:
# kernels go from PyTorch's `(out, in, kh, kw)` to Flax's `(kh, kw, in, out)`.

# %%
jax_model = convlstm_jax.ConvLSTM(**HYPERPARAMETERS, peephole="conv")
variables = convlstm_jax.torch_to_flax(torch_model.state_dict(), model=jax_model)
jax.tree.map(jnp.shape, variables)

# %% [markdown]
# ## Running both
#
# The JAX model is channels-last by default: frames are `(H, W, C)`, so the input is transposed on
# the way in and the results on the way out (`channels_last=False` would take PyTorch's layout
# as it is). JAX runs under `jax.default_matmul_precision("highest")`: on a GPU or TPU, the default
# precision may compute float32 convolutions in TF32 or bfloat16 passes, whose errors are far larger
# than the policy allows.
#
# The tolerance policy bounds each float32 run's error against the reference in float64, so the
# PyTorch model also runs in float64.

# %%
reference_model = copy.deepcopy(torch_model).double()
with torch.no_grad():
    torch_outputs, torch_states = torch_model(x)
    reference_outputs, reference_states = reference_model(x.double())

x_jax = jnp.asarray(x.numpy().transpose(0, 1, 3, 4, 2))  # (B, T, H, W, C)
with jax.default_matmul_precision("highest"):
    jax_outputs, jax_states = jax.jit(jax_model.apply)(variables, x_jax)


def channels_first(array, axis):
    """A channels-last JAX result in PyTorch's layout, with the channels at `axis`."""
    return np.moveaxis(np.asarray(array), -1, axis)


expected = {
    "output": reference_outputs[-1].numpy(),
    "h": reference_states[-1][0].numpy(),
    "c": reference_states[-1][1].numpy(),
}
torch_results = {
    "output": torch_outputs[-1].numpy(),
    "h": torch_states[-1][0].numpy(),
    "c": torch_states[-1][1].numpy(),
}
jax_results = {
    "output": channels_first(jax_outputs[-1], 2),
    "h": channels_first(jax_states[-1][0], 1),
    "c": channels_first(jax_states[-1][1], 1),
}
{name: value.shape for name, value in jax_results.items()}

# %% [markdown]
# ## Comparing with the tolerance policy
#
# A float32 result passes when `|actual - expected| <= atol + rtol * |expected|` everywhere.
# The table shows each run's largest difference from the float64 reference and, in brackets, its
# score: the worst difference as a fraction of the allowed bound (passes at <= 1).

# %%
FLOAT32 = tolerance_for("float32")
print(FLOAT32)


def report(expected, runs):
    """Prints a table of differences from `expected` and asserts that every run passes."""
    print(f"{'run':14}" + "".join(f"{name:>20}" for name in expected))
    for label, results in runs.items():
        row = f"{label:14}"
        for name, reference in expected.items():
            score = FLOAT32.score(results[name], reference)
            assert score <= 1, f"{label} {name}: {score:.2f} times the float32 bound"
            row += f"{np.max(np.abs(results[name] - reference)):>12.1e} ({score:.3f})"
        print(row)


report(expected, {"torch float32": torch_results, "jax float32": jax_results})

# %% [markdown]
# The two float32 runs differ from each other by about as much as each differs from the reference:

# %%
{name: float(np.max(np.abs(jax_results[name] - torch_results[name]))) for name in expected}

# %% [markdown]
# ## Where the differences are
#
# For the first sample: the last layer's output in both frameworks at a few time steps and
# channels, and their absolute difference. What differs is float32 rounding, scattered over the
# frame: no pattern at the borders (where the zero padding acts) or in time.

# %%
steps = sorted({0, STEPS // 2, STEPS - 1})
channels = [0, HYPERPARAMETERS["hidden_dim"][-1] - 1]
rows = [(t, channel) for t in steps for channel in channels]
fig, axes = plt.subplots(len(rows), 3, figsize=(9, 2.4 * len(rows)), layout="constrained", squeeze=False)
for (t, channel), row in zip(rows, axes):
    torch_frame = torch_results["output"][0, t, channel]
    jax_frame = jax_results["output"][0, t, channel]
    low, high = np.min(torch_frame), np.max(torch_frame)
    for ax, frame, title in zip(row[:2], (torch_frame, jax_frame), ("PyTorch", "JAX")):
        image = ax.imshow(frame, vmin=low, vmax=high)
        ax.set_title(f"{title}, t={t}, channel {channel}", fontsize=9)
    fig.colorbar(image, ax=row[:2], shrink=0.8)
    difference = row[2].imshow(np.abs(jax_frame - torch_frame), cmap="magma")
    row[2].set_title("|JAX - PyTorch|", fontsize=9)
    fig.colorbar(difference, ax=row[2], shrink=0.8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# ## Gradients
#
# The loss is a fixed random read-out of every output, `sum(probe * output)`; its gradient with
# respect to the input goes back through every time step and both layers. PyTorch's autograd and
# `jax.grad` are held to the same policy.

# %%
probe = torch.randn(torch_results["output"].shape, generator=torch.Generator().manual_seed(SEED + 1))


def torch_input_gradient(model, x):
    x = x.clone().requires_grad_(True)
    outputs, _ = model(x)
    (gradient,) = torch.autograd.grad(torch.sum(outputs[-1] * probe.to(x.dtype)), x)
    return gradient.numpy()


probe_jax = jnp.asarray(np.moveaxis(probe.numpy(), 2, -1))  # (B, T, H, W, hidden)


def jax_loss(x):
    outputs, _ = jax_model.apply(variables, x)
    return jnp.sum(outputs[-1] * probe_jax)


with jax.default_matmul_precision("highest"):
    jax_gradient = jax.jit(jax.grad(jax_loss))(x_jax)

report(
    {"grad input": torch_input_gradient(reference_model, x.double())},
    {
        "torch float32": {"grad input": torch_input_gradient(torch_model, x)},
        "jax float32": {"grad input": channels_first(jax_gradient, 2)},
    },
)

# %% [markdown]
# ## Back to PyTorch
#
# `flax_to_torch` gives the reference's state_dict (NumPy arrays); it loads with `strict=True`
# into a fresh PyTorch model, and the round trip gives back the same bits.

# %%
state_dict = convlstm_jax.flax_to_torch(variables)
restored = convlstm_torch.ConvLSTM(**HYPERPARAMETERS, peephole="conv")
print(restored.load_state_dict({key: torch.tensor(value) for key, value in state_dict.items()}, strict=True))
assert all(torch.equal(restored.state_dict()[key], value) for key, value in torch_model.state_dict().items())
print("torch -> Flax -> torch: every weight bit-identical")
