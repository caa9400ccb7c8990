"""Errors at length: `python -m parity_tests.stability`.

Runs one small configuration for T = 10, 100 and 1000 steps (unit-scale inputs, and inputs scaled
by 1e4 so that the gates saturate) in torch float32, JAX float32 and JAX bfloat16 compute, against
the torch reference in float64, and prints the largest error of the outputs, final states and
gradients relative to each tensor's largest magnitude.
"""

from __future__ import annotations

import argparse

import numpy as np

from .generate import make_inputs
from .runs import run_jax, run_torch

CONFIG = {
    "input_dim": 2,
    "hidden_dim": [8],
    "kernel_size": [[3, 3]],
    "num_layers": 1,
    "batch_first": False,
    "bias": True,
    "return_all_layers": True,
    "peephole": "hadamard",
    "batch": 2,
    "steps": 10,
    "height": 8,
    "width": 8,
    "initial_state": True,
}


def relative_errors(actual: dict, expected: dict) -> dict[str, float]:
    """max |actual - expected| / max |expected| per group (forward results, gradients); NaN/inf -> inf."""
    groups: dict[str, float] = {"forward": 0.0, "grad": 0.0}
    for name, value in expected.items():
        group = "grad" if name.startswith("grad/") else "forward"
        if not np.isfinite(actual[name]).all():
            groups[group] = float("inf")
            continue
        scale = max(float(np.abs(value).max()), 1e-30)
        groups[group] = max(groups[group], float(np.abs(actual[name] - value).max()) / scale)
    return groups


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m parity_tests.stability", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args(argv)
    runs = {
        "torch float32": lambda c, a: run_torch(c, a, "float32"),
        "jax float32": lambda c, a: run_jax(c, a, "float32"),
        "jax bfloat16": lambda c, a: run_jax(c, a, "bfloat16"),
    }
    print(f"{'T':>5} {'input':>6}  {'run':<14} {'forward':>9} {'grad':>9}   (max error / max |float64 value|)")
    for steps in args.steps:
        for scale in (1.0, 1e4):
            config = CONFIG | {"steps": steps}
            arrays = make_inputs(config, 0)
            arrays["input"] = arrays["input"] * np.float32(scale)
            expected = run_torch(config, arrays, "float64")
            for label, run in runs.items():
                errors = relative_errors(run(config, arrays), expected)
                print(f"{steps:>5} {scale:>6.0e}  {label:<14} {errors['forward']:>9.1e} {errors['grad']:>9.1e}")


if __name__ == "__main__":
    main()
