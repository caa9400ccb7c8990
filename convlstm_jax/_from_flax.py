"""Flax's own `flax.linen.ConvLSTMCell` parameters, as a `convlstm_jax.ConvLSTM` and its variables.

Flax's cell (`flax.linen.recurrent.ConvLSTMCell`) computes, with `*` its `Conv` (padding "SAME",
stride 1 for a state that keeps its size) and the carry `(c, h)`:

    [z_i, z_g, z_f, z_o] = (ih * X + b_ih) + (hh * H + b_hh)
    f = σ(z_f + 1),  C' = f ∘ C + σ(z_i) ∘ tanh(z_g),  H' = σ(z_o) ∘ tanh(C')

That is this library's cell with `peephole=None` and `forget_bias=1.0`: its one convolution over
[X, H] holds `ih`'s kernel then `hh`'s, its one bias is b_ih + b_hh, and its gates (i, f, o, g)
are Flax's (i, g, f, o) reordered. The carry is `(h, c)` here, `(c, h)` in Flax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._convert import to_numpy
from ._convlstm import ConvLSTM

_FLAX_GATES = ("i", "g", "f", "o")
_OUR_GATES = ("i", "f", "o", "g")
_ORDER = [_FLAX_GATES.index(gate) for gate in _OUR_GATES]  # our gate k is Flax's gate _ORDER[k]


def _natural(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(key))]


def _is_cell(tree: Any) -> bool:
    return (
        isinstance(tree, Mapping)
        and set(tree) >= {"ih", "hh"}
        and all(isinstance(tree[name], Mapping) and "kernel" in tree[name] for name in ("ih", "hh"))
    )


def find_cells(params: Any, path: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    """The `flax.linen.ConvLSTMCell` params in `params`, depth first, keys in natural order
    (`ConvLSTMCell_0`, `ConvLSTMCell_1`, ... or `RNN_0/cell`, ...): the layers of a stack."""
    if _is_cell(params):
        return [(path or "(top level)", params)]
    if not isinstance(params, Mapping):
        return []
    found = []
    for key in sorted(params, key=_natural):
        found += find_cells(params[key], f"{path}/{key}" if path else str(key))
    return found


def _reorder(values: np.ndarray) -> np.ndarray:
    """The last axis (4·hidden, gates (i, g, f, o)) in this library's gate order (i, f, o, g)."""
    blocks = np.split(values, 4, axis=-1)
    return np.concatenate([blocks[index] for index in _ORDER], axis=-1)


def from_flax(params: Mapping[str, Any], *, dtype: Any = None) -> tuple[ConvLSTM, dict[str, Any]]:
    """A `convlstm_jax.ConvLSTM` and its variables from Flax `nn.ConvLSTMCell` parameters.

    Args:
      params: the parameters of one `flax.linen.ConvLSTMCell` (`{"ih": ..., "hh": ...}`), or of a
        module holding several, such as a stack of `nn.RNN(nn.ConvLSTMCell(...))` layers
        (`{"params": {"ConvLSTMCell_0": ..., "ConvLSTMCell_1": ...}}`, or `RNN_0/cell`, ...): the
        cells, in the natural order of their names, are the stack's layers, layer l reading
        layer l - 1's outputs.
      dtype: the dtype of the returned params (default: as given).

    Returns:
      `(model, variables)`: a Linen `ConvLSTM` (`batch_first=True`, channels-last like Flax's,
      `peephole=None`, `forget_bias=1.0`) and `{"params": ...}` for `model.apply`. For inputs
      (B, T, *frame, C), `model.apply(variables, x)` returns `([outputs], [(h, c)])`: `outputs`
      is what the last layer's `nn.RNN` returns, and `(h, c)` that layer's final carry, which
      Flax orders `(c, h)` (`model.clone(return_all_layers=True)` returns every layer's).

    Flax's cell applies its `padding` and `strides` to both convolutions, so only "SAME" and stride
    1 keep the state's size from step to step; those are what this function assumes (the params
    do not hold them). Even kernels ("SAME" pads them unevenly) are refused, as are a cell whose
    `ih` and `hh` kernels differ in size, a layer whose input channels are not the layer below's
    hidden channels, and a stack mixing cells with and without biases.

    Raises:
      TypeError: `params` is not a mapping.
      ValueError: it holds no `ConvLSTMCell` params, or what it holds cannot be represented.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import flax.linen as nn
      >>> from convlstm_jax import from_flax
      >>> flax_model = nn.RNN(nn.ConvLSTMCell(features=8, kernel_size=(3, 3)))
      >>> x = jnp.ones((2, 5, 16, 16, 3))
      >>> flax_variables = flax_model.init(jax.random.key(0), x)
      >>> model, variables = from_flax(flax_variables)
      >>> [outputs], [(h, c)] = model.apply(variables, x)
      >>> outputs.shape, h.shape
      ((2, 5, 16, 16, 8), (2, 16, 16, 8))
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of Flax parameters, got {type(params).__name__}.")
    cells = find_cells(params["params"] if "params" in params else params)
    if not cells:
        raise ValueError(
            "params hold no flax.linen.ConvLSTMCell parameters (a mapping with 'ih' and 'hh' convolutions, "
            f"each with a 'kernel'); got top-level keys {sorted(map(str, params))}."
        )
    problems, layers, biases = [], [], set()
    for path, cell in cells:
        ih, hh = to_numpy(cell["ih"]["kernel"]), to_numpy(cell["hh"]["kernel"])
        rank = ih.ndim - 2
        hidden = hh.shape[-1] // 4
        kernel = tuple(ih.shape[:-2])
        if hh.ndim != ih.ndim or tuple(hh.shape[:-2]) != kernel:
            problems.append(f"{path}: ih's kernel is {ih.shape} and hh's {hh.shape}: not one kernel size")
            continue
        if hh.shape[-1] % 4 or ih.shape[-1] != hh.shape[-1] or hh.shape[-2] != hidden:
            problems.append(f"{path}: kernels {ih.shape} and {hh.shape} are not (*k, C, 4·h) and (*k, h, 4·h)")
            continue
        if any(k % 2 == 0 for k in kernel):
            problems.append(f"{path}: even kernel {kernel} (Flax pads it unevenly; this library has odd kernels only)")
        if layers and ih.shape[-2] != layers[-1]["hidden"]:
            problems.append(
                f"{path}: reads {ih.shape[-2]} channels, but the layer below has {layers[-1]['hidden']} hidden channels"
            )
        if layers and rank != layers[-1]["rank"]:
            problems.append(f"{path}: a {rank}-D kernel after {layers[-1]['rank']}-D ones")
        with_bias = {"bias" in cell["ih"], "bias" in cell["hh"]}
        if len(with_bias) != 1:
            problems.append(f"{path}: a bias on one of ih and hh only (Flax's use_bias sets both)")
        biases |= with_bias
        layers.append({"path": path, "cell": cell, "rank": rank, "kernel": kernel, "hidden": hidden})
    if len(biases) > 1:
        problems.append("cells with biases and cells without (this library's bias is one for the stack)")
    if problems:
        raise ValueError(
            "These Flax ConvLSTMCell params cannot be represented:\n  - " + "\n  - ".join(dict.fromkeys(problems))
        )
    bias = biases.pop()
    model = ConvLSTM(
        to_numpy(layers[0]["cell"]["ih"]["kernel"]).shape[-2],
        [layer["hidden"] for layer in layers],
        [layer["kernel"] for layer in layers],
        len(layers),
        batch_first=True,
        bias=bias,
        peephole=None,
        forget_bias=1.0,
        spatial_dims=layers[0]["rank"],
    )
    converted = {}
    for index, layer in enumerate(layers):
        cell = layer["cell"]
        ours = {
            "input_to_state": {"kernel": _reorder(to_numpy(cell["ih"]["kernel"]))},
            "state_to_state": {"kernel": _reorder(to_numpy(cell["hh"]["kernel"]))},
        }
        if bias:
            ours["input_to_state"]["bias"] = _reorder(to_numpy(cell["ih"]["bias"]) + to_numpy(cell["hh"]["bias"]))
        if dtype is not None:
            ours = {name: {k: v.astype(dtype) for k, v in conv.items()} for name, conv in ours.items()}
        converted[f"cell_{index}"] = ours
    return model, {"params": converted}


__all__ = ["find_cells", "from_flax"]
