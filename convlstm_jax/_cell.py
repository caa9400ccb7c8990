"""One ConvLSTM step (Shi et al. 2015, Eq. 3), channels-last: the math, and a Flax recurrent cell.

Frames have 1, 2 or 3 spatial axes (signals, images, volumes): the math is written once for all
three, the rank read from the kernels.

The math of a step is written once, as functions of the weights (a `Weights` mapping of arrays):
`fused_step`, `input_projection`, `state_step` and `gates`. The Linen `ConvLSTMCell` below and the
NNX one in `convlstm_jax.nnx` hold the weights and call them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype, PrecisionLike
from jax import lax

from convlstm_common import LayerSpec, check_frame, check_peephole, spatial_axes
from convlstm_common.options import cell_spec, document

from ._conv import channels_last_dimensions, check_conv_gradient, conv
from .options import JaxCellOptions

Carry = tuple[jax.Array, jax.Array]


def torch_default_init(fan_in: int) -> nn.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): what torch.nn.Conv2d draws its weights and biases from."""
    bound = 1.0 / fan_in**0.5

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def check_floating(name: str, x: Any) -> None:
    """Raises TypeError unless `x` is an array of a floating-point dtype."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}.")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating-point dtype, got {dtype}.")


Weights = Mapping[str, Any]
"""A cell's weights, as arrays, in the tree of its params (kernels shown for images: a kernel has
one size per spatial axis, then its input and output channels):

- `input_to_state`: `{"kernel": (k'h, k'w, input_dim, 4·hidden), "bias": (4·hidden,)}` (a cell with
  input; the bias when the cell has biases);
- `state_to_state`: `{"kernel": (kh, kw, hidden, 4·hidden)}`, with a `"bias"` only in a cell
  without input (which has no input-to-state convolution to hold it);
- `peephole_conv_if`: `{"kernel": (kh, kw, hidden, 2·hidden), "bias"}` and `peephole_conv_o`:
  `{"kernel": (kh, kw, hidden, hidden), "bias"}` for `peephole="conv"`;
- `peephole_i`, `peephole_f`, `peephole_o`: (hidden,) each, for `peephole="hadamard"`;
- `input_norm` and `state_norm`: `{"scale": (H', W', 4·hidden), "bias": (H', W', 4·hidden)}` for
  `layer_norm` ((H', W') the state's size; `input_norm` in a cell with input).

A bias or a norm is used where its entry is present. Gates are ordered (i, f, o, g) along the 4·hidden axis.
"""


def fan_in(spec: LayerSpec, name: str) -> int:
    """The fan-in torch.nn.ConvNd draws the weights of convolution `name` (a `Weights` entry) with.

    Where one convolution over [X, H] computes both paths (`spec.fused`), the reference has a single
    convolution, whose fan-in both parts share.
    """
    taps = math.prod(spec.kernel_size)
    if spec.fused and name in ("input_to_state", "state_to_state"):
        return (spec.input_dim + spec.hidden_dim) * taps
    if name == "input_to_state":
        return spec.input_dim * math.prod(spec.input_kernel_size)
    return spec.hidden_dim * taps


def compute_dtype(dtype: Dtype | None, x: jax.Array, param_dtype: Dtype) -> Dtype:
    """`dtype`, or where it is None the promotion of `x`'s dtype and `param_dtype`."""
    return dtype if dtype is not None else jnp.promote_types(x.dtype, param_dtype)


def per_channel(values: jax.Array, like: jax.Array, dtype: Dtype) -> jax.Array:
    """Per-channel `values` (C,) in `dtype`, shaped to broadcast against channels-last `like`."""
    return values.astype(dtype).reshape((1,) * (like.ndim - 1) + (-1,))


def _convolve(x, conv_weights: Weights, dtype: Dtype, conv_gradient: str, precision: PrecisionLike) -> jax.Array:
    y = conv(x, conv_weights["kernel"].astype(dtype), conv_gradient, precision)
    bias = conv_weights.get("bias")
    return y if bias is None else y + per_channel(bias, y, dtype)


def fused_step(
    weights: Weights,
    carry: Carry,
    inputs: jax.Array,
    *,
    peephole: str | None,
    dtype: Dtype,
    precision: PrecisionLike = None,
    conv_gradient: str = "auto",
    forget_bias: float = 0.0,
) -> tuple[Carry, jax.Array]:
    """One step whose input-to-state and state-to-state convolutions are one convolution over [X, H].

    As the reference computes it, for equal kernels and an input-to-state convolution that keeps the
    frame size: the kernel is the input-to-state kernel (the part that reads X) and the
    state-to-state kernel (the part that reads H) side by side, with the input-to-state bias.

    Returns:
      `((h_next, c_next), h_next)`, in `dtype`.
    """
    h, c = carry
    both = jnp.concatenate([inputs.astype(dtype), h.astype(dtype)], axis=-1)
    kernel = jnp.concatenate([weights["input_to_state"]["kernel"], weights["state_to_state"]["kernel"]], axis=-2)
    z = _convolve(both, dict(weights["input_to_state"], kernel=kernel), dtype, conv_gradient, precision)
    return gates(
        weights,
        z,
        c.astype(dtype),
        peephole=peephole,
        dtype=dtype,
        precision=precision,
        conv_gradient=conv_gradient,
        forget_bias=forget_bias,
    )


LAYER_NORM_EPSILON = 1e-5
"""The layer norm's epsilon: torch.nn.LayerNorm's default, which OpenSTL's ConvLSTM uses."""


def normalize(z: jax.Array, norm: Weights, dtype: Dtype) -> jax.Array:
    """Layer-normalises channels-last `z` (..., *state, 4·hidden) over its last `norm["scale"].ndim`
    axes (channels and positions), then scales and shifts it per channel and position, as
    `torch.nn.LayerNorm([4·hidden, *state])` does (biased variance, eps 1e-5).

    The mean and variance are computed in at least float32 (as `flax.linen.LayerNorm` computes
    them), the result returned in `dtype`: a bfloat16 mean over thousands of elements keeps two
    or three significant digits.
    """
    lead = (1,) * (z.ndim - norm["scale"].ndim)
    scale, shift = (norm[name].astype(dtype).reshape(lead + norm[name].shape) for name in ("scale", "bias"))
    axes = tuple(range(len(lead), z.ndim))
    wide = z.astype(jnp.float32) if jnp.finfo(z.dtype).bits < 32 else z
    mean = jnp.mean(wide, axes, keepdims=True)
    centred = wide - mean
    variance = jnp.mean(jnp.square(centred), axes, keepdims=True)
    return (centred * lax.rsqrt(variance + LAYER_NORM_EPSILON)).astype(dtype) * scale + shift


def input_projection(
    weights: Weights, inputs: jax.Array, spec: LayerSpec, *, dtype: Dtype, precision: PrecisionLike = None
) -> jax.Array:
    """W_x * X + b for inputs of shape (..., *frame, C): any number of leading axes.

    The input-to-state convolution alone, with `spec`'s padding, stride and dilation, and its layer
    norm where `weights` has one (`input_norm`). Computed with XLA's own convolution and gradients,
    which are fast outside a loop on every backend.
    """
    rank = spec.spatial_dims
    lead = inputs.shape[: -rank - 1]
    frames = inputs.reshape(-1, *inputs.shape[-rank - 1 :]).astype(dtype)
    z = lax.conv_general_dilated(
        frames,
        weights["input_to_state"]["kernel"].astype(dtype),
        spec.stride,
        [(p, p) for p in spec.input_padding],
        rhs_dilation=spec.dilation,
        dimension_numbers=channels_last_dimensions(rank),
        precision=precision,
    )
    bias = weights["input_to_state"].get("bias")
    if bias is not None:
        z = z + per_channel(bias, z, dtype)
    if "input_norm" in weights:
        z = normalize(z, weights["input_norm"], dtype)
    return z.reshape(*lead, *z.shape[1:])


def state_step(
    weights: Weights,
    carry: Carry,
    projected_inputs: jax.Array | None,
    *,
    peephole: str | None,
    dtype: Dtype,
    precision: PrecisionLike = None,
    conv_gradient: str = "auto",
    forget_bias: float = 0.0,
) -> tuple[Carry, jax.Array]:
    """One step from the input's projection W_x * X + b (`input_projection`), or None without input.

    The state-to-state convolution's output is layer-normalised where `weights` has `state_norm`.

    Returns:
      `((h_next, c_next), h_next)`, in `dtype`.
    """
    h, c = carry
    z = _convolve(h.astype(dtype), weights["state_to_state"], dtype, conv_gradient, precision)
    if "state_norm" in weights:
        z = normalize(z, weights["state_norm"], dtype)
    if projected_inputs is not None:
        z = projected_inputs.astype(dtype) + z
    return gates(
        weights,
        z,
        c.astype(dtype),
        peephole=peephole,
        dtype=dtype,
        precision=precision,
        conv_gradient=conv_gradient,
        forget_bias=forget_bias,
    )


def gates(
    weights: Weights,
    z: jax.Array,
    c: jax.Array,
    *,
    peephole: str | None,
    dtype: Dtype,
    precision: PrecisionLike = None,
    conv_gradient: str = "auto",
    forget_bias: float = 0.0,
) -> tuple[Carry, jax.Array]:
    """The gates and the new state from the pre-activations z = [z_i, z_f, z_o, z_g] and C.

    Adds the peephole terms of `peephole` (see `ConvLSTMCell`), read from `weights`, and
    `forget_bias` to the forget gate's pre-activation.

    Returns:
      `((h_next, c_next), h_next)`.
    """

    def peephole_conv(name: str, state: jax.Array) -> jax.Array:
        return _convolve(state, weights[name], dtype, conv_gradient, precision)

    def hadamard(name: str) -> jax.Array:
        return per_channel(weights[name], c, dtype)

    z_i, z_f, z_o, z_g = jnp.split(z, 4, axis=-1)
    if peephole == "conv":
        p_i, p_f = jnp.split(peephole_conv("peephole_conv_if", c), 2, -1)
        z_i, z_f = z_i + p_i, z_f + p_f
    elif peephole == "hadamard":
        z_i, z_f = z_i + hadamard("peephole_i") * c, z_f + hadamard("peephole_f") * c
    if forget_bias:
        z_f = z_f + forget_bias
    c_next = nn.sigmoid(z_f) * c + nn.sigmoid(z_i) * jnp.tanh(z_g)
    if peephole == "conv":
        z_o = z_o + peephole_conv("peephole_conv_o", c_next)
    elif peephole == "hadamard":
        z_o = z_o + hadamard("peephole_o") * c_next
    h_next = nn.sigmoid(z_o) * jnp.tanh(c_next)
    return (h_next, c_next), h_next


def step_options(cell: JaxCellOptions) -> dict[str, Any]:
    """The options of a cell (Linen or NNX) that its math (`fused_step`, `state_step`) reads."""
    return {
        "peephole": cell.peephole,
        "precision": cell.precision,
        "conv_gradient": cell.conv_gradient,
        "forget_bias": cell.forget_bias,
    }


def check_step(carry: Any, inputs: Any, spec: LayerSpec, input_dim: int | None) -> LayerSpec:
    """Checks one step's carry and inputs; returns `spec` with the inputs' channels as input_dim.

    `input_dim` is the cell's, None where it takes its channels from the input.
    """
    check_floating("inputs", inputs)
    channels = "input_dim" if input_dim is None else input_dim
    if inputs.ndim != spec.spatial_dims + 2 or (input_dim is not None and inputs.shape[-1] != input_dim):
        # A cell without input (input_dim=0) takes a zero-channel X: (B, H, W, 0).
        raise ValueError(
            f"inputs must have shape (B, {spatial_axes(spec.spatial_dims)}, {channels}), got "
            f"{tuple(inputs.shape)} (spatial_dims={spec.spatial_dims})."
        )
    if not isinstance(carry, (tuple, list)) or len(carry) != 2:
        raise TypeError(f"carry must be a pair (h, c), got {type(carry).__name__}.")
    spec = dataclasses.replace(spec, input_dim=inputs.shape[-1])
    check_frame(spec, tuple(inputs.shape[1:-1]))
    expected = (inputs.shape[0], *spec.state_size(inputs.shape[1:-1]), spec.hidden_dim)
    for name, state in zip("hc", carry):
        check_floating(f"carry {name}", state)
        if tuple(state.shape) != expected:
            raise ValueError(f"carry {name} must have shape {expected}, got {tuple(state.shape)}.")
    return spec


def zero_carry(spec: LayerSpec, input_shape: tuple[int, ...], dtype: Dtype) -> Carry:
    """Zero `(h, c)` for a cell of `spec` and inputs of shape (B, *frame, C): each (B, *state, hidden)."""
    shape = (input_shape[0], *spec.state_size(tuple(input_shape[1:-1])), spec.hidden_dim)
    return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)


class _ConvWeights(nn.Module):
    """A convolution's kernel (spatial axes, then in and out channels) and optional bias, drawn as
    torch.nn.ConvNd draws them.

    The input channels, the fan-in of the draw and whether there is a bias are given at the call,
    so that a cell can declare its convolutions before it has seen its input.
    """

    kernel_size: tuple[int, ...]
    features: int
    param_dtype: Dtype

    @nn.compact
    def __call__(self, in_channels: int, fan_in: int, use_bias: bool) -> Weights:
        init = torch_default_init(fan_in)
        shape = (*self.kernel_size, in_channels, self.features)
        weights = {"kernel": self.param("kernel", init, shape, self.param_dtype)}
        if use_bias:
            weights["bias"] = self.param("bias", init, (self.features,), self.param_dtype)
        return weights


class _NormWeights(nn.Module):
    """A layer norm's scale (ones) and shift (zeros), one per channel and position: (*state, 4·hidden).

    Their shape is given at the call, so that a cell can declare its norms before it has seen its
    input; a later call with another shape is refused.
    """

    param_dtype: Dtype

    @nn.compact
    def __call__(self, shape: tuple[int, ...]) -> Weights:
        if self.has_variable("params", "scale"):
            made = tuple(self.get_variable("params", "scale").shape)
            if made != tuple(shape):
                raise ValueError(
                    f"This layer normalises over every position of its state (layer_norm=True): its "
                    f"parameters are for states of {made[:-1]}, got states of {tuple(shape[:-1])} (frames of "
                    "another size than those it was initialised with)."
                )
        return {
            "scale": self.param("scale", nn.initializers.ones_init(), shape, self.param_dtype),
            "bias": self.param("bias", nn.initializers.zeros_init(), shape, self.param_dtype),
        }


@document("jax", JaxCellOptions)
class ConvLSTMCell(JaxCellOptions, nn.RNNCellBase):
    """One ConvLSTM step on channels-last (B, H, W, C) arrays; the carry is `(h, c)`.

    Frames may also be signals (B, L, C) or volumes (B, D, H, W, C): `spatial_dims`. With `*` a
    cross-correlation with "same" zero padding, `∘` the elementwise product, X the input and
    (H, C) the previous state:

        [z_i, z_f, z_o, z_g] = W_x * X + b + W_h * H      (input_to_state, state_to_state)

    (without input, a zero-channel X, the bias moves to state_to_state: W_h * H + b; with
    `layer_norm`, each convolution's output is layer-normalised first: norm_x(W_x * X + b) +
    norm_h(W_h * H), params `input_norm` and `state_norm`; with `forget_bias` b_f, f = σ(z_f + P_f(C) + b_f))
        i = σ(z_i + P_i(C)),  f = σ(z_f + P_f(C)),  g = tanh(z_g)
        C' = f ∘ C + i ∘ g
        o = σ(z_o + P_o(C')),  H' = o ∘ tanh(C')

    where the peephole terms P are, by `peephole`:

    - `"conv"` (KL4805/ConvLSTM-Pytorch): [P_i, P_f] = peephole_conv_if * C and
      P_o = peephole_conv_o * C', convolutions with biases.
    - `"hadamard"` (the paper, Eq. 3): P_i = w_ci ∘ C, P_f = w_cf ∘ C, P_o = w_co ∘ C', one weight per
      channel (params `peephole_i`, `peephole_f`, `peephole_o`), initialised to zero.
    - `None` (ndrplz/ConvLSTM_pytorch): no peephole terms.

    When W_x and W_h have the same kernel size, one convolution over [X, H] computes both, as in the
    reference. Weights and biases are drawn as torch.nn.Conv2d draws those of the reference's single
    convolution over [X, H], so a fresh model starts from the same distribution in both frameworks.
    The cell works with `flax.linen.RNN` as well as inside `ConvLSTM`; its math is `fused_step`,
    `input_projection`, `state_step` and `gates`, applied to its params.

    Attributes:
      hidden_dim: channels of H and C.
      kernel_size: (kh, kw) (one size per spatial axis), or an int for every axis (default 3);
        odd sizes only. The state-to-state kernel (and the peephole convolutions'); also the
        input-to-state one unless `input_kernel_size` is given.
      bias: whether the convolutions have biases.
      input_dim: channels of X, or None (default) to take them from the input.
      {options}

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from convlstm_jax import ConvLSTMCell
      >>> cell = ConvLSTMCell(hidden_dim=8, kernel_size=3)
      >>> x = jnp.zeros((2, 16, 16, 3))
      >>> carry = cell.initialize_carry(jax.random.key(0), x.shape)
      >>> params = cell.init(jax.random.key(1), carry, x)
      >>> (h, c), out = cell.apply(params, carry, x)
      >>> h.shape
      (2, 16, 16, 8)
    """

    hidden_dim: int
    kernel_size: int | tuple[int, ...] = 3
    bias: bool = True
    input_dim: int | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        self.spec()
        check_peephole(self.peephole)
        check_conv_gradient(self.conv_gradient)
        super().__post_init__()

    @nn.nowrap
    def spec(self) -> LayerSpec:
        """The cell's resolved hyperparameters (input_dim 0 when inferred from the input)."""
        return cell_spec(self)

    def setup(self) -> None:
        spec = self.spec()
        hid, kernel = spec.hidden_dim, spec.kernel_size
        self.input_to_state = _ConvWeights(spec.input_kernel_size, 4 * hid, self.param_dtype)
        self.state_to_state = _ConvWeights(kernel, 4 * hid, self.param_dtype)
        if self.layer_norm:
            self.input_norm = _NormWeights(self.param_dtype)
            self.state_norm = _NormWeights(self.param_dtype)
        if self.peephole == "conv":
            self.peephole_conv_if = _ConvWeights(kernel, 2 * hid, self.param_dtype)
            self.peephole_conv_o = _ConvWeights(kernel, hid, self.param_dtype)
        elif self.peephole == "hadamard":
            zeros = nn.initializers.zeros_init()
            self.peephole_i = self.param("peephole_i", zeros, (hid,), self.param_dtype)
            self.peephole_f = self.param("peephole_f", zeros, (hid,), self.param_dtype)
            self.peephole_o = self.param("peephole_o", zeros, (hid,), self.param_dtype)

    def __call__(self, carry: Carry, inputs: jax.Array) -> tuple[Carry, jax.Array]:
        """Runs one step.

        Args:
          carry: `(h, c)`, each of shape (B, H', W', hidden_dim), (H', W') the state's size
            (`spec().state_size((H, W))`: (H, W) unless padding, stride or dilation change it).
          inputs: X, of shape (B, H, W, input_dim) ((B, L, ...) or (B, D, H, W, ...) by
            `spatial_dims`).

        Returns:
          `((h_next, c_next), h_next)`.
        """
        spec = check_step(carry, inputs, self.spec(), self.input_dim)
        if not spec.fused:
            return self.state_step(carry, self.input_projection(inputs) if inputs.shape[-1] else None)
        weights = {
            "input_to_state": self.input_to_state(spec.input_dim, fan_in(spec, "input_to_state"), self.bias),
            "state_to_state": self.state_to_state(spec.hidden_dim, fan_in(spec, "state_to_state"), False),
            **self._peephole_weights(),
        }
        return fused_step(weights, carry, inputs, dtype=self._dtype(inputs), **self._options())

    def input_projection(self, inputs: jax.Array) -> jax.Array:
        """W_x * X + b for inputs of shape (..., *frame, C): any number of leading axes.

        The input-to-state convolution alone (with its padding, stride and dilation): a stack
        applies it to every frame of a sequence at once, outside its time loop. Computed with
        XLA's own convolution and gradients, which are fast outside a loop on every backend.
        """
        spec = dataclasses.replace(self.spec(), input_dim=inputs.shape[-1])
        weights = {"input_to_state": self.input_to_state(spec.input_dim, fan_in(spec, "input_to_state"), self.bias)}
        if self.layer_norm:
            state = spec.state_size(tuple(inputs.shape[-spec.spatial_dims - 1 : -1]))
            weights["input_norm"] = self.input_norm((*state, 4 * spec.hidden_dim))
        return input_projection(weights, inputs, spec, dtype=self._dtype(inputs), precision=self.precision)

    def state_step(self, carry: Carry, projected_inputs: jax.Array | None) -> tuple[Carry, jax.Array]:
        """One step from the input's projection `input_projection(X)` (None for a cell without input)."""
        spec = self.spec()
        with_bias = projected_inputs is None and self.bias  # without input, the bias moves here
        weights = {
            "state_to_state": self.state_to_state(spec.hidden_dim, fan_in(spec, "state_to_state"), with_bias),
            **self._peephole_weights(),
        }
        if self.layer_norm:
            weights["state_norm"] = self.state_norm((*carry[0].shape[1:-1], 4 * spec.hidden_dim))
        dtype = self._dtype(carry[0] if projected_inputs is None else projected_inputs)
        return state_step(weights, carry, projected_inputs, dtype=dtype, **self._options())

    def _peephole_weights(self) -> Weights:
        if self.peephole == "conv":
            spec = self.spec()
            hid, size = spec.hidden_dim, fan_in(spec, "peephole_conv_if")
            return {
                "peephole_conv_if": self.peephole_conv_if(hid, size, self.bias),
                "peephole_conv_o": self.peephole_conv_o(hid, size, self.bias),
            }
        if self.peephole == "hadamard":
            return {"peephole_i": self.peephole_i, "peephole_f": self.peephole_f, "peephole_o": self.peephole_o}
        return {}

    def _options(self) -> dict[str, Any]:
        return step_options(self)

    def _dtype(self, x: jax.Array) -> Dtype:
        return compute_dtype(self.dtype, x, self.param_dtype)

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Carry:
        """Zero `(h, c)` for inputs of shape (B, H, W, C): each (B, H', W', hidden_dim).

        (H', W') is the state's size, `spec().state_size((H, W))`; for signals and volumes the
        frame and state have their own axes. `rng` is unused (the initial state is zero); it is
        there for `flax.linen.RNN`.
        """
        del rng
        spec = self.spec()
        if self.input_dim is None:  # the channels of these inputs
            spec = dataclasses.replace(spec, input_dim=input_shape[-1])
        return zero_carry(spec, input_shape, self.dtype if self.dtype is not None else self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return self.spatial_dims + 1
