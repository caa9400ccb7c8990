"""Flax's own `flax.linen.ConvLSTMCell` params, as a `convlstm_jax.ConvLSTM` (or `Bidirectional`) and its variables.

Flax's cell (`flax.linen.recurrent.ConvLSTMCell`) computes, with `*` its `Conv` (padding "SAME",
stride 1 for a state that keeps its size) and the carry `(c, h)`:

    [z_i, z_g, z_f, z_o] = (ih * X + b_ih) + (hh * H + b_hh)
    f = σ(z_f + 1),  C' = f ∘ C + σ(z_i) ∘ tanh(z_g),  H' = σ(z_o) ∘ tanh(C')

That is this library's cell with `peephole=None` and `forget_bias=1.0`: its one convolution over
[X, H] holds `ih`'s kernel then `hh`'s, its one bias is b_ih + b_hh, and its gates (i, f, o, g)
are Flax's (i, g, f, o) reordered. The carry is `(h, c)` here, `(c, h)` in Flax.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from .._bidirectional import Bidirectional
from .._convert import to_numpy
from .._convlstm import ConvLSTM

_FLAX_GATES = ("i", "g", "f", "o")
_OUR_GATES = ("i", "f", "o", "g")
_ORDER = [_FLAX_GATES.index(gate) for gate in _OUR_GATES]  # our gate k is Flax's gate _ORDER[k]


_AUTO_NAME = re.compile(r"(.+)_(\d+)")  # Flax's names for unnamed submodules: `ConvLSTMCell_0`, `RNN_1`, `layers_2`
_DIRECTIONS = ("forward_rnn", "backward_rnn")  # `flax.linen.Bidirectional`'s submodules
_CELL_PARAMS = {"ih": ("kernel", "bias"), "hh": ("kernel", "bias")}


def _is_cell(tree: Any) -> bool:
    return (
        isinstance(tree, Mapping)
        and set(tree) >= {"ih", "hh"}
        and all(isinstance(tree[name], Mapping) and "kernel" in tree[name] for name in ("ih", "hh"))
    )


def _holds_cell(tree: Any) -> bool:
    return _is_cell(tree) or (isinstance(tree, Mapping) and any(_holds_cell(value) for value in tree.values()))


def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _call_order(keys: list[Any]) -> list[Any] | None:
    """`keys` (siblings holding cells) in the order the module called them, or None where it cannot be known.

    Flax creates params in call order, and `model.init` returns them so. `jax.tree.map`,
    `flax.serialization.msgpack_restore` and other pytree rebuilds sort the keys: keys in an order other
    than the sorted one are as created; sorted ones are in call order only where the names say so
    (Flax's own names count the calls: `RNN_0`, `RNN_1`, ..., `RNN_10`).
    """
    if len(keys) < 2 or keys != sorted(keys, key=str):
        return keys
    auto = [_AUTO_NAME.fullmatch(str(key)) for key in keys]
    if all(auto) and len({match[1] for match in auto}) == 1:
        return sorted(keys, key=lambda key: int(_AUTO_NAME.fullmatch(str(key))[2]))
    return None


def _walk(tree: Mapping[str, Any], path: str, found: dict[str, list]) -> list[tuple]:
    """The layers under `tree` in call order: `("cell", path, params)` or `("bidirectional", path, forward, backward)`.

    Appends to `found["problems"]` what is not a chain of cells and to `found["unordered"]` the
    levels whose order cannot be known.
    """
    problems = found["problems"]
    if _is_cell(tree):
        for name in tree:
            allowed = _CELL_PARAMS.get(name)
            if allowed is None:
                problems.append(f"{_join(path, name)}: not a param of a flax.linen.ConvLSTMCell (ih and hh)")
                continue
            problems += [
                f"{_join(path, f'{name}/{key}')}: not a param of a flax.linen.ConvLSTMCell's {name} (kernel and bias)"
                for key in tree[name]
                if key not in allowed
            ]
        return [("cell", path or "(top level)", tree)]
    if set(tree) == set(_DIRECTIONS):
        directions = []
        for direction in _DIRECTIONS:
            side = tree[direction]
            cells = _walk(side, _join(path, direction), found) if isinstance(side, Mapping) else []
            if len(cells) != 1 or cells[0][0] != "cell":
                problems.append(
                    f"{_join(path, direction)}: {len(cells)} cells: a flax.linen.Bidirectional of one "
                    "nn.RNN(nn.ConvLSTMCell) each way is what this library's Bidirectional holds"
                )
                return []
            directions.append(cells[0])
        return [("bidirectional", path or "(top level)", *directions)]
    holders = []
    for key, value in tree.items():
        if _holds_cell(value):
            holders.append(key)
        elif not isinstance(value, Mapping) or jax.tree.leaves(value):
            names = sorted(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
            problems.append(f"{_join(path, key)}: {names}, not a flax.linen.ConvLSTMCell's params")
    ordered = _call_order(holders)
    if ordered is None:
        found["unordered"].append(f"{path or '(top level)'} ({', '.join(map(str, holders))})")
        ordered = holders
    layers = []
    for key in ordered:
        layers += _walk(tree[key], _join(path, key), found)
    return layers


def _reorder(values: np.ndarray) -> np.ndarray:
    """The last axis (4·hidden, gates (i, g, f, o)) in this library's gate order (i, f, o, g)."""
    blocks = np.split(values, 4, axis=-1)
    return np.concatenate([blocks[index] for index in _ORDER], axis=-1)


def _read_cell(path: str, cell: Mapping[str, Any], problems: list[str]) -> dict[str, Any] | None:
    """One cell's sizes, or None (with the reason in `problems`) where its kernels are not a cell's."""
    ih, hh = to_numpy(cell["ih"]["kernel"]), to_numpy(cell["hh"]["kernel"])
    hidden = hh.shape[-1] // 4
    kernel = tuple(ih.shape[:-2])
    if hh.ndim != ih.ndim or tuple(hh.shape[:-2]) != kernel:
        problems.append(f"{path}: ih's kernel is {ih.shape} and hh's {hh.shape}: not one kernel size")
        return None
    if hh.shape[-1] % 4 or ih.shape[-1] != hh.shape[-1] or hh.shape[-2] != hidden:
        problems.append(f"{path}: kernels {ih.shape} and {hh.shape} are not (*k, C, 4·h) and (*k, h, 4·h)")
        return None
    if any(k % 2 == 0 for k in kernel):
        problems.append(f"{path}: even kernel {kernel} (Flax pads it unevenly; this library has odd kernels only)")
    with_bias = {"bias" in cell["ih"], "bias" in cell["hh"]}
    if len(with_bias) != 1:
        problems.append(f"{path}: a bias on one of ih and hh only (Flax's use_bias sets both)")
    return {
        "path": path,
        "cell": cell,
        "rank": ih.ndim - 2,
        "kernel": kernel,
        "channels": ih.shape[-2],
        "hidden": hidden,
        "bias": "bias" in cell["ih"],
    }


def _check_stack(layers: list[dict[str, Any]], problems: list[str]) -> None:
    for below, layer in itertools.pairwise(layers):
        if layer["channels"] != below["hidden"]:
            problems.append(
                f"{layer['path']}: reads {layer['channels']} channels, but the layer below has {below['hidden']} "
                "hidden channels"
            )
        if layer["rank"] != below["rank"]:
            problems.append(f"{layer['path']}: a {layer['rank']}-D kernel after {below['rank']}-D ones")
    if len({layer["bias"] for layer in layers}) > 1:
        problems.append("cells with biases and cells without (this library's bias is one for the stack)")


def _describe(layer: dict[str, Any]) -> str:
    bias = "" if layer["bias"] else " without bias"
    return f"{layer['hidden']} hidden channels, {layer['channels']} input channels and kernel {layer['kernel']}{bias}"


def _check_directions(forward: dict[str, Any], backward: dict[str, Any], problems: list[str]) -> None:
    if _describe(forward) != _describe(backward):
        problems.append(
            f"{backward['path']}: {_describe(backward)}, where {forward['path']} has {_describe(forward)} "
            "(this library's Bidirectional runs one layer's copy each way)"
        )


def _stack_model(layers: list[dict[str, Any]]) -> ConvLSTM:
    return ConvLSTM(
        layers[0]["channels"],
        [layer["hidden"] for layer in layers],
        [layer["kernel"] for layer in layers],
        len(layers),
        batch_first=True,
        bias=layers[0]["bias"],
        peephole=None,
        forget_bias=1.0,
        spatial_dims=layers[0]["rank"],
    )


def _convert(layers: list[dict[str, Any]], dtype: Any) -> dict[str, Any]:
    converted = {}
    for index, layer in enumerate(layers):
        cell = layer["cell"]
        ours = {
            "input_to_state": {"kernel": _reorder(to_numpy(cell["ih"]["kernel"]))},
            "state_to_state": {"kernel": _reorder(to_numpy(cell["hh"]["kernel"]))},
        }
        if layer["bias"]:
            ours["input_to_state"]["bias"] = _reorder(to_numpy(cell["ih"]["bias"]) + to_numpy(cell["hh"]["bias"]))
        if dtype is not None:
            ours = {name: {k: v.astype(dtype) for k, v in conv.items()} for name, conv in ours.items()}
        converted[f"cell_{index}"] = ours
    return converted


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise ValueError(
            "These Flax ConvLSTMCell params cannot be represented:\n  - " + "\n  - ".join(dict.fromkeys(problems))
        )


def _in_order(layers: list[tuple], order: Sequence[str] | None, unordered: list[str]) -> list[tuple]:
    """`layers` in call order: as found, or as `order` names them."""
    paths = [layer[1] for layer in layers]
    if order is None:
        if unordered:
            raise ValueError(
                f"from_flax cannot tell in which order the module calls the cells under {'; '.join(unordered)}: "
                "their keys are sorted (jax.tree.map, flax.serialization.msgpack_restore and other pytree rebuilds "
                "sort them) and are not Flax's own numbered names; pass the params as model.init returns them, "
                f"or pass order= with the cells' paths in call order (they are {paths})."
            )
        return layers
    if any(layer[0] == "bidirectional" for layer in layers):
        raise ValueError(
            f"order= names the layers of a stack; {paths[0]} is a Bidirectional, whose directions are its "
            "forward_rnn and backward_rnn."
        )
    if sorted(order) != sorted(paths):
        raise ValueError(f"order names {list(order)}; the params hold the cells {paths}: name each of them once.")
    by_path = dict(zip(paths, layers))
    return [by_path[path] for path in order]


def from_flax(
    params: Mapping[str, Any], *, order: Sequence[str] | None = None, dtype: Any = None
) -> tuple[ConvLSTM | Bidirectional, dict[str, Any]]:
    """A `convlstm_jax.ConvLSTM` or `convlstm_jax.Bidirectional`, and its variables, from Flax `nn.ConvLSTMCell` params.

    Reads the params of one `flax.linen.ConvLSTMCell`, of a chain of them (a stack of
    `nn.RNN(nn.ConvLSTMCell(...))` layers, in a compact module, an `nn.Sequential`, nested modules,
    `nn.scan`-lifted cells), or of one `flax.linen.Bidirectional` of two `nn.RNN(nn.ConvLSTMCell)`
    (its `forward_rnn` and `backward_rnn`). A stack's layers are its cells in the order the module
    calls them, layer l reading layer l - 1's outputs: the order of the params' keys, which Flax
    creates in call order and `model.init`, `flax.core.freeze` and `flax.serialization.to_state_dict`
    keep. `jax.tree.map`, `flax.serialization.msgpack_restore` and other pytree rebuilds sort the keys:
    sorted keys are read in call order only where Flax's own names count the calls (`RNN_0`, `RNN_1`,
    ..., `layers_10`); elsewhere (cells named by the user) `order` must say it.

    What the params do not hold is assumed: nn.RNN's defaults (forward in time, batch first); for a
    Bidirectional, Flax's default `merge_fn` (concatenation, forward first) and both directions
    reading the same input. A `nn.Bidirectional` made inside an `@nn.compact` method leaves no trace
    in the params (its two cells are `ConvLSTMCell_0` and `ConvLSTMCell_1` of the module), so it
    reads as a two-layer stack: make it in `setup` or at the top level (`bi/forward_rnn/...`).

    Flax's cell applies its `padding` and `strides` to both convolutions, so only "SAME" and stride
    1 keep the state's size from step to step; those are what this function assumes.

    Args:
      params: Flax variables (`{"params": ...}`, a dict or `FrozenDict`) or their `params`.
      order: the cells' paths (such as `["encoder", "decoder"]` or `["block/ConvLSTMCell_0", ...]`)
        in the order the module calls them, where the keys cannot say it.
      dtype: the dtype of the returned params (default: as given).

    Returns:
      `(model, variables)`: a Linen module (`batch_first=True`, channels-last like Flax's,
      `peephole=None`, `forget_bias=1.0`) and `{"params": ...}` for `model.apply`; for inputs
      (B, T, *frame, C):

      - a stack or cell gives a `ConvLSTM`: `[outputs], [(h, c)] = model.apply(variables, x)`,
        `outputs` what the last `nn.RNN` returns and `(h, c)` its final carry, which Flax orders
        `(c, h)` (`model.clone(return_all_layers=True)` returns every layer's);
      - a `flax.linen.Bidirectional` gives a `Bidirectional(ConvLSTM(...), merge="concat")`:
        `[outputs], ([forward], [backward]) = model.apply(variables, x)`, `outputs` Flax's (the two
        directions concatenated on the last axis) and `forward`, `backward` the final `(h, c)` of
        Flax's `(carry_forward, carry_backward)`.

    Raises:
      TypeError: `params` is not a mapping, or `order` not a sequence of str.
      ValueError: the params hold no `ConvLSTMCell`, or what they hold is not one cell, a chain of
        cells or one Bidirectional of one cell each way (the message names each such path: another
        module's params, another variable collection, a Bidirectional among other layers, directions
        of different sizes, an even kernel, `ih` and `hh` kernels of different sizes, a layer whose
        input channels are not the layer below's hidden channels, cells with and without biases);
        keys whose call order cannot be known, without `order`; an `order` naming other cells.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import flax.linen as nn
      >>> from convlstm_jax import from_flax
      >>> flax_model = nn.Bidirectional(nn.RNN(nn.ConvLSTMCell(8, (3, 3))), nn.RNN(nn.ConvLSTMCell(8, (3, 3))))
      >>> x = jnp.ones((2, 5, 16, 16, 3))
      >>> model, variables = from_flax(flax_model.init(jax.random.key(0), x))
      >>> [outputs], ([forward], [backward]) = model.apply(variables, x)
      >>> outputs.shape, forward[0].shape
      ((2, 5, 16, 16, 16), (2, 16, 16, 8))
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of Flax parameters, got {type(params).__name__}.")
    if order is not None and (isinstance(order, str) or not all(isinstance(path, str) for path in order)):
        raise TypeError(f"order must be a sequence of the cells' paths (str), got {order!r}.")
    problems: list[str] = []
    tree = params
    if "params" in params and not _is_cell(params):
        tree = params["params"]
        problems += [
            f"{key}: a variable collection other than 'params' (a flax.linen.ConvLSTMCell has params only)"
            for key in params
            if key != "params"
        ]
        if not isinstance(tree, Mapping):
            raise TypeError(f"params['params'] must be a mapping of Flax parameters, got {type(tree).__name__}.")
    found: dict[str, list] = {"problems": problems, "unordered": []}
    layers = _walk(tree, "", found)
    if not _holds_cell(tree):
        raise ValueError(
            "params hold no flax.linen.ConvLSTMCell parameters (a mapping with 'ih' and 'hh' convolutions, "
            f"each with a 'kernel'); got top-level keys {sorted(map(str, params))}."
        )
    bidirectional = [layer for layer in layers if layer[0] == "bidirectional"]
    if bidirectional and len(layers) > 1:
        problems.append(
            f"{bidirectional[0][1]}: a Bidirectional among other layers (this library's Bidirectional runs a whole "
            "stack each way, where Flax's merges the two directions before the next layer)"
        )
    _raise_problems(problems)
    layers = _in_order(layers, order, found["unordered"])
    if bidirectional:
        _, _, (_, forward_path, forward_cell), (_, backward_path, backward_cell) = bidirectional[0]
        forward = _read_cell(forward_path, forward_cell, problems)
        backward = _read_cell(backward_path, backward_cell, problems)
        if forward and backward:
            _check_directions(forward, backward, problems)
        _raise_problems(problems)
        model = Bidirectional(_stack_model([forward]), merge="concat")
        converted = {"forward_layer": _convert([forward], dtype), "backward_layer": _convert([backward], dtype)}
        return model, {"params": converted}
    read = [_read_cell(path, cell, problems) for _, path, cell in layers]
    _check_stack([layer for layer in read if layer], problems)
    _raise_problems(problems)
    return _stack_model(read), {"params": _convert(read, dtype)}


__all__ = ["from_flax"]
