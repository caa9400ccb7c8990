"""Deprecated alias of `convlstm_jax.interop.stablehlo`, where the StableHLO export now lives."""

from convlstm_common.aliases import alias

__getattr__, __dir__ = alias(__name__, ["convlstm_jax.interop.stablehlo"])
