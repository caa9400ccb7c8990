"""The port's scan `unroll` side by side: `python -m benchmarks.unroll [--values 1,2,5,10] [--quick]`.

For each workload and each value, the forward pass and the train step of `convlstm_jax.ConvLSTM`
(same weights, input and loss as `benchmarks.run`), compiled ahead of time with
`convlstm_jax.compiler_options()`; best of `--repeats` calls after two warm-up calls. The values are
measured in turn, round after round (`--rounds`), and each keeps its best, so that a slow spell of a
shared machine does not land on one value. Prints a table and writes `<out>/unroll-<backend>.json`.
What `unroll=None` resolves to on this backend is printed with it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from convlstm_jax._conv import resolve_unroll

from . import report
from .machine import describe_machine, describe_source
from .run import RESULTS_DIR, SPEED_PRECISION, command_line, make_context
from .sys_jax import jax_bench, port_apply, port_compiler_options, port_model
from .timing import Step, measure
from .workloads import select


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.unroll", description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", default="1,2,5,10", help="unroll values, comma-separated (default: %(default)s)")
    parser.add_argument("--workload", choices=("w1", "mmnist", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat, 1 round: a smoke run")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the values (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        args.values = [int(v) for v in args.values.split(",")]
    except ValueError:
        parser.error(f"--values takes positive ints separated by commas; got {args.values!r}")
    if not args.values or min(args.values) < 1 or args.repeats < 1 or args.rounds < 1:
        parser.error("--values, --repeats and --rounds must be positive")
    if args.quick:
        args.repeats, args.rounds = 1, 1
    return args


def measure_workload(workload, values: list[int], repeats: int, rounds: int) -> list[dict]:
    """One row per unroll value: best forward and train-step ms over every round, and compile seconds."""
    ctx = make_context(workload)
    x, options = jnp.asarray(ctx.x), port_compiler_options()
    benches = {u: jax_bench(port_apply(port_model(workload, unroll=u)), ctx.jax_variables, x, options) for u in values}
    rows = {u: {"unroll": u, "forward_ms": [], "train_ms": [], "compile_s": {}} for u in values}
    for round_index in range(rounds):
        for unroll, bench in benches.items():
            for phase in ("forward", "train"):
                step = getattr(bench, phase)
                if round_index:  # compiled in the first round
                    step = Step(step.run)
                timing = measure(step, repeats, warmup=2)
                rows[unroll][f"{phase}_ms"].append(timing.best_ms)
                if timing.compile_s is not None:
                    rows[unroll]["compile_s"][phase] = timing.compile_s
    for row in rows.values():
        row["forward_best_ms"], row["train_best_ms"] = min(row["forward_ms"]), min(row["train_ms"])
    return list(rows.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend, start = jax.default_backend(), time.perf_counter()
    default = resolve_unroll(None)
    results = {
        "command": command_line("benchmarks.unroll", argv),
        "backend": backend,
        "unroll_none_resolves_to": default,
        "machine": describe_machine(),
        "source": describe_source(),
        "settings": {"values": args.values, "repeats": args.repeats, "rounds": args.rounds, "warmup_calls": 2},
        "workloads": {},
    }
    print(f"unroll on {results['machine'].get('jax_device_kind', backend)}; unroll=None is {default} here", flush=True)
    with jax.default_matmul_precision(SPEED_PRECISION):
        for workload in select(args.workload, args.quick):
            rows = measure_workload(workload, args.values, args.repeats, args.rounds)
            results["workloads"][workload.name] = {"config": workload.config(), "rows": rows}
            base = next((r for r in rows if r["unroll"] == 1), rows[0])
            print(f"\n{workload.title}")
            header = f"{'unroll':>6} {'fwd ms':>10} {'train ms':>10} {'fwd x':>7} {'train x':>7}"
            print(f"{header}  (x: speed-up over unroll={base['unroll']})")
            for r in rows:
                fwd, train = r["forward_best_ms"], r["train_best_ms"]
                print(
                    f"{r['unroll']:>6} {report.fmt_ms(fwd):>10} {report.fmt_ms(train):>10} "
                    f"{base['forward_best_ms'] / fwd:>7.2f} {base['train_best_ms'] / train:>7.2f}"
                )
    results["wall_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"unroll-{backend}{'-quick' if args.quick else ''}.json"
    report.write_json(results, path)
    print(f"\nwrote {path}  ({results['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
