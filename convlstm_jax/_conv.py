"""2-D "same" convolutions whose gradients XLA:CPU computes fast inside a scan.

XLA:CPU runs the gradients of a convolution inside a rolled loop (`lax.scan`) far slower than the
same convolutions outside one: a ConvLSTM train step is ~30x slower than PyTorch's. `conv_same`
gives the convolution its own VJP made of operations that stay fast in a loop:

- the input gradient is a forward convolution of the output gradient with the kernel flipped in
  space and transposed in channels (materialised once, behind `lax.optimization_barrier`, so XLA
  does not fold the flip back into a gradient convolution);
- the weight gradient is one contraction per kernel tap: the zero-padded input shifted by the tap
  against the output gradient, over frames, rows and columns: (C_in, C_out) per tap.

The forward pass is XLA's own convolution. The strategy is chosen per backend by
`resolve_conv_gradient` ("tapwise" on CPU, XLA's own gradients elsewhere, where cuDNN and the TPU
compiler do not share the pathology).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

CONV_GRADIENTS = ("auto", "xla", "tapwise")
_NHWC = ("NHWC", "HWIO", "NHWC")


def check_conv_gradient(conv_gradient: Any) -> str:
    """Returns `conv_gradient` if it names a strategy in `CONV_GRADIENTS`, else raises ValueError."""
    if conv_gradient not in CONV_GRADIENTS:
        raise ValueError(f"conv_gradient must be one of {CONV_GRADIENTS}, got {conv_gradient!r}.")
    return conv_gradient


def resolve_conv_gradient(conv_gradient: str) -> str:
    """Returns "xla" or "tapwise"; "auto" is "tapwise" on CPU and "xla" on GPU and TPU."""
    if check_conv_gradient(conv_gradient) == "auto":
        return "tapwise" if jax.default_backend() == "cpu" else "xla"
    return conv_gradient


def conv(x: jax.Array, kernel: jax.Array, conv_gradient: str, precision: Any = None) -> jax.Array:
    """The library's one convolution: "same", stride 1, NHWC by HWIO, differentiated per strategy."""
    if resolve_conv_gradient(conv_gradient) == "tapwise":
        return conv_same(x, kernel, precision)
    return _conv(x, kernel, precision)


def _conv(x: jax.Array, kernel: jax.Array, precision: Any) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_same(x: jax.Array, kernel: jax.Array, precision: Any = None) -> jax.Array:
    """A stride-1 cross-correlation with zero padding k // 2 of NHWC `x` by an odd HWIO `kernel`."""
    return _conv(x, kernel, precision)


def _conv_same_fwd(x, kernel, precision):
    return _conv(x, kernel, precision), (x, kernel)


def _conv_same_bwd(precision, residuals, grad):
    x, kernel = residuals
    kh, kw, c_in, c_out = kernel.shape
    # dL/dx: the output gradient correlated with the kernel flipped in space, in <-> out swapped.
    flipped = lax.optimization_barrier(jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
    grad_x = _conv(grad, flipped, precision)
    # dL/dkernel[i, j] = Σ_{n, r, c} x_padded[n, r + i, c + j, :]ᵀ grad[n, r, c, :]: one contraction per
    # tap, over (n, r, c) directly: no reshape, so a frame split across devices stays split.
    _, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    taps = [
        lax.dot_general(
            padded[:, i : i + h, j : j + w, :],
            grad,
            (((0, 1, 2), (0, 1, 2)), ((), ())),
            precision=precision,
            preferred_element_type=jnp.float32 if kernel.dtype == jnp.bfloat16 else None,
        )
        for i in range(kh)
        for j in range(kw)
    ]
    grad_kernel = jnp.stack(taps).reshape(kh, kw, c_in, c_out).astype(kernel.dtype)
    return grad_x, grad_kernel


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)
