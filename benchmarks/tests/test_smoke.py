"""A smoke run of the benchmark suite: tiny shapes, one repeat; checks the files, never the timings."""

import json

import pytest

from benchmarks import run, unroll
from benchmarks.sys_keras import keras_version

ROW_KEYS = {"system", "label", "notes", "forward", "train", "forward_gflops", "forward_peak_fraction"}
ROW_KEYS |= {"forward_speedup_vs_torch_eager", "train_speedup_vs_torch_eager", "wall_s"}


def _same(value, expected):
    """A figure the suite derives from the timings it reports against the same arithmetic here
    (None where a timing is missing)."""
    return value is None if expected is None else value == pytest.approx(expected, rel=1e-12, abs=0)


def _expected_status(system, phase, backend, workload, skip_slow):
    """What a working suite reports for one row and phase on this machine."""
    if system.key == "keras" and keras_version() is None:
        return "n/a"
    if phase == "train" and backend in system.slow_train_on and workload in skip_slow:
        return "skipped"
    return "ok"


def _check_rows(results, name, skip_slow, repeats=1):
    """Each row's statuses and timings in workload `name`, and the figures derived from them;
    returns the rows by system."""
    systems = {s.key: s for s in run.SYSTEMS}
    backend, peak = results["machine"]["jax_backend"], results["matmul_peak"]["gflops"]
    flop = results["workloads"][name]["config"]["forward_flop"]
    rows = {row["system"]: row for row in results["workloads"][name]["rows"]}
    reference = rows.get(run.REFERENCE)
    for key, row in rows.items():
        assert ROW_KEYS <= set(row), key
        for phase in ("forward", "train"):
            result, status = row[phase], _expected_status(systems[key], phase, backend, name, skip_slow)
            assert result["status"] == status, (key, phase, result)
            if status == "skipped":
                assert result["reason"] == f"slow on XLA:{backend.upper()}, --skip-slow-baselines", result
            elif status == "n/a":
                assert "not installed" in result["reason"], result
            else:
                slow = phase == "train" and backend in systems[key].slow_train_on
                assert "reason" not in result and result["repeats"] == len(result["times_ms"]) == repeats
                assert result["warmup_calls"] == len(result["warmup_ms"]) == (0 if slow else systems[key].warmup)
                assert result["best_ms"] == min(result["times_ms"]) > 0, (key, phase, result)
        forward = row["forward"].get("best_ms")
        gflops = flop / (forward * 1e6) if forward else None
        assert _same(row["forward_gflops"], gflops), key
        assert _same(row["forward_peak_fraction"], gflops and gflops / peak), key
        for phase in ("forward", "train"):
            ms, ref_ms = row[phase].get("best_ms"), reference and reference[phase].get("best_ms")
            speedup = ref_ms / ms if ref_ms and ms else None
            assert _same(row[f"{phase}_speedup_vs_torch_eager"], speedup), key
    return rows


@pytest.mark.slow
@pytest.mark.needs_torch
def test_quick_run_writes_json_and_png(tmp_path):
    assert run.main(["--quick", "--out", str(tmp_path), "--skip-slow-baselines"]) == 0

    (json_path,) = tmp_path.glob("*.json")
    (png_path,) = tmp_path.glob("*.png")
    assert png_path.stem == json_path.stem
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads(json_path.read_text())

    expected = {"name", "command", "argv", "machine", "source", "settings", "matmul_peak", "workloads"}
    assert expected | {"port_scaling", "wall_s"} <= set(results)
    assert results["complete"] is True
    assert results["argv"] == ["--quick", "--out", str(tmp_path), "--skip-slow-baselines"]
    assert "benchmarks.run" in results["command"]
    machine = results["machine"]
    assert {"platform", "cpu_count", "versions", "jax_devices"} <= set(machine)
    assert {"jax", "jaxlib", "flax", "torch"} <= set(machine["versions"])
    assert results["settings"]["precision"]["jax_speed"] == "default"
    peak = results["matmul_peak"]
    assert peak["gflops"] == max(peak["start"]["gflops"], peak["end"]["gflops"]) > 0
    for figure in (peak["start"], peak["end"]):
        assert figure["best_ms"] == min(figure["times_ms"]) > 0
        assert _same(figure["gflops"], figure["flop"] / (figure["best_ms"] * 1e6))

    assert list(results["workloads"]) == ["w1", "mmnist"]
    backend = machine["jax_backend"]
    for name, workload in results["workloads"].items():
        assert workload["config"]["quick"] is True
        assert workload["config"]["forward_flop"] > 0
        assert [row["system"] for row in workload["rows"]] == [s.key for s in run.SYSTEMS if s.measured_on(backend)]
        rows = _check_rows(results, name, skip_slow={"w1", "mmnist"})
        for key in ("port", "torch"):  # the port and its reference always run
            assert rows[key]["forward"]["status"] == rows[key]["train"]["status"] == "ok"
        assert workload["parity"]["max_abs_diff"] < 1e-4
        assert workload["parity"]["float32_tolerance_score"] <= 1, workload["parity"]

    scaling = results["port_scaling"]
    assert set(scaling["compile_s"]) == {str(t) for t in run.QUICK_COMPILE_STEPS}
    for steps, seconds in scaling["compile_s"].items():  # the best of min(repeats, 3) = 1 compilation
        assert scaling["compile_s_all"][steps] == [seconds] and seconds > 0
    first, last = (str(t) for t in (run.QUICK_COMPILE_STEPS[0], run.QUICK_COMPILE_STEPS[-1]))
    ratio = scaling["compile_s"][last] / scaling["compile_s"][first]
    assert _same(scaling["compile_ratio"]["ratio"], ratio)
    for key in ("without_remat", "with_remat"):
        assert set(scaling["memory"][key]) == {str(t) for t in run.QUICK_MEMORY_STEPS}
    longest = str(run.QUICK_MEMORY_STEPS[-1])
    without, with_remat = (scaling["memory"][key][longest] for key in ("without_remat", "with_remat"))
    ratio = without["peak_bytes"] / with_remat["peak_bytes"] if without and with_remat else None
    assert scaling["memory_ratio"] == {"T": int(longest), "without_over_with_remat": ratio}


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "nonesuch"])
    with pytest.raises(SystemExit):
        run.parse_args(["--skip-slow-baselines", "w2"])
    args = run.parse_args(["--only", "port,torch", "--skip-slow-baselines", "mmnist", "--quick"])
    assert args.systems == ["port", "torch"]
    assert args.skip_slow == {"mmnist"}
    assert args.repeats == 1
    assert run.parse_args(["--skip-slow-baselines"]).skip_slow == {"w1", "mmnist"}


@pytest.mark.slow
@pytest.mark.needs_torch
def test_accelerator_rows_run_when_named(tmp_path):
    systems = ["port-tapwise", "port-bf16", "torch-bf16"]  # measured by default on GPU/TPU only
    argv = ["--quick", "--workload", "w1", "--only", ",".join(systems), "--out", str(tmp_path), "--name", "rows"]
    assert run.main(argv) == 0

    results = json.loads((tmp_path / "rows.json").read_text())
    assert results["complete"] is True and results["port_scaling"] is None  # scaling runs with "port" only
    rows = _check_rows(results, "w1", skip_slow=set())  # no torch row: no speed-ups
    assert list(rows) == systems
    for row in rows.values():
        assert row["forward"]["status"] == row["train"]["status"] == "ok", row
    assert any("bfloat16" in note for note in rows["port-bf16"]["notes"])


@pytest.mark.slow
def test_unroll_benchmark_writes_json(tmp_path):
    assert unroll.main(["--quick", "--workload", "w1", "--values", "1,3", "--out", str(tmp_path)]) == 0

    (path,) = tmp_path.glob("unroll-*.json")
    results = json.loads(path.read_text())
    assert results["unroll_none_resolves_to"] == (5 if results["backend"] == "gpu" else 1)
    rows = results["workloads"]["w1"]["rows"]
    assert [row["unroll"] for row in rows] == [1, 3]
    for row in rows:
        assert row["forward_best_ms"] > 0 and row["train_best_ms"] > 0
        assert set(row["compile_s"]) == {"forward", "train"}


def test_unroll_arguments_are_checked():
    for values in ("1,x", "0", ""):
        with pytest.raises(SystemExit):
            unroll.parse_args(["--values", values])
    assert unroll.parse_args(["--values", "2,5", "--quick"]).values == [2, 5]


def test_float64_cost_benchmark_reports_the_default_right(capsys):
    from benchmarks import float64

    float64.main(["--quick"])
    rows = {line[:24].strip(): line[24:].split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"float64", "float64, no remat", "float64, remat=True"}
    best_ms, ratio, error = (float(v) for v in rows["float64"])
    assert best_ms > 0 and ratio > 0
    assert error <= 1e-9  # the default's gradients are the unrolled loop's
    assert float(rows["float64, no remat"][1]) == 1.0  # the baseline of the ratios
