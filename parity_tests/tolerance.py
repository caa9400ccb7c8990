"""The tolerance policy: the one place that says how close is close enough.

A result passes when, for every element, |actual - expected| <= atol + rtol * |expected|
(`numpy.allclose`'s rule). The expected values of the shared vectors are computed by the torch
reference in float64, so each row below bounds one dtype's own rounding error, not the
difference between two float32 programs. JAX float32 runs use `jax.default_matmul_precision
("highest")`: TF32 or bf16 passes on an accelerator would otherwise hide or fake errors.

How the numbers were chosen: `convlstm-parity` prints, per case, the worst ratio
|actual - expected| / (atol + rtol * |expected|). Across the shared vectors the float32 runs of both
frameworks stay below about a tenth of the bound below; it leaves room for other CPUs and
accelerators (other summation orders), not for a wrong formula, whose errors are orders of
magnitude larger.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    def score(self, actual: np.ndarray, expected: np.ndarray) -> float:
        """The worst |actual - expected| / (atol + rtol * |expected|); the check passes at <= 1."""
        actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        bound = self.atol + self.rtol * np.abs(expected)
        error = np.abs(actual - expected)
        if not np.all(np.isfinite(actual)):
            return float("inf")
        return float(np.max(error / bound, initial=0.0))


POLICY = {
    "float64": Tolerance(rtol=1e-9, atol=1e-11),
    "float32": Tolerance(rtol=1e-4, atol=1e-5),
}
"""Tolerances by the dtype of the computation under test."""


def tolerance_for(dtype: str) -> Tolerance:
    """The policy's `Tolerance` for a dtype name such as `"float32"`."""
    try:
        return POLICY[str(dtype)]
    except KeyError:
        raise ValueError(f"No tolerance for dtype {dtype!r}; the policy covers {sorted(POLICY)}.") from None
