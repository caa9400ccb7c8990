"""Resolution and validation of ConvLSTM hyperparameters."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

PEEPHOLES = ("conv", "hadamard", None)
"""The peephole variants: the seed's convolutions of the cell state, the paper's per-channel
(Hadamard) weights, or none (ndrplz)."""


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One layer of a stack: its input channels, hidden channels and (kh, kw) kernel."""

    input_dim: int
    hidden_dim: int
    kernel_size: tuple[int, int]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_size(name: str, value: Any) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__}).")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}.")
    return int(value)


def resolve_kernel(kernel_size: Any, name: str = "kernel_size") -> tuple[int, int]:
    """Returns `kernel_size` as a (kh, kw) tuple of positive odd ints.

    An int k means (k, k). Even sizes are rejected: with zero padding k // 2 they shift the output
    by one pixel, which is never what a recurrent state wants.

    Raises:
      TypeError: `kernel_size` is not an int or a pair of ints.
      ValueError: a size is zero, negative or even.
    """
    if _is_int(kernel_size):
        kernel_size = (kernel_size, kernel_size)
    if not isinstance(kernel_size, Sequence) or isinstance(kernel_size, str) or len(kernel_size) != 2:
        raise TypeError(f"{name} must be an int or a pair (kh, kw) of ints, got {kernel_size!r}.")
    kh, kw = (_check_size(name, k) for k in kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(
            f"{name} must be odd in both dimensions (zero padding k // 2 keeps the frame size only "
            f"for odd kernels), got {(kh, kw)}."
        )
    return kh, kw


def _per_layer(name: str, value: Any, num_layers: int, is_one: Any, one: str) -> list[Any]:
    if is_one(value):
        return [value] * num_layers
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be {one}, or a list of {num_layers} (one per layer), got {value!r}.")
    if len(value) != num_layers:
        raise ValueError(
            f"{name} must have one entry per layer: num_layers is {num_layers}, got {len(value)} "
            f"entries ({list(value)!r})."
        )
    return list(value)


def _is_one_kernel(value: Any) -> bool:
    # A tuple of two ints is one kernel (the seed's convention); a list is one entry per layer.
    return _is_int(value) or (isinstance(value, tuple) and len(value) == 2 and all(map(_is_int, value)))


def resolve_layers(input_dim: int | None, hidden_dim: Any, kernel_size: Any, num_layers: Any) -> tuple[LayerSpec, ...]:
    """Resolves the stack's arguments into one `LayerSpec` per layer.

    Args:
      input_dim: channels of the input, or None where they are inferred later (the layers' input
        dims then start with 0, to be filled in from the input).
      hidden_dim: an int, or a list of ints with one per layer.
      kernel_size: an int, a (kh, kw) tuple, or a list with one of those per layer.
      num_layers: the number of stacked layers.

    Raises:
      TypeError: an argument has the wrong type.
      ValueError: a size is zero or negative, a kernel is even, or a list's length is not
        `num_layers`.
    """
    num_layers = _check_size("num_layers", num_layers)
    if input_dim is not None:
        input_dim = _check_size("input_dim", input_dim)
    hidden = [_check_size("hidden_dim", h) for h in _per_layer("hidden_dim", hidden_dim, num_layers, _is_int, "an int")]
    kernels = [
        resolve_kernel(k)
        for k in _per_layer("kernel_size", kernel_size, num_layers, _is_one_kernel, "an int or a (kh, kw) tuple")
    ]
    inputs = [input_dim or 0, *hidden[:-1]]
    return tuple(LayerSpec(i, h, k) for i, h, k in zip(inputs, hidden, kernels))


def resolve_cell(input_dim: int | None, hidden_dim: Any, kernel_size: Any) -> LayerSpec:
    """Resolves one cell's arguments (single values, not per-layer lists) into a `LayerSpec`.

    `input_dim` may be None where it is inferred later (it is then 0 in the result).
    """
    return LayerSpec(
        0 if input_dim is None else _check_size("input_dim", input_dim),
        _check_size("hidden_dim", hidden_dim),
        resolve_kernel(kernel_size),
    )


def check_peephole(peephole: Any) -> str | None:
    """Returns `peephole` if it names a variant in `PEEPHOLES`, else raises ValueError."""
    if peephole not in PEEPHOLES:
        raise ValueError(f"peephole must be one of {PEEPHOLES}, got {peephole!r}.")
    return peephole
