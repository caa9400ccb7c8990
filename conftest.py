"""Test-wide settings: JAX strict about dtypes and ranks, float32 at full precision, hypothesis
profiles (`HYPOTHESIS_PROFILE=ci` is derandomised and is what `.ci/run` uses)."""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")
# XLA:CPU takes about a second to compile each partitionable-threefry draw, so a model's `init`
# costs ~1 s per parameter tensor; the tests do not depend on the random streams themselves.
jax.config.update("jax_threefry_partitionable", False)

settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
