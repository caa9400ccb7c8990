"""Resolution and validation of ConvLSTM hyperparameters."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

PEEPHOLES = ("conv", "hadamard", None)
"""The peephole variants: KL4805/ConvLSTM-Pytorch's convolutions of the cell state, the paper's per-channel
(Hadamard) weights, or none (ndrplz)."""


SPATIAL_DIMS = (1, 2, 3)
"""The spatial ranks a ConvLSTM runs on: sequences of signals (1), of images (2), of volumes (3)."""

_AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def spatial_axes(spatial_dims: int) -> str:
    """The names of a frame's spatial axes, for messages and docstrings: "L", "H, W" or "D, H, W"."""
    return ", ".join(_AXES[spatial_dims])


def check_spatial_dims(spatial_dims: Any) -> int:
    """Returns `spatial_dims` if it is 1, 2 or 3, else raises TypeError or ValueError."""
    if not _is_int(spatial_dims):
        raise TypeError(f"spatial_dims must be 1, 2 or 3 (an int), got {spatial_dims!r}.")
    if spatial_dims not in SPATIAL_DIMS:
        raise ValueError(f"spatial_dims must be 1 (signals), 2 (images) or 3 (volumes), got {spatial_dims}.")
    return int(spatial_dims)


def _size(frame: Sequence[int]) -> str:
    return "x".join(str(n) for n in frame)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One layer of a stack: its input channels, hidden channels and kernels.

    A kernel, stride or dilation has one entry per spatial axis: (kh, kw) for images, (k,) for
    signals, (kd, kh, kw) for volumes; `spatial_dims` is their number. `kernel_size` is the
    state-to-state kernel; `input_kernel_size` the input-to-state kernel (the same unless given).
    `input_dim` 0 is a layer without input (the forecaster's first layer in Shi et al. 2015): it has
    no input-to-state convolution. `stride` and `dilation` default to 1 on every axis. A layer with
    `layer_norm` normalises each convolution's output over its channels and positions; its
    parameters then hold every position of the state, for input frames of `frame_size` (None where
    it is taken from the first input).
    """

    input_dim: int
    hidden_dim: int
    kernel_size: tuple[int, ...]
    input_kernel_size: tuple[int, ...] | None = None
    padding: str = "same"
    stride: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    layer_norm: bool = False
    frame_size: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        ones = (1,) * len(self.kernel_size)
        for name, default in (("input_kernel_size", self.kernel_size), ("stride", ones), ("dilation", ones)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)

    @property
    def spatial_dims(self) -> int:
        """The number of spatial axes: 1, 2 or 3."""
        return len(self.kernel_size)

    @property
    def fused(self) -> bool:
        """Whether one convolution over [X, H] computes both paths: an input, equal kernels, an
        input-to-state convolution that keeps the frame size ("same", stride 1, dilation 1), and no
        layer norm (which normalises each convolution's output on its own)."""
        plain = self.padding == "same" and set(self.stride) == {1} and set(self.dilation) == {1}
        return self.input_dim > 0 and self.input_kernel_size == self.kernel_size and plain and not self.layer_norm

    @property
    def state_frame(self) -> tuple[int, ...] | None:
        """The state's spatial size for frames of `frame_size` (None where that is not given)."""
        return None if self.frame_size is None else self.state_size(self.frame_size)

    @property
    def input_padding(self) -> tuple[int, ...]:
        """The zero padding of the input-to-state convolution, per axis and side: dilation·(k // 2) or 0."""
        if self.padding == "valid":
            return (0,) * self.spatial_dims
        return tuple(d * (k // 2) for d, k in zip(self.dilation, self.input_kernel_size))

    def state_size(self, frame: tuple[int, ...]) -> tuple[int, ...]:
        """The spatial size of this layer's state for input frames of size `frame`.

        Per axis, "same" keeps ceil(n / stride); "valid" leaves floor((n - dilation·(k - 1) - 1) / stride) + 1.
        A layer without input keeps the frame's size.

        Raises:
          ValueError: the frame is too small for the input-to-state convolution.
        """
        if not self.input_dim:  # no input-to-state convolution: the state keeps the frame's size
            return tuple(frame)
        size = tuple(
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, p, d, k, s in zip(frame, self.input_padding, self.dilation, self.input_kernel_size, self.stride)
        )
        if any(n < 1 for n in size):  # one axis at a time: symbolic sizes (jax.export) compare so
            raise ValueError(
                f"Frames of {_size(frame)} are too small for the input-to-state convolution "
                f"({_size(self.input_kernel_size)} kernel, padding={self.padding!r}, dilation={self.dilation}): its "
                f"output would be {_size(size)}."
            )
        return size


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_size(name: str, value: Any, minimum: int = 1) -> int:
    what = "a positive int" if minimum == 1 else "a non-negative int (0: no input)"
    if not _is_int(value):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value}.")
    return int(value)


_KERNEL_FORMS = {1: "(k,)", 2: "(kh, kw)", 3: "(kd, kh, kw)"}


def _tuple_form(spatial_dims: int) -> str:
    return {1: "a 1-tuple", 2: "a pair", 3: "a triple"}[spatial_dims]


def resolve_kernel(kernel_size: Any, name: str = "kernel_size", spatial_dims: int = 2) -> tuple[int, ...]:
    """Returns `kernel_size` as a tuple of `spatial_dims` positive odd ints ((kh, kw) for images).

    An int k means k on every axis. Even sizes are rejected: with zero padding k // 2 they shift
    the output by one pixel, which is never what a recurrent state wants.

    Raises:
      TypeError: `kernel_size` is not an int or a tuple of `spatial_dims` ints.
      ValueError: a size is zero, negative or even.
    """
    if _is_int(kernel_size):
        kernel_size = (kernel_size,) * spatial_dims
    if not isinstance(kernel_size, Sequence) or isinstance(kernel_size, str) or len(kernel_size) != spatial_dims:
        raise TypeError(
            f"{name} must be an int or {_tuple_form(spatial_dims)} {_KERNEL_FORMS[spatial_dims]} of ints "
            f"(spatial_dims={spatial_dims}), got {kernel_size!r}."
        )
    kernel = tuple(_check_size(name, k) for k in kernel_size)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(
            f"{name} must be odd on every axis (zero padding k // 2 keeps the frame size only "
            f"for odd kernels), got {kernel}."
        )
    return kernel


def _per_layer(name: str, value: Any, num_layers: int, is_one: Any, one: str) -> list[Any]:
    if is_one(value):
        return [value] * num_layers
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be {one}, or a list of {num_layers} (one per layer), got {value!r}.")
    if len(value) != num_layers:
        raise ValueError(
            f"{name} must have one entry per layer: num_layers is {num_layers}, got {len(value)} entries "
            f"({value!r}); or be {one}, for every layer."
        )
    return list(value)


def _one_kernel(spatial_dims: int) -> Any:
    # A tuple of `spatial_dims` ints is one kernel (KL4805/ConvLSTM-Pytorch's convention for pairs); a list is one
    # entry per layer.
    def is_one(value: Any) -> bool:
        return _is_int(value) or (isinstance(value, tuple) and len(value) == spatial_dims and all(map(_is_int, value)))

    return is_one


PADDINGS = ("same", "valid")


def _resolve_step(value: Any, name: str, spatial_dims: int) -> tuple[int, ...]:
    if _is_int(value):
        value = (value,) * spatial_dims
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != spatial_dims:
        raise TypeError(
            f"{name} must be an int or {_tuple_form(spatial_dims)} of ints (spatial_dims={spatial_dims}), "
            f"got {value!r}."
        )
    return tuple(_check_size(name, v) for v in value)


def resolve_layers(
    input_dim: int | None,
    hidden_dim: Any,
    kernel_size: Any,
    num_layers: Any,
    input_kernel_size: Any = None,
    padding: Any = "same",
    stride: Any = 1,
    dilation: Any = 1,
    spatial_dims: Any = 2,
    layer_norm: Any = False,
    frame_size: Any = None,
) -> tuple[LayerSpec, ...]:
    """Resolves the stack's arguments into one `LayerSpec` per layer.

    Args:
      input_dim: channels of the input; 0 for a stack without input (its first layer has no
        input-to-state convolution); None where they are inferred later (the layers' input dims
        then start with 0, to be filled in from the input).
      hidden_dim: an int, or a list of ints with one per layer.
      kernel_size: the state-to-state kernel: an int, a tuple with one size per spatial axis
        ((kh, kw) for images), or a list with one of those per layer.
      num_layers: the number of stacked layers.
      input_kernel_size: the input-to-state kernel, in the same forms; None for `kernel_size`.
      padding: the input-to-state convolution's: "same" (zero padding dilation·(k // 2)) or
        "valid" (none), or a list with one per layer.
      stride: the input-to-state convolution's stride: an int, a tuple, or a list of those.
      dilation: the input-to-state convolution's dilation, in the same forms.
      spatial_dims: the frames' spatial axes: 1 (signals), 2 (images, default) or 3 (volumes).
      layer_norm: whether every layer normalises its convolutions' outputs.
      frame_size: the input frames' spatial size (an int for every axis, or a tuple), or None; each
        layer's is the state size of the layer below.

    Raises:
      TypeError: an argument has the wrong type.
      ValueError: a size is zero or negative, a kernel is even, or a list's length is not
        `num_layers`.
    """
    rank = check_spatial_dims(spatial_dims)
    num_layers = _check_size("num_layers", num_layers)
    if input_dim is not None:
        input_dim = _check_size("input_dim", input_dim, minimum=0)
    hidden = [_check_size("hidden_dim", h) for h in _per_layer("hidden_dim", hidden_dim, num_layers, _is_int, "an int")]
    is_one, one = _one_kernel(rank), f"an int or {_tuple_form(rank)} {_KERNEL_FORMS[rank]}"

    def per_layer(name: str, value: Any) -> list[Any]:
        return _per_layer(name, value, num_layers, is_one, one)

    kernels = [resolve_kernel(k, "kernel_size", rank) for k in per_layer("kernel_size", kernel_size)]
    if input_kernel_size is None:
        input_kernels = kernels
    else:
        input_kernels = [
            resolve_kernel(k, "input_kernel_size", rank) for k in per_layer("input_kernel_size", input_kernel_size)
        ]
    paddings = _per_layer("padding", padding, num_layers, lambda v: isinstance(v, str), '"same" or "valid"')
    for value in paddings:
        if value not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {value!r}.")
    strides = [_resolve_step(v, "stride", rank) for v in per_layer("stride", stride)]
    dilations = [_resolve_step(v, "dilation", rank) for v in per_layer("dilation", dilation)]
    norm = check_flag("layer_norm", layer_norm)
    frame = None if frame_size is None else _resolve_step(frame_size, "frame_size", rank)
    inputs = [input_dim or 0, *hidden[:-1]]
    specs = []
    for layer in zip(inputs, hidden, kernels, input_kernels, paddings, strides, dilations):
        spec = LayerSpec(*layer, layer_norm=norm, frame_size=frame)
        frame = spec.state_frame  # what the next layer reads
        specs.append(spec)
    return tuple(specs)


def resolve_cell(
    input_dim: int | None,
    hidden_dim: Any,
    kernel_size: Any,
    input_kernel_size: Any = None,
    padding: Any = "same",
    stride: Any = 1,
    dilation: Any = 1,
    spatial_dims: Any = 2,
    layer_norm: Any = False,
    frame_size: Any = None,
) -> LayerSpec:
    """Resolves one cell's arguments (single values, not per-layer lists) into a `LayerSpec`.

    `input_dim` may be 0 (a cell without input) or None where it is inferred later (it is then 0
    in the result). `input_kernel_size` None means `kernel_size`.
    """
    rank = check_spatial_dims(spatial_dims)
    if not isinstance(padding, str) or padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}.")
    kernel = resolve_kernel(kernel_size, "kernel_size", rank)
    return LayerSpec(
        0 if input_dim is None else _check_size("input_dim", input_dim, minimum=0),
        _check_size("hidden_dim", hidden_dim),
        kernel,
        kernel if input_kernel_size is None else resolve_kernel(input_kernel_size, "input_kernel_size", rank),
        padding,
        _resolve_step(stride, "stride", rank),
        _resolve_step(dilation, "dilation", rank),
        check_flag("layer_norm", layer_norm),
        None if frame_size is None else _resolve_step(frame_size, "frame_size", rank),
    )


def check_frame(spec: LayerSpec, frame: tuple[int, ...]) -> None:
    """Raises ValueError if a layer with `layer_norm`, made for frames of `spec.frame_size`, gets
    frames of another size."""
    if spec.layer_norm and spec.frame_size is not None and tuple(frame) != spec.frame_size:
        raise ValueError(
            f"This layer normalises over every position of its state (layer_norm=True): its parameters "
            f"are for frames of {_size(spec.frame_size)} (frame_size), got frames of {_size(frame)}."
        )


def check_real(name: str, value: Any) -> float:
    """Returns `value` as a float if it is a finite real number, else raises TypeError or ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return float(value)


def check_flag(name: str, value: Any) -> bool:
    """Returns `value` if it is a bool, else raises TypeError naming `name`."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__}).")
    return value


def check_rate(name: str, rate: Any) -> float:
    """Returns a dropout `rate` in [0, 1), else raises ValueError naming `name`."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"{name} must be a rate in [0, 1), got {rate!r}.")
    return float(rate)


def resolve_encoder_forecaster(
    hidden_dim: Any,
    kernel_size: Any,
    input_kernel_size: Any,
    in_channels: Any,
    patch_size: Any,
    output_frames: Any,
) -> NetworkSpec:
    """Checks an encoder-forecaster's hyperparameters and returns its layers as a `NetworkSpec`.

    Raises:
      TypeError: `hidden_dim` is not a non-empty sequence.
      ValueError: `kernel_size` does not give one kernel per layer, a kernel is even, or a size
        (`in_channels`, `patch_size`, `output_frames`, a hidden dim) is not a positive int.
    """
    if not isinstance(hidden_dim, (tuple, list)) or not hidden_dim:
        raise TypeError(f"hidden_dim must be a non-empty sequence of ints (one per layer), got {hidden_dim!r}.")
    if not isinstance(kernel_size, (tuple, list)) or len(kernel_size) != len(hidden_dim):
        raise ValueError(f"kernel_size must give one kernel per layer ({len(hidden_dim)}), got {kernel_size!r}.")
    for name, value in (("in_channels", in_channels), ("patch_size", patch_size), ("output_frames", output_frames)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return NetworkSpec(
        resolve_kernel(input_kernel_size, "input_kernel_size"),
        tuple(resolve_kernel(k) for k in kernel_size),
        tuple(_check_size("hidden_dim", h) for h in hidden_dim),
    )


def check_peephole(peephole: Any) -> str | None:
    """Returns `peephole` if it names a variant in `PEEPHOLES`, else raises ValueError."""
    if peephole not in PEEPHOLES:
        raise ValueError(f"peephole must be one of {PEEPHOLES}, got {peephole!r}.")
    return peephole


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A network in Shi et al. 2015's notation, such as "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64".

    Attributes:
      input_kernel_size: the kernel of every input-to-state convolution (in parentheses).
      kernel_size: per layer, the state-to-state kernel.
      hidden_dim: per layer, the number of hidden states.
    """

    input_kernel_size: tuple[int, int]
    kernel_size: tuple[tuple[int, int], ...]
    hidden_dim: tuple[int, ...]

    @property
    def num_layers(self) -> int:
        return len(self.hidden_dim)

    def __str__(self) -> str:
        def kernel(k: tuple[int, int]) -> str:
            return f"{k[0]}x{k[1]}"

        layers = "".join(f"-{kernel(k)}-{h}" for k, h in zip(self.kernel_size, self.hidden_dim))
        return f"ConvLSTM({kernel(self.input_kernel_size)}){layers}"


_KERNEL = r"(\d+)x(\d+)"
_SPEC = re.compile(rf"ConvLSTM\({_KERNEL}\)((?:-{_KERNEL}-\d+)+)")


def parse_network(spec: str) -> NetworkSpec:
    """Parses the paper's notation "ConvLSTM(kxk)-kxk-N-kxk-N-..." into a `NetworkSpec`.

    The kernel in parentheses is that of every input-to-state convolution; then, per layer, the
    state-to-state kernel and the number of hidden states.

    Example:
      >>> from convlstm_common import parse_network
      >>> net = parse_network("ConvLSTM(9x9)-1x1-128-1x1-64")
      >>> net.input_kernel_size, net.kernel_size, net.hidden_dim
      ((9, 9), ((1, 1), (1, 1)), (128, 64))

    Raises:
      TypeError: `spec` is not a string.
      ValueError: `spec` is not in that notation, or a size is zero or a kernel even.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string such as 'ConvLSTM(5x5)-5x5-64', got {type(spec).__name__}.")
    match = _SPEC.fullmatch(spec.replace(" ", ""))
    if match is None:
        raise ValueError(
            f"spec must be in the notation of Shi et al. 2015, 'ConvLSTM(<kh>x<kw>)' then '-<kh>x<kw>-<hidden>' "
            f"per layer (e.g. 'ConvLSTM(5x5)-5x5-128-5x5-64'), got {spec!r}."
        )
    input_kernel = resolve_kernel((int(match.group(1)), int(match.group(2))), "the input-to-state kernel")
    layers = re.findall(rf"-{_KERNEL}-(\d+)", match.group(3))
    kernels = tuple(resolve_kernel((int(kh), int(kw)), "a state-to-state kernel") for kh, kw, _ in layers)
    hidden = tuple(_check_size("a layer's hidden states", int(h)) for _, _, h in layers)
    return NetworkSpec(input_kernel, kernels, hidden)


def check_int(name: str, value: Any, minimum: int) -> int:
    """Returns `value` as an int; TypeError unless it is an integer (not a bool), ValueError if below `minimum`."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value}.")
    return int(value)
