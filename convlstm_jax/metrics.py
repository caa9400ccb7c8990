"""Deprecated alias of `convlstm_jax.training.metrics` and `convlstm_jax.nowcasting.losses`.

The cross-entropy, MSE, MAE, SSIM and `evaluate` are in `convlstm_jax.training.metrics`, the
balanced loss of HKO-7 in `convlstm_jax.nowcasting.losses`. Each name is still found here, with a
`DeprecationWarning` naming its new home.
"""

from convlstm_common.aliases import alias

__getattr__, __dir__ = alias(__name__, ["convlstm_jax.training.metrics", "convlstm_jax.nowcasting.losses"])
