"""A stack of ConvLSTM layers, each a time loop compiled once with `nn.scan`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype, PrecisionLike
from jax.experimental import checkify

from convlstm_common import LayerSpec, check_peephole, resolve_layers

from ._cell import Carry, ConvLSTMCell, check_floating
from ._conv import check_conv_gradient


def _check_finite(name: str, x: jax.Array) -> None:
    bad = jnp.sum(~jnp.isfinite(x))
    checkify.check(bad == 0, f"{name} holds {{bad}} NaN or inf value(s) (check_finite=True).", bad=bad)


class ConvLSTM(nn.Module):
    """A stack of `ConvLSTMCell` layers, each run over the whole sequence before the next.

    The hyperparameters, their order and defaults are those of `convlstm_torch.ConvLSTM`; the
    results are the same up to float rounding. Each layer's time loop is one `nn.scan`, so the
    compiled program does not grow with the sequence length.

    Attributes:
      input_dim: channels of the input, or None to take them from the input. When given, an input
        with another channel count is an error. 0 makes a stack without input, which runs on a
        zero-channel x of shape (B, T, H, W, 0) (the forecaster of Shi et al. 2015).
      hidden_dim: hidden channels, one int for every layer or a list with one per layer.
      kernel_size: (kh, kw) (or an int) for every layer, or a list with one per layer; odd only.
      num_layers: number of stacked layers.
      batch_first: the input is (B, T, ...) if True, else (T, B, ...).
      bias: whether the convolutions have biases.
      return_all_layers: return every layer's outputs and final state, not only the last layer's.
      peephole: `"conv"` (default), `"hadamard"` or `None`; see `ConvLSTMCell`.
      channels_last: frames are (H, W, C) if True (default), else (C, H, W) as in PyTorch. Inputs,
        initial states, outputs and final states all use this layout.
      dtype: the dtype of the computation (default: inferred from input and params).
      param_dtype: the dtype of the parameters.
      precision: the precision of the convolutions (`jax.lax.Precision`).
      conv_gradient: `"auto"` (default), `"xla"` or `"tapwise"`: how convolution gradients are
        computed; see `ConvLSTMCell`. Every choice gives the same results up to float rounding.
      remat: recompute each step's activations in the backward pass instead of storing them
        (`flax.linen.remat`): a train step's memory then grows with T by the carries alone.
      unroll: time steps per iteration of each layer's scan (`jax.lax.scan`'s `unroll`).
      check_finite: check that the input and initial state hold no NaN or inf, with
        `jax.experimental.checkify`: outside `jit` a failure raises at once; under `jit`, wrap
        the function in `checkify.checkify` and call `.throw()` on the error it returns. Off by
        default: NaN and inf otherwise propagate as IEEE arithmetic makes them.
      input_kernel_size: the input-to-state kernel, in the forms of `kernel_size`; None (default)
        for `kernel_size`, which is then the state-to-state kernel only.

    Returns from `__call__`:
      `(layer_outputs, last_states)`, the reference's structure. `layer_outputs[l]` is layer l's
      hidden state at every step, stacked **batch-first, (B, T, H, W, hidden_dim), whatever
      `batch_first` says** (as the reference does). `last_states[l]` is `(h, c)`, the layer's final
      state, each (B, H, W, hidden_dim). Both lists hold only the last layer's entry unless
      `return_all_layers`. With `channels_last=False` the frames are (hidden_dim, H, W).

    Example:
      >>> model = ConvLSTM(None, [16, 8], (3, 3), 2, batch_first=True)
      >>> x = jnp.zeros((4, 10, 32, 32, 1))
      >>> variables = model.init(jax.random.key(0), x[:1, :1])  # params do not depend on B, T, H, W
      >>> outputs, states = jax.jit(model.apply)(variables, x)
      >>> outputs[0].shape, states[0][0].shape
      ((4, 10, 32, 32, 8), (4, 32, 32, 8))
    """

    input_dim: int | None
    hidden_dim: int | Sequence[int]
    kernel_size: int | tuple[int, int] | Sequence[int | tuple[int, int]]
    num_layers: int
    batch_first: bool = False
    bias: bool = True
    return_all_layers: bool = False
    peephole: str | None = "conv"
    channels_last: bool = True
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    precision: PrecisionLike = None
    conv_gradient: str = "auto"
    remat: bool = False
    unroll: int = 1
    check_finite: bool = False
    input_kernel_size: int | tuple[int, int] | Sequence[int | tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        specs = self.layer_specs()
        # Flax turns list fields into tuples when it clones a module, and a tuple of two ints reads
        # as one kernel: pin a per-layer list down as a tuple of (kh, kw) pairs before that happens.
        if isinstance(self.kernel_size, list):
            object.__setattr__(self, "kernel_size", tuple(s.kernel_size for s in specs))
        if isinstance(self.input_kernel_size, list):
            object.__setattr__(self, "input_kernel_size", tuple(s.input_kernel_size for s in specs))
        check_peephole(self.peephole)
        check_conv_gradient(self.conv_gradient)
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int) or self.unroll < 1:
            raise ValueError(f"unroll must be a positive int (time steps per scan iteration), got {self.unroll!r}.")
        super().__post_init__()

    @nn.nowrap
    def layer_specs(self) -> tuple[LayerSpec, ...]:
        """One `LayerSpec` (input_dim, hidden_dim, kernel_size) per layer; input_dim 0 if inferred."""
        return resolve_layers(
            self.input_dim, self.hidden_dim, self.kernel_size, self.num_layers, self.input_kernel_size
        )

    @nn.compact
    def __call__(self, x: jax.Array, hidden_state: Sequence[Carry] | None = None):
        """Runs the stack over the sequence.

        Args:
          x: (B, T, H, W, C) if `batch_first`, else (T, B, H, W, C); (..., C, H, W) if not
            `channels_last`.
          hidden_state: None for zero initial states, or a list with one `(h, c)` per layer, each
            (B, H, W, hidden_dim[l]) (or (B, hidden_dim[l], H, W) if not `channels_last`).

        Returns:
          `(layer_outputs, last_states)`; see the class docstring.
        """
        specs = self._check_input(x)
        time_axis = 1 if self.batch_first else 0
        batch = x.shape[1 - time_axis]
        frame = x.shape[2:4] if self.channels_last else x.shape[3:5]
        if hidden_state is not None:
            self._check_hidden_state(hidden_state, specs, batch, frame)
        if self.check_finite:
            _check_finite("x", x)
            for layer, state in enumerate(hidden_state or []):
                for name, s in zip("hc", state):
                    _check_finite(f"hidden_state[{layer}] {name}", s)
        if not self.channels_last:
            x = jnp.moveaxis(x, 2, -1)
            if hidden_state is not None:
                hidden_state = [(jnp.moveaxis(h, 1, -1), jnp.moveaxis(c, 1, -1)) for h, c in hidden_state]
        dtype = self.dtype if self.dtype is not None else jnp.promote_types(x.dtype, self.param_dtype)

        scan_cell = nn.scan(
            nn.remat(ConvLSTMCell) if self.remat else ConvLSTMCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=time_axis,
            out_axes=time_axis,
            unroll=self.unroll,
        )
        layer_outputs, last_states = [], []
        layer_input = x
        for index, spec in enumerate(specs):
            if hidden_state is None:
                zeros = jnp.zeros((batch, *frame, spec.hidden_dim), dtype)
                carry = (zeros, zeros)
            else:
                h, c = hidden_state[index]
                carry = (jnp.asarray(h, dtype), jnp.asarray(c, dtype))
            cell = scan_cell(
                hidden_dim=spec.hidden_dim,
                kernel_size=spec.kernel_size,
                bias=self.bias,
                peephole=self.peephole,
                input_dim=layer_input.shape[-1],
                dtype=dtype,
                param_dtype=self.param_dtype,
                precision=self.precision,
                conv_gradient=self.conv_gradient,
                input_kernel_size=spec.input_kernel_size,
                name=f"cell_{index}",
            )
            carry, layer_input = cell(carry, layer_input)
            layer_outputs.append(layer_input)
            last_states.append(carry)

        if not self.return_all_layers:
            layer_outputs, last_states = layer_outputs[-1:], last_states[-1:]
        if time_axis == 0:
            layer_outputs = [jnp.swapaxes(y, 0, 1) for y in layer_outputs]
        if not self.channels_last:
            layer_outputs = [jnp.moveaxis(y, -1, 2) for y in layer_outputs]
            last_states = jax.tree.map(lambda s: jnp.moveaxis(s, -1, 1), last_states)
        return layer_outputs, last_states

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> list[Carry]:
        """Zero initial states for inputs of shape `input_shape`: one `(h, c)` per layer.

        `input_shape` is the shape of the whole sequence, in this module's layout; the states come
        in that layout too. `rng` is unused (the initial state is zero).
        """
        del rng
        if len(input_shape) != 5:
            raise ValueError(f"input_shape must be the 5-D shape of the input sequence, got {input_shape}.")
        batch = input_shape[0 if self.batch_first else 1]
        frame = input_shape[2:4] if self.channels_last else input_shape[3:5]
        dtype = self.dtype if self.dtype is not None else self.param_dtype
        states = []
        for spec in self.layer_specs():
            shape = self._state_shape(batch, frame, spec.hidden_dim)
            states.append((jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)))
        return states

    def _layout(self) -> str:
        frame = "H, W, C" if self.channels_last else "C, H, W"
        return f"(B, T, {frame})" if self.batch_first else f"(T, B, {frame})"

    def _check_input(self, x: Any) -> tuple[LayerSpec, ...]:
        check_floating("x", x)
        if x.ndim != 5:
            raise ValueError(f"x must be 5-D {self._layout()}, got shape {tuple(x.shape)}.")
        channels = x.shape[-1] if self.channels_last else x.shape[2]
        if 0 in x.shape[:2] + (x.shape[2:4] if self.channels_last else x.shape[3:5]):
            raise ValueError(f"x must not have an empty dimension but channels, got shape {tuple(x.shape)}.")
        if self.input_dim is not None and channels != self.input_dim:
            raise ValueError(
                f"x has {channels} channels ({self._layout()} {tuple(x.shape)}); input_dim is {self.input_dim}."
            )
        return self.layer_specs()

    def _state_shape(self, batch: int, frame: tuple[int, int], hidden_dim: int) -> tuple[int, ...]:
        return (batch, *frame, hidden_dim) if self.channels_last else (batch, hidden_dim, *frame)

    def _check_hidden_state(self, hidden_state: Any, specs, batch: int, frame: tuple[int, int]) -> None:
        if not isinstance(hidden_state, (list, tuple)) or len(hidden_state) != len(specs):
            got = len(hidden_state) if isinstance(hidden_state, (list, tuple)) else type(hidden_state).__name__
            raise ValueError(f"hidden_state must be a list of {len(specs)} (h, c) pairs, one per layer; got {got}.")
        layout = "(B, H, W, hidden_dim)" if self.channels_last else "(B, hidden_dim, H, W)"
        for layer, (spec, state) in enumerate(zip(specs, hidden_state)):
            if not isinstance(state, (list, tuple)) or len(state) != 2:
                raise ValueError(f"hidden_state[{layer}] must be a pair (h, c), got {type(state).__name__}.")
            expected = self._state_shape(batch, frame, spec.hidden_dim)
            for name, s in zip("hc", state):
                check_floating(f"hidden_state[{layer}] {name}", s)
                if tuple(s.shape) != expected:
                    raise ValueError(
                        f"hidden_state[{layer}] {name} must have shape {layout} = {expected}, got {tuple(s.shape)}."
                    )
