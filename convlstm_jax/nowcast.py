"""Deprecated alias of `convlstm_jax.nowcasting` (its modules `baselines` and `verification`).

Each name is still found here, with a `DeprecationWarning` naming its new home.
"""

from convlstm_common.aliases import alias

__getattr__, __dir__ = alias(__name__, ["convlstm_jax.nowcasting"])
