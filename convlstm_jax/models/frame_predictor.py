"""OpenSTL's ConvLSTM frame model (chengtan9907/OpenSTL's `ConvLSTM_Model`) as a Linen module;
`convlstm_jax.interop.from_openstl` reads its checkpoints."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype, PrecisionLike

from convlstm_common import resolve_kernel

from .._cell import ConvLSTMCell, check_floating, torch_default_init
from .._conv import check_conv_gradient
from .patches import depth_to_space, space_to_depth


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
