"""1-, 2- and 3-D "same" convolutions whose gradients XLA:CPU computes fast inside a scan.

XLA:CPU runs the gradients of a convolution inside a rolled loop (`lax.scan`) far slower than the
same convolutions outside one: a ConvLSTM train step is ~30x slower than PyTorch's. `conv_same`
gives the convolution its own VJP made of operations that stay fast in a loop:

- the input gradient is a forward convolution of the output gradient with the kernel flipped in
  space and transposed in channels (materialised once, behind `lax.optimization_barrier`, so XLA
  does not fold the flip back into a gradient convolution);
- the weight gradient is one contraction per kernel tap: the zero-padded input shifted by the tap
  against the output gradient, over frames and spatial axes: (C_in, C_out) per tap.

The forward pass is XLA's own convolution. `conv_gradient="auto"` chooses per platform when the
computation is lowered (`lax.platform_dependent`): "tapwise" on CPU, XLA's own gradients elsewhere,
where cuDNN and the TPU compiler do not share the pathology. So a computation placed on CPU devices
of a GPU host gets the CPU's choice, and one `jax.export` for several platforms holds each one's.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name

CONV_GRADIENTS = ("auto", "xla", "tapwise")


def channels_last_dimensions(spatial_dims: int) -> tuple[str, str, str]:
    """`lax.conv_general_dilated`'s dimension numbers for channels-last frames of any rank:
    ("NWC", "WIO", "NWC"), ("NHWC", "HWIO", "NHWC") or ("NDHWC", "DHWIO", "NDHWC")."""
    spatial = "DHW"[3 - spatial_dims :]
    return f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"


def check_conv_gradient(conv_gradient: Any) -> str:
    """Returns `conv_gradient` if it names a strategy in `CONV_GRADIENTS`, else raises ValueError."""
    if conv_gradient not in CONV_GRADIENTS:
        raise ValueError(f"conv_gradient must be one of {CONV_GRADIENTS}, got {conv_gradient!r}.")
    return conv_gradient


def resolve_conv_gradient(conv_gradient: str, platform: str | None = None) -> str:
    """Returns "xla" or "tapwise": "auto" is "tapwise" on the CPU and "xla" on GPUs and TPUs.

    `platform` ("cpu", "cuda", "rocm", "tpu", ...) defaults to JAX's default backend. The model
    itself does not call this: it leaves "auto" to `conv`, which chooses when lowering.
    """
    if check_conv_gradient(conv_gradient) == "auto":
        return "tapwise" if (platform or jax.default_backend()) == "cpu" else "xla"
    return conv_gradient


_UNROLL = {"gpu": 5}
"""Time steps per scan iteration where `unroll` is None, per backend (1 elsewhere). On an H200, 5
made the train step 1.13x (W1) and 1.09x (Moving MNIST) faster than 1 (BENCHMARKS.md, "unroll on
the GPU"); on CPU unrolling gained nothing; TPU is not measured."""


def check_unroll(unroll: Any) -> None:
    """Raises ValueError unless `unroll` is None or a positive int."""
    if unroll is not None and (isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1):
        raise ValueError(
            f"unroll must be a positive int (time steps per scan iteration) or None (per backend), got {unroll!r}."
        )


def resolve_unroll(unroll: int | None) -> int:
    """`unroll`, or where it is None the backend's own: 5 on GPU, 1 on CPU and TPU.

    Unlike `conv_gradient="auto"`, this choice cannot follow the platform a computation is lowered
    for: the scan's unroll is fixed when it is traced, so None reads JAX's default backend then.
    Give an int to export for another platform with its own value.
    """
    check_unroll(unroll)
    return _UNROLL.get(jax.default_backend(), 1) if unroll is None else unroll


CONV_OUTPUT = "convlstm_conv"
"""The name (`jax.ad_checkpoint.checkpoint_name`) every `conv` output carries, so that a remat
policy can keep the convolutions and recompute the rest."""


def step_remat(remat: bool, dtype: Any) -> dict[str, Any] | None:
    """How a layer's time step is rematerialised: keyword arguments for `nn.remat`/`nnx.remat`, or
    None for no remat.

    `remat=True` recomputes everything. In float64, where `remat` is False, the step is still
    rematerialised, keeping every convolution's output (`CONV_OUTPUT`) and recomputing only the
    elementwise gate math: XLA:CPU (jaxlib 0.10.2, on processors without AVX-512 or with
    `--xla_cpu_max_isa=AVX2`) otherwise computes wrong float64 gradients of a conv-peephole layer
    in the rolled loop for some frame sizes (8, 12, 16, ...; `tools/xla_cpu_float64_repro.py`),
    silently. Keeping the convolutions makes the recomputation cheap; float32 and bfloat16 are not
    affected and run as they are.
    """
    if remat:
        return {}
    if jnp.dtype(dtype) == jnp.float64:
        return {"policy": jax.checkpoint_policies.save_only_these_names(CONV_OUTPUT)}
    return None


_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""XLA:CPU options: convolutions and dots by Eigen rather than YNNPACK (jaxlib's default)."""


def compiler_options(backend: str | jax.Device | None = None) -> dict[str, Any]:
    """The XLA options a ConvLSTM runs fastest with on `backend` (default: JAX's default backend).

    `backend` is a platform name ("cpu", "gpu", "tpu") or a device: compiler options belong to one
    platform's compiler, so pass the platform the computation will run on where it is not the
    default backend (`compiler_options(x.devices().pop())`).

    For `jax.jit(fn, compiler_options=compiler_options())`. On CPU, Eigen's convolutions and dots
    instead of YNNPACK's (jaxlib's default): measured in BENCHMARKS.md, W1's forward pass 1.9x
    faster and its train step 1.26x, Moving MNIST's 1.3x and 1.08x; the results differ by float
    rounding only. Empty on GPU and TPU, and on a jaxlib that does not know the option (checked
    once by compiling a no-op with it).
    """
    if isinstance(backend, jax.Device):
        backend = backend.platform
    if (backend or jax.default_backend()) != "cpu" or not _cpu_options_known():
        return {}
    return dict(_CPU_OPTIONS)


@functools.cache
def _cpu_options_known() -> bool:
    try:
        jax.jit(lambda x: x).lower(jnp.zeros(())).compile(compiler_options=_CPU_OPTIONS)
    except jax.errors.JaxRuntimeError:  # "No such compile option"
        return False
    return True


def conv(x: jax.Array, kernel: jax.Array, conv_gradient: str, precision: Any = None) -> jax.Array:
    """The library's one convolution: "same", stride 1, channels-last frames (N, ..., C) by a
    (..., C_in, C_out) kernel of any spatial rank, differentiated per strategy.

    "auto" is resolved per platform when the computation is lowered: "tapwise" on CPU, "xla"
    elsewhere. Lowered for one platform, only that platform's branch is compiled.
    """

    def tapwise(x: jax.Array, kernel: jax.Array) -> jax.Array:
        return conv_same(x, kernel, precision)

    def xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
        return _conv(x, kernel, precision)

    if check_conv_gradient(conv_gradient) == "auto":
        y = lax.platform_dependent(x, kernel, cpu=tapwise, default=xla)
    else:
        y = tapwise(x, kernel) if conv_gradient == "tapwise" else xla(x, kernel)
    return checkpoint_name(y, CONV_OUTPUT)


def _conv(x: jax.Array, kernel: jax.Array, precision: Any) -> jax.Array:
    rank = kernel.ndim - 2
    dimensions = channels_last_dimensions(rank)
    return lax.conv_general_dilated(x, kernel, (1,) * rank, "SAME", dimension_numbers=dimensions, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_same(x: jax.Array, kernel: jax.Array, precision: Any = None) -> jax.Array:
    """A stride-1 cross-correlation with zero padding k // 2 of channels-last `x` (N, ..., C_in) by
    an odd kernel (..., C_in, C_out): (W, I, O), (H, W, I, O) or (D, H, W, I, O)."""
    return _conv(x, kernel, precision)


def _conv_same_fwd(x, kernel, precision):
    return _conv(x, kernel, precision), (x, kernel)


def _conv_same_bwd(precision, residuals, grad):
    x, kernel = residuals
    size = kernel.shape[:-2]
    spatial = tuple(range(len(size)))
    # dL/dx: the output gradient correlated with the kernel flipped in space, in <-> out swapped.
    flipped = lax.optimization_barrier(jnp.swapaxes(jnp.flip(kernel, spatial), -1, -2))
    grad_x = _conv(grad, flipped, precision)
    # dL/dkernel[tap] = Σ_{n, position} x_padded[n, position + tap, :]ᵀ grad[n, position, :]: one
    # contraction per tap, over (n, positions) directly: no reshape, so a frame split across devices
    # stays split.
    frame = x.shape[1:-1]
    padded = jnp.pad(x, ((0, 0), *((k // 2, k // 2) for k in size), (0, 0)))
    axes = tuple(range(len(size) + 1))
    # Each tap as (C_out, C_in) = gradᵀ · window: XLA:CPU then transposes the output gradient once
    # per call rather than every tap's window (train steps 3% faster on W1, 6% on Moving MNIST).
    accumulate = jnp.float32 if kernel.dtype == jnp.bfloat16 else None
    taps = [
        lax.dot_general(
            grad,
            padded[(slice(None), *(slice(i, i + n) for i, n in zip(tap, frame)))],
            ((axes, axes), ((), ())),
            precision=precision,
            preferred_element_type=accumulate,
        )
        for tap in itertools.product(*(range(k) for k in size))
    ]
    grad_kernel = jnp.swapaxes(jnp.stack(taps), -1, -2).reshape(kernel.shape).astype(kernel.dtype)
    return grad_x, grad_kernel


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)
