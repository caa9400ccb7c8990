"""Deprecated alias of `convlstm_jax.training.digits`, `convlstm_jax.training.batches` and `convlstm_jax.nowcasting`.

Moving MNIST and the bouncing digits are in `convlstm_jax.training.digits`, the input/target split and
the batches in `convlstm_jax.training.batches`, the radar data (units, `synthetic_radar`, radar PNGs)
in `convlstm_jax.nowcasting`. Each name is still found here, with a `DeprecationWarning` naming its
new home.
"""

from convlstm_common.aliases import alias

__getattr__, __dir__ = alias(
    __name__, ["convlstm_jax.training.digits", "convlstm_jax.training.batches", "convlstm_jax.nowcasting"]
)
