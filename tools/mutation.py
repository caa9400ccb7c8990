"""Mutation testing of the library's core: do the tests notice when a result changes?

    .venv/bin/python -m tools.mutation                     # every target, 2 workers
    .venv/bin/python -m tools.mutation --list              # count the mutants, run nothing
    .venv/bin/python -m tools.mutation --target convlstm_jax/_cell.py --jobs 1
    .venv/bin/python -m tools.mutation --survivors-of tools/mutation_results.json   # rerun survivors only
    .venv/bin/python -m tools.mutation --line convlstm_jax/_cell.py:200 --target convlstm_jax/_cell.py
    .venv/bin/python -m tools.mutation --resume            # go on with an interrupted run

For each target module, `tools.mutants` makes mutants (one small change of the source each: an
operator, a comparison, a constant, a condition, a slice bound, a swapped argument, a returned
value). Each mutant is written into a copy of the repository (`/tmp/mutation/<worker>`; the
working tree itself is never written to), and the tests that guard the module run on it, fast
ones first, stopping at the first failure (`pytest -x`, the default run's tests and the parity
vectors). A mutant is

- killed: a test failed (or the run exceeded its time limit: `timeout`, counted as killed);
- survived: every test passed; the JSON lists its file, line and diff;
- equivalent: listed in `tools.mutation_equivalents` (it changes no result; one line says why);
  not run and not counted.

The kill rate is killed / (killed + survived). Before the mutants, each target's tests run on the
unmutated copy: a test that fails there (another change in progress) is deselected and named in
the results. JAX's persistent compilation cache (`/tmp/mutation/jax-cache`) is shared by the runs,
so a mutant that leaves a compiled program as it was costs no compilation.

Results go to `tools/mutation_results.json` (`--output`): the commit and the target files'
hashes, the command, the runtime, per target the kill command and counts, the survivors with
their diffs, the equivalent mutants with their reasons, and every mutant's outcome. After new
tests or new entries in the equivalents list, `--survivors-of` reruns the survivors of an earlier
results file and the mutants of lines changed since, and merges their outcomes into it (the
mutants of lines that are gone leave it; each run is listed under "runs").

Every outcome is also appended, as it comes, to a journal (`/tmp/mutation/journal.jsonl`,
`--journal`) with the hash of the source it mutated. `--resume` takes from the journal the
outcomes of mutants whose file is unchanged since, and runs the rest: a run that was
interrupted (a full run takes about two hours on two cores) loses only the mutants in flight.

Out of scope, and not mutated: docstrings, strings and f-strings, type annotations, `raise` and
`assert` statements and the conditions of branches that only raise, and per target the functions
named in its `out_of_scope` (input validation, error messages, speed settings), with the reason.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .mutants import Mutant, generate
from .mutation_equivalents import EQUIVALENT

ROOT = Path(__file__).resolve().parents[1]
WORK = Path("/tmp/mutation")
DEFAULT_OUTPUT = ROOT / "tools" / "mutation_results.json"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info", "results", "docs"
)

VECTORS = "parity_tests/tests/test_vectors.py"
ALL_CASES = (
    "two_layers_all",
    "hadamard_peephole",
    "input_kernels",
    "no_input",
    "conv_peephole",
    "conv_peephole_no_bias",
    "hadamard_peephole_no_bias",
    "no_peephole",
    "no_peephole_no_bias",
    "three_layers_all",
    "three_layers_last",
    "one_step",
    "batch_one_tall_frame",
    "rectangular_stack",
    "input_kernels_conv_peephole",
    "no_input_other_kernels",
    "reverse",
    "reverse_computed_order",
    "seq_lengths",
    "reverse_seq_lengths",
    "dropout_masks",
    "bidirectional_concat",
    "bidirectional_sum",
    "valid_padding",
    "stride",
    "dilation",
    "valid_stride_dilation_dropout",
    "signals",
    "signals_options",
    "volumes",
    "volumes_options",
    "volumes_bidirectional",
    "forget_bias",
    "layer_norm",
    "layer_norm_options",
    "layer_norm_no_input",
    "layer_norm_signals",
)
"""Every shipped parity case, those that exercise the most first."""
CELL_CASES = (
    "two_layers_all",
    "hadamard_peephole",
    "input_kernels",
    "no_input",
    "conv_peephole_no_bias",
    "hadamard_peephole_no_bias",
    "no_peephole_no_bias",
    "input_kernels_conv_peephole",
    "no_input_other_kernels",
    "rectangular_stack",
    "batch_one_tall_frame",
    "stride",
    "dilation",
    "valid_padding",
    "signals_options",
    "volumes",
    "volumes_options",
    "forget_bias",
    "layer_norm",
    "layer_norm_options",
    "layer_norm_no_input",
)
"""The cases that between them run every path of a cell: each peephole with and without biases,
fused and hoisted input convolutions, no input, every rank, the forget bias and the layer norms."""
BIDIRECTIONAL_CASES = ("bidirectional_concat", "bidirectional_sum", "volumes_bidirectional")


def vectors(framework: str, dtypes: tuple[str, ...], cases: tuple[str, ...]) -> list[str]:
    """The parity-vector tests of `cases` for one framework's runs."""
    return [f"{VECTORS}::test_vector[{case}-{framework}-{dtype}]" for case in cases for dtype in dtypes]


def strategies(cases: tuple[str, ...], labels: tuple[str, ...]) -> list[str]:
    """The parity-vector tests of the port's other ways of computing (default-run cases only)."""
    return [f"{VECTORS}::test_vector_every_strategy[{case}-{label}]" for case in cases for label in labels]


JAX_TESTS = "convlstm_jax/tests"
TORCH_TESTS = "convlstm_torch/tests"
HAND = "parity_tests/tests/test_hand.py"
MODELS = "parity_tests/tests/test_models.py"
JAX_MUTANT_TESTS = f"{JAX_TESTS}/test_port_details.py"
TORCH_MUTANT_TESTS = f"{TORCH_TESTS}/test_reference_details.py"
TORCH_VECTORS = vectors("torch", ("float32", "float64"), ALL_CASES)
RELIABILITY = "parity_tests/tests/test_reliability.py::test_nan_and_inf_are_caught_on_request"
OPTIONS_TESTS = "parity_tests/tests/test_options.py"


@dataclasses.dataclass(frozen=True)
class Target:
    """A module to mutate, the tests that guard it (run in this order) and what is out of scope."""

    path: str
    tests: tuple[str, ...]
    out_of_scope: dict[str, str] = dataclasses.field(default_factory=dict)  # function -> why


VALIDATION = "input validation that raises: covered by the error tests"
MESSAGES = "builds error messages or a repr only"

TARGETS = (
    Target(
        "convlstm_common/options.py",
        (OPTIONS_TESTS, "convlstm_common", *vectors("jax", ("float32",), CELL_CASES), *TORCH_VECTORS),
        {"document": "writes docstrings only: covered by the options tests", "describe": MESSAGES},
    ),
    Target(
        "convlstm_jax/_cell.py",
        (
            JAX_MUTANT_TESTS,
            OPTIONS_TESTS,
            HAND,
            *vectors("jax", ("float32",), CELL_CASES),
            *vectors("jax", ("float64",), ("layer_norm_options",)),
            *strategies(("two_layers_all", "signals_options"), ("bf16-compute", "xla-gradients")),
            f"{JAX_TESTS}/test_convlstm.py",
            f"{JAX_TESTS}/test_ranks.py",
            f"{JAX_TESTS}/test_conv.py",
        ),
        {"check_floating": VALIDATION},
    ),
    Target(
        "convlstm_jax/_convlstm.py",
        (
            JAX_MUTANT_TESTS,
            OPTIONS_TESTS,
            *vectors("jax", ("float32",), ALL_CASES),
            f"{JAX_TESTS}/test_sequence_options.py",
            f"{JAX_TESTS}/test_convlstm.py",
            f"{JAX_TESTS}/test_ranks.py",
            *strategies(("two_layers_all", "signals_options"), ("remat", "unroll=2", "bf16-compute")),
            f"{JAX_TESTS}/test_float64.py",
            RELIABILITY,
        ),
        {
            "_describe": MESSAGES,
            "layout": MESSAGES,
            "check_hidden_state": VALIDATION,
            "check_hyperparameters": VALIDATION,
        },
    ),
    Target(
        "convlstm_jax/_convert.py",
        (
            JAX_MUTANT_TESTS,
            f"{JAX_TESTS}/test_convert.py",
            f"{JAX_TESTS}/test_conversion_table.py",
            *vectors(
                "jax",
                ("float32",),
                ("two_layers_all", "input_kernels", "no_input_other_kernels", "hadamard_peephole", "valid_padding"),
            ),
            *vectors("jax", ("float32",), ("stride", "signals_options", "volumes", "no_peephole_no_bias")),
            f"{JAX_TESTS}/models/test_encoder_forecaster.py",
            f"{JAX_TESTS}/test_ranks.py",
            f"{JAX_TESTS}/test_nnx.py",
            f"{JAX_TESTS}/interop/test_torch_module.py",
        ),
        {"_check_state_dict": VALIDATION, "_dtype_problems": VALIDATION, "_prefix_hint": MESSAGES},
    ),
    Target(
        "convlstm_jax/_conv.py",
        (
            JAX_MUTANT_TESTS,
            f"{JAX_TESTS}/test_conv.py",
            f"{JAX_TESTS}/test_export.py",
            f"{JAX_TESTS}/test_float64.py",
            HAND,
            *vectors("jax", ("float32",), ("two_layers_all", "three_layers_all", "signals", "volumes")),
            *strategies(("two_layers_all", "signals_options"), ("tapwise", "xla-gradients", "bf16-compute")),
        ),
        {
            "check_conv_gradient": VALIDATION,
            "check_unroll": VALIDATION,
            "resolve_conv_gradient": "which gradient strategy a backend gets: the strategies give equal results",
            "resolve_unroll": "time steps per scan iteration: a speed setting, results equal by design",
            "compiler_options": "XLA options for speed: results equal up to float rounding",
            "_cpu_options_known": "XLA options for speed: results equal up to float rounding",
        },
    ),
    Target(
        "convlstm_jax/_bidirectional.py",
        (
            JAX_MUTANT_TESTS,
            *vectors("jax", ("float32",), BIDIRECTIONAL_CASES),
            f"{JAX_TESTS}/test_sequence_options.py",
        ),
        {"check_merge": VALIDATION},
    ),
    Target(
        "convlstm_jax/models/encoder_forecaster.py",
        (JAX_MUTANT_TESTS, f"{JAX_TESTS}/models/test_encoder_forecaster.py", MODELS),
        {"_check_frames": VALIDATION},
    ),
    Target(
        "convlstm_torch/_cell.py",
        (TORCH_MUTANT_TESTS, OPTIONS_TESTS, HAND, *TORCH_VECTORS, TORCH_TESTS),
        {"_check_float": VALIDATION, "_check_step": VALIDATION, "extra_repr": MESSAGES},
    ),
    Target(
        "convlstm_torch/_convlstm.py",
        (TORCH_MUTANT_TESTS, OPTIONS_TESTS, *TORCH_VECTORS, TORCH_TESTS, RELIABILITY),
        {
            "_describe": MESSAGES,
            "_check_input": VALIDATION,
            "_check_hidden_state": VALIDATION,
            "_check_lengths": VALIDATION,
        },
    ),
    Target(
        "convlstm_torch/_bidirectional.py",
        (TORCH_MUTANT_TESTS, *vectors("torch", ("float32", "float64"), BIDIRECTIONAL_CASES), TORCH_TESTS),
    ),
    Target(
        "convlstm_torch/models.py",
        (TORCH_MUTANT_TESTS, f"{TORCH_TESTS}/test_models.py", MODELS),
        {"_check_frames": VALIDATION},
    ),
)

PYTEST_OPTIONS = ("-x", "-q", "-p", "no:cacheprovider", "--tb=no", "-rfE")
"""Stop at the first failure and name it."""


@dataclasses.dataclass
class Outcome:
    status: str  # killed, timeout, survived, equivalent, error
    seconds: float = 0.0
    killed_by: str = ""
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Planned:
    """A mutant to run, its module's source and a name that survives edits elsewhere in the file."""

    mutant: Mutant
    source: str
    id: str


def identify(mutants: list[Mutant], source: str) -> list[Planned]:
    """Names each mutant by its file, function, operator and both lines, and where the same change
    of the same line occurs again in that function, by its occurrence ("#2", ...)."""
    seen: dict[str, int] = {}
    planned = []
    for m in mutants:
        base = "|".join((m.path, m.function, m.operator, m.original_line(source), m.mutated_line(source)))
        seen[base] = seen.get(base, 0) + 1
        planned.append(Planned(m, source, base if seen[base] == 1 else f"{base}#{seen[base]}"))
    return planned


def equivalence_reason(mutant: Mutant, source: str) -> str | None:
    """Why the mutant changes no result, where `tools.mutation_equivalents` says so."""
    return EQUIVALENT.get((mutant.path, mutant.original_line(source), mutant.mutated_line(source)))


def copy_tree(destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(ROOT, destination, ignore=COPY_IGNORE)


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(copy), env.get("PYTHONPATH"))))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant of the same size and second must not reuse a stale .pyc
    env["HYPOTHESIS_PROFILE"] = "ci"  # derandomised: the same examples for every mutant
    env["JAX_COMPILATION_CACHE_DIR"] = str(WORK / "jax-cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def run_tests(copy: Path, tests: list[str], deselect: list[str], timeout: float) -> tuple[int | None, float, str]:
    """Runs pytest in `copy`; returns (exit code or None on timeout, seconds, output)."""
    command = [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, *tests]
    for node in deselect:
        command += ["--deselect", node]
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=copy,
        env=environment(copy),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = None
    return code, time.monotonic() - start, output


def failures(output: str) -> list[str]:
    """The node ids pytest's short summary names as failed or in error."""
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)


def existing(copy: Path, tests: tuple[str, ...]) -> list[str]:
    """The tests whose file exists in `copy` (a file added later may not be there yet)."""
    return [t for t in tests if (copy / t.split("::")[0]).exists()]


@dataclasses.dataclass
class Prepared:
    target: Target
    tests: list[str]
    deselect: list[str]
    baseline_seconds: float
    timeout: float


def baseline(target: Target, copy: Path, log) -> Prepared:
    """Runs the target's tests on the unmutated copy; deselects what fails there."""
    tests, deselect = existing(copy, target.tests), []
    code, seconds, output = 0, 0.0, ""
    for _ in range(4):
        code, seconds, output = run_tests(copy, tests, deselect, timeout=3600)
        if code == 0:
            break
        gone = [g.removeprefix(f"{copy}/") for g in re.findall(r"^ERROR: not found: (\S+)", output, re.MULTILINE)]
        if code == 4 and gone:  # a test renamed or removed since the list was written
            tests = [t for t in tests if t not in gone]
            log(f"  baseline: {target.path}: no such test, left out: {', '.join(gone)}")
            continue
        failed = failures(output)
        if code != 1 or not failed:
            raise SystemExit(f"The tests of {target.path} do not run on the unmutated tree:\n{output[-3000:]}")
        deselect += failed
        log(f"  baseline: {target.path}: deselected (fails without a mutant): {', '.join(failed)}")
    else:
        raise SystemExit(f"The tests of {target.path} keep failing on the unmutated tree:\n{output[-3000:]}")
    log(f"  baseline: {target.path}: {len(tests)} test selections pass in {seconds:.0f} s")
    # Generous: with the compilation cache warm the baseline is fast, a mutant compiles afresh.
    return Prepared(target, tests, deselect, seconds, timeout=max(900.0, 10 * seconds))


def run_mutant(mutant: Mutant, source: str, prepared: Prepared, copy: Path) -> Outcome:
    path = copy / mutant.path
    path.write_text(mutant.apply(source))
    try:
        code, seconds, output = run_tests(copy, prepared.tests, prepared.deselect, prepared.timeout)
    finally:
        path.write_text(source)
    if code is None:
        return Outcome("timeout", seconds)
    if code == 0:
        return Outcome("survived", seconds)
    if code in (1, 2, 3):  # failures, an interrupted (import-error) collection, an internal error
        named = failures(output)
        return Outcome("killed", seconds, named[0] if named else f"pytest exit code {code}")
    return Outcome("error", seconds, reason=output[-2000:])


def select(mutants: list[Planned], fraction: float) -> list[Planned]:
    """A deterministic sample: the mutants whose stable id hashes below `fraction`."""
    if fraction >= 1:
        return mutants

    def unit(item: Planned) -> float:
        digest = hashlib.sha256(item.id.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return [item for item in mutants if unit(item) < fraction]


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.mutation",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", action="append", help="a target module's path (repeatable; default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="workers, each with its own copy (default 2)")
    parser.add_argument("--list", action="store_true", help="print the mutants per target and exit")
    parser.add_argument("--fraction", type=float, default=1.0, help="run a deterministic sample of the mutants")
    parser.add_argument(
        "--survivors-of",
        type=Path,
        help="run only the survivors of an earlier results file; the output merges both runs",
    )
    parser.add_argument("--line", action="append", default=[], help="run only mutants at FILE:LINE (repeatable)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the results file (JSON)")
    parser.add_argument(
        "--journal", type=Path, default=WORK / "journal.jsonl", help="where each outcome is appended as it comes"
    )
    parser.add_argument(
        "--resume", action="store_true", help="take the journal's outcomes for unchanged files; run the rest"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started, clock = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    commit = git("rev-parse", "HEAD")  # the code the copies are made of, not what is committed meanwhile
    targets = [t for t in TARGETS if not args.target or t.path in args.target]
    unknown = set(args.target or ()) - {t.path for t in TARGETS}
    if unknown:
        print(f"Unknown targets {sorted(unknown)}; the targets are {[t.path for t in TARGETS]}.", file=sys.stderr)
        return 2
    sources = {t.path: (ROOT / t.path).read_text() for t in targets}
    uncommitted = [line[3:] for line in git("status", "--porcelain", "--", *sources).splitlines()]
    planned: dict[str, list[Planned]] = {}
    for target in targets:
        found = generate(ROOT / target.path, ROOT, frozenset(target.out_of_scope))
        planned[target.path] = select(identify(found, sources[target.path]), args.fraction)
    previous: dict = {}
    current = {i.id for items in planned.values() for i in items}  # every mutant of the code as it is
    if args.survivors_of:
        # The earlier survivors, and the mutants of lines changed since (which it did not run).
        previous = json.loads(args.survivors_of.read_text())
        wanted = {s["id"] for s in previous["survivors"]}
        known = {m["id"] for m in previous["mutants"]}
        planned = {p: [i for i in items if i.id in wanted or i.id not in known] for p, items in planned.items()}
    if args.line:
        wanted_lines = {tuple(spec.rsplit(":", 1)) for spec in args.line}
        planned = {p: [i for i in items if (p, str(i.mutant.line)) in wanted_lines] for p, items in planned.items()}
    if args.list:
        for path, items in planned.items():
            equivalent = sum(equivalence_reason(i.mutant, i.source) is not None for i in items)
            print(f"{path}: {len(items)} mutants ({equivalent} listed as equivalent)")
            for i in items:
                print(f"  {i.mutant.line:4d} {i.mutant.operator:28s} {i.mutant.mutated_line(i.source)[:110]}")
        print(f"{sum(map(len, planned.values()))} mutants")
        return 0

    lock = threading.Lock()

    def log(message: str) -> None:
        with lock:
            print(message, flush=True)

    WORK.mkdir(parents=True, exist_ok=True)
    copies = [WORK / f"worker{i}" for i in range(max(1, args.jobs))]
    for copy in copies:
        copy_tree(copy)
    log(f"Copies of {ROOT} in {', '.join(map(str, copies))}")

    prepared = {t.path: baseline(t, copies[0], log) for t in targets if planned[t.path]}
    outcomes: dict[str, tuple[Planned, Outcome]] = {}
    queue = []
    for items in planned.values():
        for item in items:
            reason = equivalence_reason(item.mutant, item.source)
            if reason is not None:
                outcomes[item.id] = (item, Outcome("equivalent", reason=reason))
            else:
                queue.append(item)
    digests = {path: hashlib.sha256(source.encode()).hexdigest() for path, source in sources.items()}
    if args.resume:
        journaled = read_journal(args.journal, digests)
        resumed = [item for item in queue if item.id in journaled]
        for item in resumed:
            outcomes[item.id] = (item, journaled[item.id])
        queue = [item for item in queue if item.id not in journaled]
        log(f"Resumed: {len(resumed)} outcomes from {args.journal}")
    else:
        args.journal.parent.mkdir(parents=True, exist_ok=True)
        args.journal.write_text("")
    total, done = len(queue), [0]
    log(f"{total} mutants to run, {len(outcomes)} listed as equivalent or resumed, {args.jobs} worker(s)")

    def work(worker: int) -> None:
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop(0)
            mutant = item.mutant
            outcome = run_mutant(mutant, item.source, prepared[mutant.path], copies[worker])
            with lock:
                outcomes[item.id] = (item, outcome)
                record = {"id": item.id, "sha256": digests[mutant.path], **dataclasses.asdict(outcome)}
                with args.journal.open("a") as journal:
                    journal.write(json.dumps(record) + "\n")
                done[0] += 1
                print(
                    f"[{done[0]}/{total}] {outcome.status:8s} {outcome.seconds:5.0f} s  {mutant.path}:{mutant.line} "
                    f"{mutant.operator}  {outcome.killed_by}",
                    flush=True,
                )

    with concurrent.futures.ThreadPoolExecutor(len(copies)) as pool:
        for future in [pool.submit(work, i) for i in range(len(copies))]:
            future.result()

    run = {
        "command": " ".join(["python -m tools.mutation", *(sys.argv[1:] if argv is None else argv)]),
        "commit": commit,
        "uncommitted_target_files": uncommitted,
        "started": started.isoformat(timespec="seconds"),
        "runtime_s": round(time.monotonic() - clock),
        "jobs": args.jobs,
        "fraction": args.fraction,
        "mutants_run": total,
    }
    targets_info = {
        t.path: {
            "sha256": hashlib.sha256(sources[t.path].encode()).hexdigest(),
            "tests": prepared[t.path].tests if t.path in prepared else list(t.tests),
            "deselected_at_baseline": prepared[t.path].deselect if t.path in prepared else [],
            "baseline_s": round(prepared[t.path].baseline_seconds, 1) if t.path in prepared else None,
            "out_of_scope": t.out_of_scope,
        }
        for t in targets
    }
    entries = [entry(item, outcome) for item, outcome in outcomes.values()]
    runs = [run]
    if args.survivors_of:  # this run's outcomes replace the earlier ones; the rest stand
        # Mutants of lines that have changed since are gone from the code, and from the results.
        merged = {e["id"]: e for e in previous["mutants"] if e["file"] not in planned or e["id"] in current}
        for e in merged.values():
            reason = EQUIVALENT.get((e["file"], e["original"], e["mutated"]))
            if e["status"] == "survived" and reason is not None:
                e.update(status="equivalent", reason=reason, diff="")
        merged.update({e["id"]: e for e in entries})
        entries = list(merged.values())
        targets_info = previous["targets"] | targets_info
        runs = previous["runs"] + runs
    results = summarise(entries, targets_info, runs)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    totals = results["totals"]
    log(
        f"{totals['killed']} killed ({totals['timeout']} by timeout), {totals['survived']} survived, "
        f"{totals['equivalent']} equivalent, {totals['error']} errors: kill rate {totals['kill_rate']:.1%}; "
        f"this run {run['runtime_s'] / 60:.0f} min; results in {args.output}"
    )
    return 1 if totals["survived"] or totals["error"] else 0


STATUSES = ("killed", "timeout", "survived", "equivalent", "error")


def read_journal(path: Path, digests: dict[str, str]) -> dict[str, Outcome]:
    """The journal's outcomes of mutants whose file still has the hash it had when they ran."""
    if not path.exists():
        return {}
    outcomes = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the last line of a run killed while writing it
            continue
        name, digest = record.pop("id"), record.pop("sha256")
        if digests.get(name.split("|", 1)[0]) == digest:
            outcomes[name] = Outcome(**record)
    return outcomes


def entry(item: Planned, outcome: Outcome) -> dict:
    """One mutant's line in the results; a survivor's carries its diff."""
    mutant, source = item.mutant, item.source
    return {
        "id": item.id,
        "file": mutant.path,
        "line": mutant.line,
        "function": mutant.function,
        "operator": mutant.operator,
        "original": mutant.original_line(source),
        "mutated": mutant.mutated_line(source),
        "status": outcome.status,
        "seconds": round(outcome.seconds, 1),
        "killed_by": outcome.killed_by,
        "reason": outcome.reason,
        "diff": mutant.diff(source) if outcome.status == "survived" else "",
    }


def summarise(entries: list[dict], targets: dict[str, dict], runs: list[dict]) -> dict:
    """The results file: the runs, the totals, per target its tests and counts, and every mutant."""
    entries = sorted(entries, key=lambda e: (e["file"], e["line"], e["operator"], e["mutated"]))

    def count(mine: list[dict]) -> dict[str, int]:
        return {s: sum(e["status"] == s for e in mine) for s in STATUSES}

    totals = count(entries)
    killed = totals["killed"] + totals["timeout"]
    return {
        "runs": runs,
        "totals": {**totals, "mutants": len(entries), "kill_rate": killed / max(1, killed + totals["survived"])},
        "targets": {
            path: {
                "mutants": sum(e["file"] == path for e in entries),
                **count([e for e in entries if e["file"] == path]),
            }
            | info
            for path, info in targets.items()
        },
        "survivors": [e for e in entries if e["status"] == "survived"],
        "equivalents": [e for e in entries if e["status"] == "equivalent"],
        "errors": [e for e in entries if e["status"] == "error"],
        "mutants": entries,
    }


if __name__ == "__main__":
    sys.exit(main())
