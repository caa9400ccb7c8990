"""OpenSTL's ConvLSTM (chengtan9907/OpenSTL) as this library's Linen modules, with its weights.

`from_openstl` reads the state_dict of OpenSTL's `ConvLSTM_Model` (or of its `cell_list` alone) and
returns a Linen module of this library and the variables for its `apply`:

- only cells (`cell_list.<l>.*`): a `convlstm_jax.ConvLSTM` (`channels_last=True`,
  `batch_first=True`, `bias=False`, `peephole=None`, `layer_norm` as the weights say), whose
  `layer_outputs[0]` is every step of the last layer, what OpenSTL's stack computes;
- the whole model (`cell_list.*` and `conv_last.weight`): a `FramePredictor`, OpenSTL's frame model
  with its patches, its stack, its 1x1 output convolution and its autoregressive rollout.

How OpenSTL's keys map (l a layer; `.1.*` only in cells with `layer_norm`):

| OpenSTL key                         | this library                                         |
| ----------------------------------- | ---------------------------------------------------- |
| `cell_list.l.conv_x.0.weight`       | `cell_l/input_to_state/kernel`                       |
| `cell_list.l.conv_h.0.weight`       | `cell_l/state_to_state/kernel`                       |
| `cell_list.l.conv_x.1.{weight,bias}`| `cell_l/input_norm/{scale,bias}`                     |
| `cell_list.l.conv_h.1.{weight,bias}`| `cell_l/state_norm/{scale,bias}`                     |
| `conv_last.weight`                  | `output/kernel` (`FramePredictor`)                   |
| `cell_list.l.conv_o.*`              | none: the cell's forward never uses them             |
| `cell_list.l.conv_last.weight`      | none: the cell's forward never uses it               |

OpenSTL's gates are ordered (i, f, g, o) along the 4·hidden channels, this library's (i, f, o, g):
the convolutions' output channels and the norms' channels are reordered (a layer norm's mean and
variance are over all 4·hidden channels at once, so reordering them changes nothing else). OpenSTL's
cell has no biases and no peepholes, and its `_forget_bias` attribute is not used by its forward.
OpenSTL's patches order a patch's channels (row, column, channel) (its `reshape_patch`); this
library's `space_to_depth` orders them (channel, row, column), as `torch.nn.functional.pixel_unshuffle`
does: `from_openstl` reorders the first layer's input channels and the output convolution's channels
for a `FramePredictor`, which cuts frames with `space_to_depth`. A `ConvLSTM` read from cells alone
keeps OpenSTL's input channels: feed it `openstl_patches(frames, patch_size)`.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype, PrecisionLike

from convlstm_common import resolve_kernel

from ._cell import ConvLSTMCell, check_floating, torch_default_init
from ._conv import check_conv_gradient
from ._convert import _is_float, kernel_to_flax, to_numpy, torch_to_flax
from ._convlstm import ConvLSTM
from .models import depth_to_space, space_to_depth

_WRAPPERS = ("state_dict", "model", "model_state_dict")
"""Entries of a checkpoint dict that hold the weights (Lightning's, OpenSTL's trainer's, common ones)."""

_PREFIXES = ("model.", "module.")
"""Key prefixes that are stripped: OpenSTL's method holds its model as `model`; DataParallel and
DistributedDataParallel add `module.`."""

_CELL_KEY = re.compile(r"^cell_list\.(\d+)\.(.+)$")
_USED = {
    "conv_x.0.weight": "input kernel",
    "conv_h.0.weight": "state kernel",
    "conv_x.1.weight": "input norm",
    "conv_x.1.bias": "input norm",
    "conv_h.1.weight": "state norm",
    "conv_h.1.bias": "state norm",
}
_NORMS = ("conv_x.1.weight", "conv_x.1.bias", "conv_h.1.weight", "conv_h.1.bias")
_UNUSED = re.compile(r"^(conv_o\.(0\.weight|1\.weight|1\.bias)|conv_last\.weight)$")
_OUTPUT = "conv_last.weight"


def openstl_gates_to_library(array: Any, axis: int = 0) -> np.ndarray:
    """Reorders the gate blocks along `axis` from OpenSTL's (i, f, g, o) to this library's (i, f, o, g).

    >>> openstl_gates_to_library(np.arange(8)).tolist()
    [0, 1, 2, 3, 6, 7, 4, 5]
    """
    i, f, g, o = np.split(np.asarray(array), 4, axis=axis)
    return np.concatenate([i, f, o, g], axis=axis)


def openstl_patch_order(patch_size: int, channels: int) -> np.ndarray:
    """For each channel of a `space_to_depth` patch, the channel of OpenSTL's patch that holds the same pixel.

    OpenSTL's `reshape_patch` puts pixel (row r, column c, channel k) of a p x p patch at channel
    (r·p + c)·C + k; `space_to_depth` puts it at k·p·p + r·p + c. `openstl_patches(x, p)[...,
    order]` is `space_to_depth(x, p)`.

    >>> openstl_patch_order(2, 2).tolist()
    [0, 2, 4, 6, 1, 3, 5, 7]
    """
    return (
        np.arange(patch_size * patch_size * channels)
        .reshape(patch_size, patch_size, channels)
        .transpose(2, 0, 1)
        .ravel()
    )


def openstl_patches(frames: jax.Array, patch_size: int) -> jax.Array:
    """Cuts (..., H, W, C) frames into patches as OpenSTL's `reshape_patch` does: (..., H/p, W/p, p·p·C).

    A patch's channels are ordered (row, column, channel), not `space_to_depth`'s (channel, row, column).

    Example:
      >>> import jax.numpy as jnp
      >>> openstl_patches(jnp.arange(32.0).reshape(4, 4, 2), 2)[0, 0].tolist()
      [0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0]
    """
    *lead, height, width, channels = frames.shape
    p, n = patch_size, len(lead)
    x = frames.reshape(*lead, height // p, p, width // p, p, channels)
    x = jnp.transpose(x, (*range(n), n, n + 2, n + 1, n + 3, n + 4))  # (..., H/p, W/p, p, p, C)
    return x.reshape(*lead, height // p, width // p, p * p * channels)


def openstl_unpatch(patches: jax.Array, patch_size: int) -> jax.Array:
    """The inverse of `openstl_patches` (OpenSTL's `reshape_patch_back`): (..., H/p, W/p, p·p·C) -> (..., H, W, C)."""
    *lead, rows, columns, depth = patches.shape
    p, n = patch_size, len(lead)
    x = patches.reshape(*lead, rows, columns, p, p, depth // (p * p))
    x = jnp.transpose(x, (*range(n), n, n + 2, n + 1, n + 3, n + 4))  # (..., H/p, p, W/p, p, C)
    return x.reshape(*lead, rows * p, columns * p, depth // (p * p))


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__}).")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}.")
    return int(value)


class FramePredictor(nn.Module):
    """OpenSTL's ConvLSTM frame model (`ConvLSTM_Model`): patches, a ConvLSTM stack, a 1x1 output
    convolution and an autoregressive rollout, channels-last.

    Frames (B, T, H, W, C) are cut into p x p patches (`space_to_depth`, (B, T, H/p, W/p, C·p·p)).
    At each step t of `pre_seq_length + aft_seq_length - 1`, the stack's first layer reads frame t
    for t < `pre_seq_length`, and after that its own previous prediction (or, with `mask`, a mix of
    the two: `mask·frame + (1 - mask)·prediction`, OpenSTL's scheduled sampling); each layer reads
    the hidden state of the layer below; a 1x1 convolution without bias maps the last layer's
    hidden state to the next frame's patches. The cells are this library's `ConvLSTMCell` without
    biases or peepholes (`bias=False`, `peephole=None`), with `layer_norm` as OpenSTL's
    `layer_norm` option.

    `__call__` returns every generated frame, (B, pre_seq_length + aft_seq_length - 1, H, W, C):
    frame t + 1's prediction at index t, as OpenSTL's model returns them (its training loss is
    their mean squared error against `frames[:, 1:]`). The forecast, what OpenSTL's method returns
    at test time, is the last `aft_seq_length` of them.

    `convlstm_jax.from_openstl` reads an OpenSTL checkpoint into this model. Its params are
    `cell_0`, ..., `cell_<L-1>` (those of a `convlstm_jax.ConvLSTM` with the same layers) and
    `output/kernel` (1, 1, hidden_dim[-1], C·p·p).

    Attributes:
      hidden_dim: each layer's hidden channels (OpenSTL's `num_hidden`).
      kernel_size: the kernel of every convolution (OpenSTL's `filter_size`): an int or (kh, kw),
        odd sizes only.
      in_channels: channels of a frame, C.
      patch_size: p, the side of the square patches; H and W must be multiples of it.
      pre_seq_length: the frames the model reads before it predicts.
      aft_seq_length: the frames it predicts.
      layer_norm: whether each cell normalises its two convolutions' outputs (see
        `ConvLSTMCell`); the model then runs on frames of one size only, that of its first input.
      dtype, param_dtype, precision, conv_gradient: as in `ConvLSTM`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> model = FramePredictor((8, 8), kernel_size=3, in_channels=1, patch_size=2,
      ...                        pre_seq_length=3, aft_seq_length=2)
      >>> frames = jnp.zeros((1, 3, 8, 8, 1))
      >>> variables = model.init(jax.random.key(0), frames)
      >>> generated = model.apply(variables, frames)
      >>> generated.shape, generated[:, -model.aft_seq_length:].shape
      ((1, 4, 8, 8, 1), (1, 2, 8, 8, 1))
    """

    hidden_dim: tuple[int, ...]
    kernel_size: int | tuple[int, int] = 5
    in_channels: int = 1
    patch_size: int = 4
    pre_seq_length: int = 10
    aft_seq_length: int = 10
    layer_norm: bool = False
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    precision: PrecisionLike = None
    conv_gradient: str = "auto"

    def __post_init__(self) -> None:
        hidden = self.hidden_dim
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if not isinstance(hidden, Sequence) or isinstance(hidden, str) or not hidden:
            raise TypeError(f"hidden_dim must be a non-empty sequence of positive ints, got {self.hidden_dim!r}.")
        hidden = tuple(_positive_int(f"hidden_dim[{index}]", h) for index, h in enumerate(hidden))
        object.__setattr__(self, "hidden_dim", hidden)
        object.__setattr__(self, "kernel_size", resolve_kernel(self.kernel_size))
        for name in ("in_channels", "patch_size", "pre_seq_length", "aft_seq_length"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if not isinstance(self.layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {self.layer_norm!r} ({type(self.layer_norm).__name__}).")
        check_conv_gradient(self.conv_gradient)
        super().__post_init__()

    @property
    def patch_depth(self) -> int:
        """Channels of a patch: C·p·p."""
        return self.in_channels * self.patch_size**2

    @property
    def steps(self) -> int:
        """The steps of the rollout, and the frames `__call__` returns: pre_seq_length + aft_seq_length - 1."""
        return self.pre_seq_length + self.aft_seq_length - 1

    def setup(self) -> None:
        inputs = (self.patch_depth, *self.hidden_dim[:-1])
        self.cells = [
            ConvLSTMCell(
                hidden,
                self.kernel_size,
                bias=False,
                input_dim=input_dim,
                peephole=None,
                layer_norm=self.layer_norm,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                precision=self.precision,
                conv_gradient=self.conv_gradient,
                name=f"cell_{index}",
            )
            for index, (input_dim, hidden) in enumerate(zip(inputs, self.hidden_dim))
        ]
        self.output = nn.Conv(
            self.patch_depth,
            (1, 1),
            use_bias=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            kernel_init=torch_default_init(self.hidden_dim[-1]),
            name="output",
        )

    def _step(self, carry, xs):
        """One step of the rollout: the first layer's input, every layer, the predicted patches."""
        states, previous = carry
        truth, weight, t = xs
        if weight is None:  # OpenSTL at test time: the true frame, then its own predictions
            x = jnp.where(t < self.pre_seq_length, truth, previous)
        else:  # scheduled sampling: weight is 1 for t < pre_seq_length, then the mask
            x = jnp.where(t < self.pre_seq_length, truth, weight * truth + (1 - weight) * previous)
        new_states = []
        for cell, state in zip(self.cells, states):
            state, x = cell(state, x)
            new_states.append(state)
        prediction = self.output(x)
        return (new_states, prediction), prediction

    def __call__(self, frames: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Runs the rollout.

        Args:
          frames: (B, T, H, W, C), H and W multiples of `patch_size`. T is `pre_seq_length` (the
            context only) or `pre_seq_length + aft_seq_length` (context and targets, as OpenSTL's
            method passes them; without `mask`, the targets are not read).
          mask: None (OpenSTL at test time: after the context, the model reads its own
            predictions), or OpenSTL's scheduled-sampling mask for the steps after the context:
            (B, aft_seq_length - 1, H, W, C), or (B, aft_seq_length - 1) for one weight per frame.
            At step `pre_seq_length + j` the first layer reads `mask[:, j]·frames[:, pre_seq_length
            + j] + (1 - mask[:, j])·prediction`. Needs T = pre_seq_length + aft_seq_length.

        Returns:
          the generated frames, (B, pre_seq_length + aft_seq_length - 1, H, W, C): index t
          predicts frame t + 1; `[:, -aft_seq_length:]` is the forecast.
        """
        weights = self._check(frames, mask)
        patches = space_to_depth(frames, self.patch_size)
        batch, _, rows, columns, depth = patches.shape
        dtype = self.dtype if self.dtype is not None else jnp.promote_types(frames.dtype, self.param_dtype)
        steps, pre = self.steps, self.pre_seq_length
        if weights is None:  # only the context is read
            truth = patches[:, :pre].astype(dtype)
            truth = jnp.concatenate([truth, jnp.zeros((batch, steps - pre, rows, columns, depth), dtype)], axis=1)
        else:
            truth = patches[:, :steps].astype(dtype)
            mask_patches = space_to_depth(weights.astype(dtype), self.patch_size)
            ones = jnp.ones((batch, pre, rows, columns, depth), dtype)
            weights = jnp.swapaxes(jnp.concatenate([ones, mask_patches], axis=1), 0, 1)
        states = [
            (jnp.zeros((batch, rows, columns, hidden), dtype), jnp.zeros((batch, rows, columns, hidden), dtype))
            for hidden in self.hidden_dim
        ]
        carry = (states, jnp.zeros((batch, rows, columns, depth), dtype))
        rollout = nn.scan(
            lambda module, carry, xs: module._step(carry, xs),
            variable_broadcast="params",
            split_rngs={"params": False},
        )
        xs = (jnp.swapaxes(truth, 0, 1), weights, jnp.arange(steps, dtype=jnp.int32))
        _, predictions = rollout(self, carry, xs)
        return depth_to_space(jnp.swapaxes(predictions, 0, 1), self.patch_size)

    def _check(self, frames: Any, mask: Any) -> jax.Array | None:
        """Checks the frames and the mask; returns the mask as (B, aft_seq_length - 1, H, W, C), or None."""
        check_floating("frames", frames)
        p, c, pre, total = self.patch_size, self.in_channels, self.pre_seq_length, self.steps + 1
        if frames.ndim != 5 or frames.shape[-1] != c or 0 in frames.shape:
            raise ValueError(f"frames must have shape (B, T, H, W, {c}) (in_channels={c}), got {tuple(frames.shape)}.")
        batch, length, height, width, _ = frames.shape
        if height % p or width % p:
            raise ValueError(
                f"frames of {height}x{width} do not cut into {p}x{p} patches (patch_size={p}): "
                f"H and W must be multiples of {p}."
            )
        lengths = f"T = pre_seq_length ({pre}) or pre_seq_length + aft_seq_length ({total})"
        if mask is None:
            if length not in (pre, total):
                raise ValueError(f"frames must have {lengths}, got T = {length}.")
            return None
        if length != total:
            raise ValueError(
                f"With a mask, frames must hold the context and the targets: T = pre_seq_length + "
                f"aft_seq_length = {total}, got T = {length}."
            )
        check_floating("mask", mask)
        steps = self.aft_seq_length - 1
        if tuple(mask.shape) == (batch, steps):
            return jnp.broadcast_to(mask.reshape(batch, steps, 1, 1, 1), (batch, steps, height, width, c))
        if tuple(mask.shape) != (batch, steps, height, width, c):
            raise ValueError(
                f"mask must have shape (B, aft_seq_length - 1, H, W, C) = {(batch, steps, height, width, c)} "
                f"or (B, aft_seq_length - 1) = {(batch, steps)}, got {tuple(mask.shape)}."
            )
        return mask


def _unwrap(state_dict: Any) -> dict[str, np.ndarray]:
    """The weights of a state_dict or checkpoint dict as NumPy arrays, keys without `model.`/`module.`."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict must be a mapping from OpenSTL's keys to tensors or arrays (or a checkpoint dict "
            f"holding one under {' or '.join(repr(w) for w in _WRAPPERS)}), got {type(state_dict).__name__}."
        )
    for wrapper in _WRAPPERS:
        if isinstance(state_dict.get(wrapper), Mapping):
            state_dict = state_dict[wrapper]
            break
    arrays: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r} ({type(key).__name__}).")
        name = key
        while name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        if name in sources:
            raise ValueError(
                f"Keys {sources[name]!r} and {key!r} are the same weight {name!r} once prefixes are stripped."
            )
        try:
            array = to_numpy(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"state_dict[{key!r}] must be a tensor or an array, got {type(value).__name__}.") from error
        if array.dtype == object:
            raise TypeError(f"state_dict[{key!r}] must be a tensor or an array, got {type(value).__name__}.")
        sources[name] = key
        arrays[name] = array
    return arrays


def _read_layers(arrays: Mapping[str, np.ndarray]) -> tuple[dict[int, dict[str, np.ndarray]], list[str], list[str]]:
    """Sorts the keys into each cell's used weights, the unused ones, and the unexpected ones."""
    layers: dict[int, dict[str, np.ndarray]] = {}
    unused, unexpected = [], []
    for key, array in arrays.items():
        match = _CELL_KEY.match(key)
        if key == _OUTPUT:
            continue
        if match and match.group(2) in _USED:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = array
        elif match and _UNUSED.match(match.group(2)):
            layers.setdefault(int(match.group(1)), {})  # a layer, even if its used weights are missing
            unused.append(key)
        else:
            unexpected.append(key)
    return layers, unused, unexpected


def _natural(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _shape(array: np.ndarray) -> tuple[int, ...]:
    return tuple(int(n) for n in array.shape)


@dataclasses.dataclass(frozen=True)
class _Architecture:
    """What OpenSTL's weights say: each layer's input and hidden channels, the kernel, the norms' frame."""

    input_dims: tuple[int, ...]
    hidden_dims: tuple[int, ...]
    kernel: tuple[int, int]
    norm_frame: tuple[int, int] | None
    output_depth: int | None  # the top-level conv_last's output channels, where there is one


@dataclasses.dataclass(frozen=True)
class _Cell:
    """One OpenSTL cell as its weights say: channels, kernel, and its norms' frame (None without norms)."""

    input_dim: int
    hidden_dim: int
    kernel: tuple[int, ...]
    norm_frame: tuple[int, ...] | None


def _read_cell(where: str, weights: Mapping[str, np.ndarray], problems: list[str]) -> _Cell | None:
    """Reads one cell's weights; appends what is wrong to `problems` (None where nothing can be read)."""
    missing = [name for name in ("conv_x.0.weight", "conv_h.0.weight") if name not in weights]
    problems += [f"missing key '{where}.{name}'" for name in missing]
    if missing:
        return None
    x, h = weights["conv_x.0.weight"], weights["conv_h.0.weight"]
    malformed = [
        name
        for name, array in (("conv_x.0.weight", x), ("conv_h.0.weight", h))
        if array.ndim != 4 or array.shape[0] % 4 or 0 in array.shape
    ]
    problems += [
        f"'{where}.{name}' has shape {_shape(weights[name])}: expected a Conv2d weight (4·hidden, in, k, k)"
        for name in malformed
    ]
    if malformed:
        return None
    hid, kernel = x.shape[0] // 4, _shape(x)[2:]
    if _shape(h)[:2] != (4 * hid, hid):
        problems.append(
            f"'{where}.conv_h.0.weight' has shape {_shape(h)}: expected (4·hidden, hidden, k, k) = "
            f"({4 * hid}, {hid}, ...) after conv_x.0.weight {_shape(x)}"
        )
    if _shape(h)[2:] != kernel:
        problems.append(
            f"'{where}': conv_x.0.weight's kernel {kernel} and conv_h.0.weight's {_shape(h)[2:]} differ: "
            "an OpenSTL cell has one filter_size"
        )
    if any(k % 2 == 0 for k in kernel):
        problems.append(
            f"'{where}' has an even kernel {kernel}: OpenSTL pads k // 2, which changes the frame size "
            "for even kernels; this library has odd kernels only"
        )
    norms = [name for name in _NORMS if name in weights]
    if not norms:
        return _Cell(int(x.shape[1]), hid, kernel, None)
    if len(norms) < len(_NORMS):
        absent = [name for name in _NORMS if name not in weights]
        problems.append(f"'{where}' has layer norm weights {norms} but not {absent}")
        return None
    frame = _shape(weights["conv_x.1.weight"])[1:]
    for name in _NORMS:
        shape = _shape(weights[name])
        if len(shape) != 3 or shape[0] != 4 * hid or shape[1:] != frame or 0 in shape:
            size = ", ".join(map(str, frame)) if len(frame) == 2 else "H', W'"
            problems.append(
                f"'{where}.{name}' has shape {shape}: expected a LayerNorm weight (4·hidden, H', W') = "
                f"({4 * hid}, {size}), as conv_x.1.weight's"
            )
    return _Cell(int(x.shape[1]), hid, kernel, frame)


def _architecture(arrays: Mapping[str, np.ndarray], layers: Mapping[int, Mapping[str, np.ndarray]]) -> _Architecture:
    """Reads and checks the layers; raises one ValueError listing every problem."""
    problems: list[str] = []
    cells = [_read_cell(f"cell_list.{index}", layers.get(index, {}), problems) for index in range(max(layers) + 1)]
    for index in range(1, len(cells)):
        below, cell = cells[index - 1], cells[index]
        if cell is not None and below is not None and cell.input_dim != below.hidden_dim:
            problems.append(
                f"'cell_list.{index}.conv_x.0.weight' reads {cell.input_dim} channels: layer {index} reads layer "
                f"{index - 1}'s hidden state, {below.hidden_dim} channels"
            )
    read = [cell for cell in cells if cell is not None]
    kernels = sorted({cell.kernel for cell in read})
    if len(kernels) > 1:
        problems.append(f"the layers' kernels differ ({kernels}): OpenSTL has one filter_size")
    normalised = [index for index, cell in enumerate(cells) if cell is not None and cell.norm_frame is not None]
    plain = [index for index, cell in enumerate(cells) if cell is not None and cell.norm_frame is None]
    if normalised and plain:
        problems.append(
            f"layers {normalised} have layer norms and layers {plain} do not: OpenSTL's layer_norm is one setting"
        )
    frames = sorted({cell.norm_frame for cell in read if cell.norm_frame is not None})
    if len(frames) > 1:
        problems.append(
            f"the layer norms are for states of different sizes {frames}: OpenSTL's cells all run on frames "
            "of H/patch_size x W/patch_size"
        )
    output, output_depth = arrays.get(_OUTPUT), None
    if output is not None:
        first, last = cells[0], cells[-1]
        hid = last.hidden_dim if last is not None else "hidden"
        if output.ndim != 4 or _shape(output)[2:] != (1, 1) or (last is not None and output.shape[1] != hid):
            problems.append(
                f"'{_OUTPUT}' has shape {_shape(output)}: expected (patch channels, {hid}, 1, 1), a 1x1 "
                "convolution of the last layer's hidden state"
            )
        else:
            output_depth = int(output.shape[0])
            if first is not None and output_depth != first.input_dim:
                problems.append(
                    f"'{_OUTPUT}' makes {output_depth} channels and the first layer reads {first.input_dim}: "
                    "OpenSTL feeds its predictions back as the next input, so both are the patch channels"
                )
    if problems:
        raise ValueError(
            f"The state_dict is not an OpenSTL ConvLSTM's ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems)
        )
    return _Architecture(
        tuple(cell.input_dim for cell in read),
        tuple(cell.hidden_dim for cell in read),
        kernels[0],
        frames[0] if frames else None,
        output_depth,
    )


_MISSING = object()


def _config(configs: Any, name: str) -> Any:
    """OpenSTL config `name` from a dict or an object (argparse Namespace, Lightning hparams), or _MISSING."""
    if configs is None:
        return _MISSING
    if isinstance(configs, Mapping):
        value = configs.get(name, _MISSING)
    else:
        value = getattr(configs, name, _MISSING)
    return _MISSING if value is None else value


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None


def _check_configs(
    configs: Any, found: _Architecture, frame_size: tuple[int, int] | None, whole: bool
) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """Checks `configs` (and `frame_size`) against the weights; returns the whole model's settings and
    the cells' frame size (None where nothing says it)."""
    problems: list[str] = []
    settings: dict[str, Any] = {}
    if whole:
        absent = [
            name
            for name in ("patch_size", "in_shape", "pre_seq_length", "aft_seq_length")
            if _config(configs, name) is _MISSING
        ]
        if configs is None:
            raise ValueError(
                "The state_dict holds OpenSTL's whole ConvLSTM_Model (it has 'conv_last.weight'): pass configs= "
                "with patch_size, in_shape, pre_seq_length and aft_seq_length, which the weights do not hold "
                "(a dict, or the config object OpenSTL was trained with); or pass only the 'cell_list.*' weights "
                "for the ConvLSTM stack alone."
            )
        if absent:
            raise ValueError(
                f"configs lacks {', '.join(absent)}: OpenSTL's whole ConvLSTM_Model needs patch_size, in_shape "
                "(T, C, H, W), pre_seq_length and aft_seq_length, which the weights do not hold."
            )
    patch = _config(configs, "patch_size")
    if patch is not _MISSING:
        settings["patch_size"] = _int(patch)
        if settings["patch_size"] is None or settings["patch_size"] < 1:
            problems.append(f"configs patch_size must be a positive int, got {patch!r}")
    in_shape = _config(configs, "in_shape")
    if in_shape is not _MISSING:
        sizes = (
            tuple(_int(n) for n in in_shape) if isinstance(in_shape, Sequence) and not isinstance(in_shape, str) else ()
        )
        if len(sizes) != 4 or any(n is None or n < 1 for n in sizes):
            problems.append(f"configs in_shape must be (T, C, H, W), four positive ints, got {in_shape!r}")
        else:
            settings["in_shape"] = sizes
    for name in ("pre_seq_length", "aft_seq_length"):
        value = _config(configs, name)
        if value is not _MISSING:
            settings[name] = _int(value)
            if settings[name] is None or settings[name] < 1:
                problems.append(f"configs {name} must be a positive int, got {value!r}")
    total = _config(configs, "total_length")
    pre, aft = settings.get("pre_seq_length"), settings.get("aft_seq_length")
    if total is not _MISSING and pre and aft and total != pre + aft:
        problems.append(
            f"configs total_length is {total!r}, not pre_seq_length + aft_seq_length = {pre} + {aft} = {pre + aft}"
        )
    stride = _config(configs, "stride")
    if stride is not _MISSING and stride not in (1, (1, 1), [1, 1]):
        problems.append(
            f"configs stride is {stride!r}: OpenSTL's cell strides both its convolutions, the state-to-state one "
            "too, so its state shrinks at every step and its model runs with stride 1 only (this library's stride "
            "is the input-to-state convolution's)"
        )
    filter_size = _config(configs, "filter_size")
    if filter_size is not _MISSING and (filter_size,) * 2 != found.kernel and filter_size != found.kernel:
        problems.append(f"configs filter_size is {filter_size!r}, the weights' kernels are {found.kernel}")
    layer_norm = _config(configs, "layer_norm")
    has_norms = found.norm_frame is not None
    if layer_norm is not _MISSING and bool(layer_norm) != has_norms:
        held = "hold layer norms (conv_x.1.*, conv_h.1.*)" if has_norms else "hold no layer norm"
        problems.append(f"configs layer_norm is {layer_norm!r}, and the weights {held}")
    num_hidden = _config(configs, "num_hidden")
    if num_hidden is not _MISSING:
        try:
            hidden = tuple(int(n) for n in (num_hidden.split(",") if isinstance(num_hidden, str) else num_hidden))
        except (TypeError, ValueError):
            hidden = None
        if hidden != found.hidden_dims:
            problems.append(f"configs num_hidden is {num_hidden!r}, the weights' layers have {found.hidden_dims}")
    frame = None
    patch, in_shape = settings.get("patch_size"), settings.get("in_shape")
    if patch and in_shape:
        _, channels, height, width = in_shape
        if height % patch or width % patch:
            problems.append(
                f"configs in_shape {in_shape} does not cut into {patch}x{patch} patches (patch_size={patch}): "
                "H and W must be multiples of it"
            )
        else:
            frame = (height // patch, width // patch)
        depth = channels * patch * patch
        if depth != found.input_dims[0]:
            problems.append(
                f"configs patch_size={patch} and in_shape {in_shape} make patches of {patch}·{patch}·{channels} = "
                f"{depth} channels; the first layer reads {found.input_dims[0]} (cell_list.0.conv_x.0.weight)"
            )
    if frame_size is not None:
        if frame is not None and frame != frame_size:
            problems.append(f"frame_size is {frame_size}; configs in_shape and patch_size make frames of {frame}")
        frame = frame_size
    if has_norms and frame is not None and frame != found.norm_frame:
        problems.append(
            f"the layer norms are for frames of {found.norm_frame} (conv_x.1.weight's last two axes); "
            f"{'frame_size' if frame_size is not None else 'configs in_shape / patch_size'} says {frame}"
        )
    if problems:
        raise ValueError(
            f"The configs do not fit OpenSTL's weights ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems)
        )
    return settings, found.norm_frame if has_norms else None


def _check_frame_size(frame_size: Any) -> tuple[int, int] | None:
    if frame_size is None:
        return None
    if isinstance(frame_size, numbers.Integral) and not isinstance(frame_size, bool):
        frame_size = (frame_size, frame_size)
    if (
        not isinstance(frame_size, Sequence)
        or isinstance(frame_size, str)
        or len(frame_size) != 2
        or any(_int(n) is None for n in frame_size)
    ):
        raise TypeError(f"frame_size must be (H, W), two positive ints, or an int, got {frame_size!r}.")
    if any(n < 1 for n in frame_size):
        raise ValueError(f"frame_size must be (H, W), two positive ints, got {tuple(frame_size)}.")
    return tuple(int(n) for n in frame_size)


def _library_state_dict(layers, found: _Architecture, patch_order: np.ndarray | None) -> dict[str, np.ndarray]:
    """OpenSTL's cells as a `convlstm_torch.ConvLSTM` state_dict (gates reordered; the first layer's
    input channels in `space_to_depth` order where `patch_order` is given)."""
    state_dict = {}
    for index in range(len(found.hidden_dims)):
        weights = layers[index]
        x = openstl_gates_to_library(weights["conv_x.0.weight"])
        if index == 0 and patch_order is not None:
            x = x[:, patch_order]
        h = openstl_gates_to_library(weights["conv_h.0.weight"])
        prefix = f"cell_list.{index}."
        if found.norm_frame is None:  # one convolution over [X, H], the reference's fused layout
            state_dict[prefix + "conv.weight"] = np.concatenate([x, h], axis=1)
        else:
            state_dict[prefix + "conv_x.weight"] = x
            state_dict[prefix + "conv_h.weight"] = h
            for source, target in (("conv_x.1", "norm_x"), ("conv_h.1", "norm_h")):
                for leaf in ("weight", "bias"):
                    state_dict[f"{prefix}{target}.{leaf}"] = openstl_gates_to_library(weights[f"{source}.{leaf}"])
    return state_dict


def from_openstl(
    state_dict: Mapping[str, Any],
    *,
    frame_size: int | tuple[int, int] | None = None,
    configs: Any = None,
    dtype: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Reads OpenSTL's ConvLSTM weights into a Linen module of this library and its variables.

    What comes back depends on what the state_dict holds:

    - OpenSTL's cells only (`cell_list.<l>.*`): a `convlstm_jax.ConvLSTM` with `channels_last=True`,
      `batch_first=True`, `return_all_layers=False`, `bias=False`, `peephole=None` and `layer_norm`
      (with `frame_size`, the norms' H' x W') where the weights have norms. Its `layer_outputs[0]`
      is the last layer's hidden state at every step, (B, T, H', W', hidden), what OpenSTL's stack
      computes from the same inputs. The first layer reads OpenSTL's patch channels: feed it
      `openstl_patches(frames, patch_size)`.
    - OpenSTL's whole `ConvLSTM_Model` (the cells and a top-level `conv_last.weight`): a
      `FramePredictor` built from `configs` (what the weights do not hold: `patch_size`,
      `in_shape`, `pre_seq_length`, `aft_seq_length`). It takes frames (B, T, H, W, C) and returns
      every generated frame as OpenSTL's model does; `[:, -aft_seq_length:]` is what OpenSTL's
      method returns at test time (channels-last).

    OpenSTL's cells also hold a convolution `conv_o` (with its norm) and a 1x1 `conv_last` that
    their forward never uses: those keys are accepted and left out, with a warning naming them.

    Args:
      state_dict: OpenSTL's state_dict (torch tensors or arrays), or a checkpoint dict holding it
        under "state_dict" (a Lightning checkpoint of OpenSTL's method), "model" or
        "model_state_dict". Keys prefixed by "model." (the method's model) or "module."
        (DataParallel), in any number, are read without them.
      frame_size: (H', W'), the frames the cells read (for the whole model H/p x W/p), or None.
        Only checked: against the layer norms where the weights have them, against `configs`
        where they give it; the layer norms hold it.
      configs: OpenSTL's config (a dict, or an object such as its argparse Namespace or its
        method's hparams) with `patch_size`, `in_shape` (T, C, H, W), `pre_seq_length` and
        `aft_seq_length`, needed for the whole model. `filter_size`, `stride`, `layer_norm`,
        `num_hidden` and `total_length`, where given, are checked against the weights (`stride` must
        be 1: OpenSTL's cell strides both its convolutions, and its model runs with stride 1 only).
        `reverse_scheduled_sampling` changes training only: at test time both settings feed the
        model the context, then its own predictions.
      dtype: a dtype to cast every weight to, or None to keep the weights' dtype (the module's
        `param_dtype`).

    Returns:
      `(model, variables)`, ready for `model.apply(variables, ...)`.

    Raises:
      TypeError: the state_dict is not a mapping of arrays, or `frame_size` is malformed.
      ValueError: a key is unexpected or missing, a shape or dtype does not fit, or `configs`
        lacks or contradicts what the model needs; the message lists every problem it found.

    Example:
      A one-layer OpenSTL cell stack, 4 -> 8 channels, 3x3 kernels, without layer norm:

      >>> state_dict = {
      ...     "cell_list.0.conv_x.0.weight": np.zeros((32, 4, 3, 3), np.float32),
      ...     "cell_list.0.conv_h.0.weight": np.zeros((32, 8, 3, 3), np.float32),
      ... }
      >>> model, variables = from_openstl(state_dict)
      >>> type(model).__name__, model.hidden_dim, model.layer_norm, model.peephole
      ('ConvLSTM', (8,), False, None)
    """
    arrays = _unwrap(state_dict)
    frame_size = _check_frame_size(frame_size)
    layers, unused, unexpected = _read_layers(arrays)
    if unexpected or not layers:
        listed = ", ".join(repr(key) for key in sorted(unexpected, key=_natural)[:20])
        more = f" (and {len(unexpected) - 20} more)" if len(unexpected) > 20 else ""
        reason = (
            f"unexpected keys {listed}{more}"
            if unexpected
            else f"no 'cell_list.<l>.' key (keys: {sorted(arrays)[:10]})"
        )
        raise ValueError(
            f"The state_dict is not an OpenSTL ConvLSTM's: {reason}. Expected 'cell_list.<l>.conv_x.0.weight', "
            "'cell_list.<l>.conv_h.0.weight' (with layer norm also 'conv_x.1.*', 'conv_h.1.*'), the unused "
            "'cell_list.<l>.conv_o.*' and 'cell_list.<l>.conv_last.weight', and for the whole model 'conv_last.weight'."
        )
    floats = {key: array for key, array in arrays.items() if _is_float(array.dtype)}
    not_float = sorted(arrays.keys() - floats.keys(), key=_natural)
    if not_float:
        raise ValueError(
            "OpenSTL's weights are floating-point; these are not: "
            + ", ".join(f"{key!r} ({arrays[key].dtype})" for key in not_float)
        )
    used = {key: array for key, array in arrays.items() if key not in unused}
    dtypes = sorted({str(array.dtype) for array in used.values()})
    if dtype is None and len(dtypes) > 1:
        raise ValueError(f"The weights mix dtypes {dtypes}: pass dtype= to cast them all to one.")
    found = _architecture(arrays, layers)
    whole = found.output_depth is not None
    settings, norm_frame = _check_configs(configs, found, frame_size, whole)
    if unused:
        warnings.warn(
            f"OpenSTL's ConvLSTMCell holds weights its forward never uses; left out: "
            f"{', '.join(sorted(unused, key=_natural))}.",
            stacklevel=2,
        )
    param_dtype = np.dtype(dtype) if dtype is not None else next(iter(used.values())).dtype
    cast = (lambda array: array.astype(param_dtype)) if dtype is not None else (lambda array: array)
    layers = {index: {name: cast(array) for name, array in weights.items()} for index, weights in layers.items()}
    stack = ConvLSTM(
        found.input_dims[0],
        list(found.hidden_dims),
        found.kernel,
        len(found.hidden_dims),
        batch_first=True,
        bias=False,
        return_all_layers=False,
        peephole=None,
        layer_norm=norm_frame is not None,
        frame_size=norm_frame,
        channels_last=True,
        param_dtype=param_dtype,
    )
    if not whole:
        return stack, torch_to_flax(_library_state_dict(layers, found, None), stack)
    patch, (_, channels, _, _) = settings["patch_size"], settings["in_shape"]
    order = openstl_patch_order(patch, channels)
    params = dict(torch_to_flax(_library_state_dict(layers, found, order), stack)["params"])
    output = cast(arrays[_OUTPUT])[order]  # (C·p·p, hidden, 1, 1), space_to_depth's channel order
    params["output"] = {"kernel": kernel_to_flax(output)}
    model = FramePredictor(
        found.hidden_dims,
        found.kernel,
        in_channels=channels,
        patch_size=patch,
        pre_seq_length=settings["pre_seq_length"],
        aft_seq_length=settings["aft_seq_length"],
        layer_norm=norm_frame is not None,
        param_dtype=param_dtype,
    )
    return model, {"params": params}


__all__ = [
    "FramePredictor",
    "from_openstl",
    "openstl_gates_to_library",
    "openstl_patch_order",
    "openstl_patches",
    "openstl_unpatch",
]
