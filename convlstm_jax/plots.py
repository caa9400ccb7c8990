"""Deprecated alias of `convlstm_jax.training.plots` and `convlstm_jax.nowcasting.plots`.

The figures of a training run are in `convlstm_jax.training.plots`, those of radar nowcasts in
`convlstm_jax.nowcasting.plots`. Each name is still found here, with a `DeprecationWarning` naming
its new home.
"""

from convlstm_common.aliases import alias

__getattr__, __dir__ = alias(__name__, ["convlstm_jax.training.plots", "convlstm_jax.nowcasting.plots"])
