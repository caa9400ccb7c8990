"""The JAX fronts' own options, declared once (the shared ones are `convlstm_common.options`)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from flax.typing import Dtype, PrecisionLike

from convlstm_common.options import CellOptions, StackOptions, option


@dataclasses.dataclass(eq=False, kw_only=True)
class JaxCellOptions(CellOptions):
    """The keyword options of the JAX cells (Linen and NNX): the shared ones and these."""

    dtype: Dtype | None = option(None, doc="the dtype of the computation (default: inferred from input and params).")
    param_dtype: Dtype = option(jnp.float32, doc="the dtype of the parameters.")
    precision: PrecisionLike = option(None, doc="the precision of the convolutions (`jax.lax.Precision`).")
    conv_gradient: str = option(
        "auto",
        doc='how convolution gradients are computed: `"xla"` (XLA\'s own), `"tapwise"` (flipped-kernel '
        "convolutions and one matmul per kernel tap, fast inside a loop on CPU; see `convlstm_jax._conv`), "
        'or `"auto"` (default: chosen per platform when the computation is lowered, `"tapwise"` on CPU '
        'and `"xla"` elsewhere). The forward pass is the same, and every choice gives the same results '
        "up to float rounding.",
    )


@dataclasses.dataclass(eq=False)
class JaxStackOptions(StackOptions, JaxCellOptions):
    """The options of the JAX stacks (Linen and NNX): the shared ones and these."""

    channels_last: bool = option(
        True,
        kw_only=True,
        doc="frames are (H, W, C) if True (default), else (C, H, W) as in PyTorch. Inputs, initial states, "
        "outputs and final states all use this layout.",
    )
    remat: bool = option(
        False,
        kw_only=True,
        doc="recompute each step's activations in the backward pass instead of storing them: a train "
        "step's memory then grows with T by the carries alone.",
    )
    unroll: int | None = option(
        None,
        kw_only=True,
        doc="time steps per iteration of each layer's scan (`jax.lax.scan`'s `unroll`); None (default) "
        "takes the default backend's own: 5 on GPU (where it runs faster), 1 on CPU and TPU. The scan's "
        "unroll is static, so unlike `conv_gradient` it cannot follow the platform a computation is "
        "lowered for: give it explicitly for an export to another platform.",
    )
    deterministic: bool | None = option(
        None,
        kw_only=True,
        doc="disables dropout when True (evaluation); merged with the argument of the same name at call "
        "time, as `flax.linen.Dropout` does.",
    )
