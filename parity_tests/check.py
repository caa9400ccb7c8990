"""Holding runs of either framework to a case's expected results, and reporting the errors."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable

import numpy as np

from convlstm_common.tolerance import Tolerance, result_tolerance

from .runs import Arrays, Config, frame_size, run_jax, run_torch

GROUPS = ("output", "h", "c", "grad")
"""The columns of the report: each result name belongs to the group its name starts with."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One way of computing a case: a framework, a dtype and a layout."""

    label: str
    dtype: str
    compute: Callable[[Config, Arrays], Arrays]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One run's errors against the expected results."""

    run: Run
    max_abs: dict[str, float]  # by group
    score: float  # the worst error as a fraction of the tolerance's bound; passes at <= 1
    worst: str  # the result name where the score is reached

    @property
    def passed(self) -> bool:
        return self.score <= 1.0


def _jax_float64(config: Config, arrays: Arrays) -> Arrays:
    import jax

    with jax.enable_x64(True):
        return run_jax(config, arrays, "float64")


TORCH_FLOAT64 = Run("torch", "float64", lambda c, a: run_torch(c, a, "float64"))
"""The reference in float64, the computation that gives the expected values. Against a shared vector
it checks that the reference still gives the stored results; where the expected values are computed
on the spot (`convlstm-parity --checkpoint`), they are its own results: it is then the expectation,
not a run held to it."""
TORCH_FLOAT32 = Run("torch", "float32", lambda c, a: run_torch(c, a, "float32"))
TORCH_RUNS = (TORCH_FLOAT64, TORCH_FLOAT32)
JAX_RUNS = (
    Run("jax", "float64", _jax_float64),
    Run("jax", "float32", lambda c, a: run_jax(c, a, "float32")),
)
JAX_CHANNELS_LAST = Run("jax channels-last", "float32", lambda c, a: run_jax(c, a, "float32", channels_last=True))
JAX_NNX = Run("jax nnx", "float32", lambda c, a: run_jax(c, a, "float32", front="nnx"))
"""The NNX front: `convlstm_jax.nnx.ConvLSTM`, or `convlstm_jax.nnx.Bidirectional` for a bidirectional case."""
JAX_STRATEGIES = (
    Run("jax xla-gradients", "float32", lambda c, a: run_jax(c, a, "float32", conv_gradient="xla")),
    Run("jax tapwise", "float32", lambda c, a: run_jax(c, a, "float32", conv_gradient="tapwise")),
    Run("jax remat", "float32", lambda c, a: run_jax(c, a, "float32", remat=True)),
    Run("jax unroll=2", "float32", lambda c, a: run_jax(c, a, "float32", unroll=2)),
    Run("jax bf16 compute", "bfloat16", lambda c, a: run_jax(c, a, "bfloat16")),
)
"""The port's other ways of computing: every gradient strategy, remat, unroll, bfloat16 compute."""


def expected_results(arrays: Arrays) -> Arrays:
    """A vector's expected results, by result name."""
    return {k.removeprefix("expected/"): v for k, v in arrays.items() if k.startswith("expected/")}


def compare(
    actual: Arrays, expected: Arrays, tolerance: Tolerance | Callable[[str], Tolerance]
) -> tuple[dict[str, float], float, str]:
    """Checks that `actual` has exactly the names and shapes of `expected`, then measures the errors.

    `tolerance` is one for every result, or a function from a result's name to its own.

    Returns:
      (max abs error by group, worst score, the name where the worst score is reached).

    Raises:
      ValueError: the names or shapes differ (a structural mismatch is never a tolerance question).
    """
    if actual.keys() != expected.keys():
        missing, extra = sorted(expected.keys() - actual.keys()), sorted(actual.keys() - expected.keys())
        raise ValueError(f"Results do not match the expected names: missing {missing}, unexpected {extra}.")
    shapes = [
        f"{k}: {actual[k].shape} != {expected[k].shape}" for k in expected if actual[k].shape != expected[k].shape
    ]
    if shapes:
        raise ValueError("Results have the wrong shapes: " + "; ".join(shapes))
    max_abs = dict.fromkeys(GROUPS, 0.0)
    worst_score, worst_name = 0.0, ""
    for name in sorted(expected):
        group = name.split("/", 1)[0]
        error = np.abs(np.asarray(actual[name], np.float64) - expected[name])
        max_abs[group] = max(max_abs[group], float(np.max(error, initial=0.0)))
        bound = tolerance(name) if callable(tolerance) else tolerance
        score = bound.score(actual[name], expected[name])
        if score > worst_score or not worst_name:
            worst_score, worst_name = score, name
    return max_abs, worst_score, worst_name


def check(config: Config, arrays: Arrays, runs: Iterable[Run]) -> list[Outcome]:
    """Computes a case with each run and holds it to the case's expected results."""
    expected = expected_results(arrays)
    outcomes = []
    for run in runs:
        layer_norm = bool(config.get("layer_norm"))
        tolerance = functools.partial(result_tolerance, run.dtype, layer_norm=layer_norm)
        max_abs, score, worst = compare(run.compute(config, arrays), expected, tolerance)
        outcomes.append(Outcome(run, max_abs, score, worst))
    return outcomes


def describe(config: Config) -> str:
    """A one-line summary of a case's configuration."""

    def size(values) -> str:
        return "x".join(map(str, values))

    layers = ", ".join(f"{h}@{size(k)}" for h, k in zip(config["hidden_dim"], config["kernel_size"]))
    if "input_kernel_size" in config:
        layers += "; input kernels " + ", ".join(size(k) for k in config["input_kernel_size"])
    flags = [
        f"in={config['input_dim']}",
        f"layers=[{layers}]",
        f"peephole={config['peephole']!r}",
        "bias" if config["bias"] else "no bias",
        "batch_first" if config["batch_first"] else "time_first",
        "all layers" if config["return_all_layers"] else "last layer",
        f"B={config['batch']} T={config['steps']} {size(frame_size(config))}",
        "initial state" if config["initial_state"] else "zero state",
    ]
    if config.get("reverse"):
        flags.append("reverse" if config.get("keep_order", True) else "reverse (computed order)")
    if "seq_lengths" in config:
        flags.append(f"seq_lengths={config['seq_lengths']}")
    if config.get("dropout_masks"):
        flags.append("dropout masks")
    if config.get("bidirectional"):
        flags.append(f"bidirectional ({config['bidirectional']})")
    for name in ("padding", "stride", "dilation", "forget_bias"):
        if name in config:
            flags.append(f"{name}={config[name]}")
    if config.get("layer_norm"):
        flags.append(f"layer_norm (frames {size(config['frame_size'])})")
    return ", ".join(flags)


def format_table(name: str, config: Config, outcomes: list[Outcome]) -> str:
    """A case's report: the max abs error of each group per run, the worst score, pass or FAIL."""
    header = f"{'run':<18} {'dtype':<8} " + " ".join(f"{g:>9}" for g in GROUPS) + f" {'worst/tol':>10}  result"
    lines = [f"{name}: {describe(config)}", "  " + header]
    for o in outcomes:
        errors = " ".join(f"{o.max_abs[g]:>9.1e}" for g in GROUPS)
        verdict = "pass" if o.passed else f"FAIL at {o.worst}"
        lines.append(f"  {o.run.label:<18} {o.run.dtype:<8} {errors} {o.score:>10.3f}  {verdict}")
    return "\n".join(lines)
