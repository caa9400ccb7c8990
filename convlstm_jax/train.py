"""Deprecated alias of `convlstm_jax.training`, and of the constants of its modules.

Each name is still found here, with a `DeprecationWarning` naming its new home.
`python -m convlstm_jax.train` still runs `convlstm-train` (`convlstm_jax.training.cli.main`),
after a `DeprecationWarning`.
"""

from convlstm_common.aliases import alias

__getattr__, __dir__ = alias(
    __name__,
    [
        "convlstm_jax.training",
        "convlstm_jax.training.checkpoints",
        "convlstm_jax.training.config",
        "convlstm_jax.training.evaluation",
        "convlstm_jax.training.placement",
        "convlstm_jax.training.workdir",
    ],
)

if __name__ == "__main__":
    import sys
    import warnings

    from .training.cli import main

    warnings.warn(
        "python -m convlstm_jax.train has moved to python -m convlstm_jax.training (the command "
        "convlstm-train); convlstm_jax.train will be removed in a future release.",
        DeprecationWarning,
        stacklevel=1,
    )
    sys.exit(main())
