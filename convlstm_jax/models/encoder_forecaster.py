"""Models built from ConvLSTM stacks: the encoder-forecaster of Shi et al. 2015 (Sec. 3.2, Fig. 3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype, PrecisionLike

from convlstm_common import NetworkSpec, check_peephole, parse_network, resolve_encoder_forecaster
from convlstm_common.options import declared

from .._cell import check_floating, torch_default_init
from .._conv import check_conv_gradient
from .._convert import flax_to_torch, to_numpy, torch_to_flax
from .._convlstm import ConvLSTM
from ..options import JaxStackOptions
from .patches import depth_to_space, space_to_depth


class EncoderForecaster(nn.Module):
    """The encoding-forecasting network of Shi et al. 2015 (Sec. 3.2, Fig. 3), channels-last.

    Frames (B, T, H, W, C) are cut into p x p patches, (B, T, H/p, W/p, C·p·p). An encoder of
    stacked ConvLSTM layers reads them; a forecaster of the same shape starts from the encoder's
    final states, layer by layer, and runs for `output_frames` steps without input (its first
    layer has no input-to-state convolution, the others read the layer below). Every forecaster
    layer's hidden state is concatenated along channels, a 1x1 convolution with bias maps that
    to C·p·p channels, and the patches are folded back into frames.

    `__call__` returns logits: `jax.nn.sigmoid(logits)` are the predicted frames in [0, 1], and
    the paper's loss is the cross-entropy of those against the targets
    (`optax.sigmoid_binary_cross_entropy(logits, targets)`).

    Build it from the paper's notation with `from_spec`. The same model, with the same parameters
    (converted by `torch_to_flax_encoder_forecaster`), is `convlstm_torch.models.EncoderForecaster`.

    Attributes:
      hidden_dim: hidden channels of each layer (encoder and forecaster alike).
      kernel_size: each layer's state-to-state kernel.
      input_kernel_size: the kernel of every input-to-state convolution.
      in_channels: channels of a frame.
      patch_size: p, the side of the square patches; H and W must be multiples of it.
      output_frames: how many frames the forecaster predicts.
      peephole: `"hadamard"` (the paper, default), `"conv"` or `None`; see `ConvLSTMCell`.
      bias: whether the convolutions have biases (the 1x1 output convolution always has one).
      dtype, param_dtype, precision, conv_gradient, remat, unroll: as in `ConvLSTM`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from convlstm_jax.models import EncoderForecaster
      >>> model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-8", output_frames=2)
      >>> frames = jnp.zeros((2, 3, 16, 16, 1))
      >>> variables = model.init(jax.random.key(0), frames)
      >>> model.apply(variables, frames).shape
      (2, 2, 16, 16, 1)
    """

    hidden_dim: tuple[int, ...]
    kernel_size: tuple[tuple[int, int], ...]
    input_kernel_size: tuple[int, int]
    in_channels: int = 1
    patch_size: int = 4
    output_frames: int = 10
    peephole: str | None = "hadamard"
    bias: bool = True
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    precision: PrecisionLike = None
    conv_gradient: str = "auto"
    remat: bool = False
    unroll: int | None = None

    def __post_init__(self) -> None:
        net = resolve_encoder_forecaster(
            self.hidden_dim,
            self.kernel_size,
            self.input_kernel_size,
            self.in_channels,
            self.patch_size,
            self.output_frames,
        )
        for name in ("hidden_dim", "kernel_size", "input_kernel_size"):
            object.__setattr__(self, name, getattr(net, name))
        check_peephole(self.peephole)
        check_conv_gradient(self.conv_gradient)
        super().__post_init__()

    @classmethod
    def from_spec(
        cls,
        spec: str,
        *,
        in_channels: int = 1,
        patch_size: int = 4,
        output_frames: int = 10,
        **kwargs: Any,
    ) -> EncoderForecaster:
        """Builds the model from the paper's notation, such as "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64".

        The kernel in parentheses is every input-to-state convolution's; then, per layer, the
        state-to-state kernel and the number of hidden states. Other keyword arguments are the
        model's attributes (`peephole`, `dtype`, `remat`, ...).

        Example:
          >>> from convlstm_jax.models import EncoderForecaster
          >>> model = EncoderForecaster.from_spec("ConvLSTM(9x9)-1x1-128-1x1-64")
          >>> model.input_kernel_size, model.kernel_size, model.hidden_dim
          ((9, 9), ((1, 1), (1, 1)), (128, 64))
        """
        net = parse_network(spec)
        return cls(
            hidden_dim=net.hidden_dim,
            kernel_size=net.kernel_size,
            input_kernel_size=net.input_kernel_size,
            in_channels=in_channels,
            patch_size=patch_size,
            output_frames=output_frames,
            **kwargs,
        )

    @property
    def spec(self) -> str:
        """The model in the paper's notation."""
        return str(NetworkSpec(self.input_kernel_size, self.kernel_size, self.hidden_dim))

    @property
    def patch_depth(self) -> int:
        """Channels of a patch: C·p·p."""
        return self.in_channels * self.patch_size**2

    @nn.nowrap
    def stack(self, input_dim: int, name: str | None = None) -> ConvLSTM:
        """The encoder (`input_dim` = C·p·p) or the forecaster (`input_dim` = 0) as a `ConvLSTM`."""
        return ConvLSTM(
            input_dim,
            list(self.hidden_dim),
            list(self.kernel_size),
            len(self.hidden_dim),
            batch_first=True,
            bias=self.bias,
            return_all_layers=True,
            **{f.name: getattr(self, f.name) for f in declared(JaxStackOptions) if f.kw_only and hasattr(self, f.name)},
            name=name,
        )

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        """Predicts the next `output_frames` frames.

        Args:
          frames: the input frames, (B, T, H, W, C), H and W multiples of `patch_size`.

        Returns:
          logits of the predicted frames, (B, output_frames, H, W, C).
        """
        self._check_frames(frames)
        patches = space_to_depth(frames, self.patch_size)
        batch, _, rows, columns, _ = patches.shape
        _, states = self.stack(self.patch_depth, "encoder")(patches)
        dtype = states[0][0].dtype
        no_input = jnp.zeros((batch, self.output_frames, rows, columns, 0), dtype)
        outputs, _ = self.stack(0, "forecaster")(no_input, states)
        fan_in = sum(self.hidden_dim)
        init = torch_default_init(fan_in)
        logits = nn.Conv(
            self.patch_depth,
            (1, 1),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            kernel_init=init,
            bias_init=init,
            name="output",
        )(jnp.concatenate(outputs, axis=-1))
        return depth_to_space(logits, self.patch_size)

    def _check_frames(self, frames: Any) -> None:
        check_floating("frames", frames)
        p, c = self.patch_size, self.in_channels
        if frames.ndim != 5 or frames.shape[-1] != c or 0 in frames.shape:
            raise ValueError(f"frames must have shape (B, T, H, W, {c}), got {tuple(frames.shape)}.")
        height, width = frames.shape[2:4]
        if height % p or width % p:
            raise ValueError(
                f"frames of {height}x{width} do not cut into {p}x{p} patches (patch_size={p}): "
                f"H and W must be multiples of {p}."
            )


def torch_to_flax_encoder_forecaster(
    state_dict: Mapping[str, Any], model: EncoderForecaster, *, dtype: Any = None
) -> dict[str, Any]:
    """Converts a `convlstm_torch.models.EncoderForecaster` state_dict into Flax variables for `model`.

    The keys are the torch model's (`encoder.cell_list.0...`, `forecaster.cell_list.0...`,
    `output.weight`, `output.bias`); a mismatch is one ValueError listing every problem of the
    stack where it lies. Dtypes are kept, or cast with `dtype`, as in `torch_to_flax`.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping from keys to arrays, got {type(state_dict).__name__}.")
    params = {}
    for name, input_dim in (("encoder", model.patch_depth), ("forecaster", 0)):
        stack = model.stack(input_dim)
        params[name] = torch_to_flax(state_dict, stack, prefix=f"{name}.", dtype=dtype)["params"]
    depth, fan_in = model.patch_depth, sum(model.hidden_dim)
    expected = {"output.weight": (depth, fan_in, 1, 1), "output.bias": (depth,)}
    problems = [
        f"key {key!r} is missing (expected shape {shape})"
        if key not in state_dict
        else f"key {key!r} has shape {tuple(state_dict[key].shape)}, expected {shape}"
        for key, shape in expected.items()
        if key not in state_dict or tuple(state_dict[key].shape) != shape
    ]
    known = ("encoder.", "forecaster.", "output.")
    problems += [f"unexpected key {key!r}" for key in state_dict if not key.startswith(known)]
    if problems:
        raise ValueError(f"The state_dict does not match {model.spec}:\n  - " + "\n  - ".join(problems))
    weight, bias = to_numpy(state_dict["output.weight"]), to_numpy(state_dict["output.bias"])
    if dtype is not None:
        weight, bias = weight.astype(dtype), bias.astype(dtype)
    params["output"] = {"kernel": np.transpose(weight, (2, 3, 1, 0)), "bias": bias}
    return {"params": params}


def flax_to_torch_encoder_forecaster(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Converts `EncoderForecaster` variables (or their gradients) into the torch model's state_dict."""
    params = variables["params"] if "params" in variables else variables
    missing = {"encoder", "forecaster", "output"} - set(params)
    if missing:
        raise ValueError(f"These variables are not an EncoderForecaster's: no {sorted(missing)}.")
    state_dict = {}
    for name in ("encoder", "forecaster"):
        state_dict.update({f"{name}.{key}": value for key, value in flax_to_torch(params[name]).items()})
    kernel = to_numpy(params["output"]["kernel"])
    state_dict["output.weight"] = np.array(np.transpose(kernel, (3, 2, 0, 1)), order="C")
    state_dict["output.bias"] = np.array(to_numpy(params["output"]["bias"]))
    return state_dict


__all__ = ["EncoderForecaster", "flax_to_torch_encoder_forecaster", "torch_to_flax_encoder_forecaster"]
