"""The tolerance policy: the one place that says how close is close enough.

A result passes when, for every element, |actual - expected| <= atol + rtol * |expected|
(`numpy.allclose`'s rule; for bfloat16, rtol scales the tensor's largest |expected| instead). The
expected values of the shared vectors are computed by the torch reference in float64, so each row
below bounds one dtype's own rounding error, not the difference between two float32 programs. JAX
float32 runs use `jax.default_matmul_precision("highest")`: TF32 or bf16 passes on an accelerator
would otherwise hide or fake errors.

How the numbers were chosen: `convlstm-parity` prints, per case, the worst ratio
|actual - expected| / bound. Across the shared vectors the float32 runs of both frameworks stay
below a fifth of their bound, float64 below 1e-4, bfloat16 (compute in bfloat16, float32
parameters) below about 0.6; that leaves room for other CPUs and accelerators (other summation
orders), not for a wrong formula, whose errors are orders of magnitude larger.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    relative_to: str = "element"  # or "tensor": rtol scales the tensor's largest |expected|

    def score(self, actual: np.ndarray, expected: np.ndarray) -> float:
        """The worst |actual - expected| / (atol + rtol * scale); the check passes at <= 1.

        `scale` is |expected| element by element, or the tensor's largest |expected| when
        `relative_to="tensor"`.
        """
        actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        scale = np.abs(expected)
        if self.relative_to == "tensor":
            scale = np.max(scale, initial=0.0)
        bound = self.atol + self.rtol * scale
        error = np.abs(actual - expected)
        if not np.all(np.isfinite(actual)):
            return float("inf")
        return float(np.max(error / bound, initial=0.0))


POLICY = {
    "float64": Tolerance(rtol=1e-9, atol=1e-11),
    "float32": Tolerance(rtol=1e-4, atol=1e-5),
    # bfloat16 keeps 8 significant bits: gradients summed over many terms lose small elements to
    # cancellation, so its errors are bounded against each tensor's scale, not element by element.
    "bfloat16": Tolerance(rtol=5e-2, atol=1e-3, relative_to="tensor"),
}
"""Tolerances by the dtype of the computation under test."""


def tolerance_for(dtype: str) -> Tolerance:
    """The policy's `Tolerance` for a dtype name such as `"float32"`."""
    try:
        return POLICY[str(dtype)]
    except KeyError:
        raise ValueError(f"No tolerance for dtype {dtype!r}; the policy covers {sorted(POLICY)}.") from None


def result_tolerance(dtype: str, name: str, layer_norm: bool = False) -> Tolerance:
    """The tolerance of one result of a shared vector (`name` such as "grad/param/...").

    The dtype's, with one exception. In a stack with `layer_norm`, float32 gradients are bounded
    against each tensor's largest |expected| (`relative_to="tensor"`, the same rtol and atol): the
    norm's backward pass multiplies by 1/σ, up to 1/sqrt(1e-5) ≈ 316 where a convolution's output
    is constant (the state-to-state one at the first step from a zero state, without a bias), and
    subtracts means over every channel and position. Gradient elements that cancel to near zero
    keep the float32 rounding of the large terms they cancel: measured, the torch reference's own
    float32 gradients reach 1.3 times the element-wise bound, and below 0.04 times this one, as
    every other case's do; a wrong formula is orders of magnitude above either.
    """
    tolerance = tolerance_for(dtype)
    if layer_norm and dtype == "float32" and name.startswith("grad/"):
        return dataclasses.replace(tolerance, relative_to="tensor")
    return tolerance
