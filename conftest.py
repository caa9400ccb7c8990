"""Test-wide settings: JAX strict about dtypes and ranks, float32 at full precision, hypothesis
profiles (`HYPOTHESIS_PROFILE=ci` is derandomised and is what `.ci/run` uses), and the
`needs_torch` marker: such tests skip where torch is not installed (a `TORCH=` setup)."""

import importlib.util
import os

import jax
import pytest
from hypothesis import HealthCheck, settings

NO_TORCH = "needs torch, the reference (not installed in this virtualenv)"
HAS_TORCH = importlib.util.find_spec("torch") is not None

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")
# XLA:CPU takes about a second to compile each partitionable-threefry draw, so a model's `init`
# costs ~1 s per parameter tensor; the tests do not depend on the random streams themselves.
jax.config.update("jax_threefry_partitionable", False)

settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


class _WithoutTorch(pytest.Dir):
    """`convlstm_torch/` where torch is not installed: one skip instead of its import errors."""

    def collect(self):
        pytest.skip("convlstm_torch is the torch reference: torch is not installed in this virtualenv")


def pytest_collect_directory(path, parent):
    if not HAS_TORCH and path == parent.config.rootpath / "convlstm_torch":
        return _WithoutTorch.from_parent(parent, path=path)
    return None


# Docstring examples of the nowcasting code run pysteps and OpenCV (the `nowcast` extra).
NOWCAST_MODULES = (
    "convlstm_jax.nowcasting.baselines",
    "convlstm_jax.nowcasting.verification",
    "convlstm_jax.nowcasting.readers",
    "convlstm_jax.nowcasting.plots.plot_radar_forecasts",
)
HAS_NOWCAST = all(importlib.util.find_spec(name) is not None for name in ("pysteps", "cv2"))


def pytest_runtest_setup(item):
    if not HAS_TORCH and item.get_closest_marker("needs_torch"):
        pytest.skip(NO_TORCH)
    if not HAS_TORCH and _doctest_needs_torch(item):
        pytest.skip(NO_TORCH)
    dtest = getattr(item, "dtest", None)
    if not HAS_NOWCAST and dtest is not None and dtest.name.startswith(NOWCAST_MODULES):
        pytest.skip('needs pysteps and OpenCV, the nowcast extra (pip install "convlstm-jax[nowcast]")')


def _doctest_needs_torch(item) -> bool:
    """A docstring example that runs torch or its twin (`torch_module`)."""
    examples = getattr(getattr(item, "dtest", None), "examples", ())
    return any("torch_module(" in e.source or "import torch" in e.source for e in examples)
