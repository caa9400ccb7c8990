"""`convlstm_jax.nowcasting`'s baselines and verification (pysteps' forecasts and scores, the skill table) and
its plots."""

import contextlib
import importlib
import json
import math
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from convlstm_common.tolerance import tolerance_for
from convlstm_jax.nowcasting import (
    Verification,
    baselines,
    optical_flow,
    persistence,
    plot_radar_forecasts,
    plot_skill,
    score_by_lead_time,
    skill_table,
    threshold_key,
    verify,
)

# The modules themselves: the package's name `baselines` is the function of that name.
baselines_module = importlib.import_module("convlstm_jax.nowcasting.baselines")
verification_module = importlib.import_module("convlstm_jax.nowcasting.verification")


@pytest.fixture
def pysteps():
    return pytest.importorskip("pysteps", reason="needs pysteps (the nowcast extra)")


@pytest.fixture
def opencv(pysteps):
    return pytest.importorskip("cv2", reason="pysteps' Lucas-Kanade needs OpenCV (the nowcast extra)")


def _radar_like(height, width, seed):
    """A rain field in mm/h with radar rain's texture: a Gaussian field z of power spectrum |k|^-3, 0.1 *
    10^(0.8 (z - q)) mm/h where it exceeds its 65 % quantile q, dry elsewhere (a third wet, cores of 5-50 mm/h)."""
    rng = np.random.default_rng(seed)
    k = np.hypot(np.fft.fftfreq(height)[:, np.newaxis], np.fft.fftfreq(width)[np.newaxis, :])
    k[0, 0] = 1.0
    z = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((height, width))) * k**-1.5))
    z = (z - z.mean()) / z.std()
    q = np.quantile(z, 0.65)
    return np.where(z > q, 0.1 * 10 ** (0.8 * (z - q)), 0.0)


def _translating(frames, size, dy, dx, seed):
    """Radar-like rain moving (dy, dx) whole pixels a frame down and right, cut from a larger field:
    (frames, size, size) float32."""
    canvas = _radar_like(size + frames * dy, size + frames * dx, seed)
    top, left = frames * dy, frames * dx
    return np.stack(
        [canvas[top - t * dy : top - t * dy + size, left - t * dx : left - t * dx + size] for t in range(frames)]
    ).astype(np.float32)


def _one_openmp_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="openmp")


# --- Importing --------------------------------------------------------------------------------


def test_importing_the_module_needs_neither_pysteps_nor_opencv_and_prints_nothing():
    # In a fresh process: the module imports without pysteps and OpenCV; the first call imports
    # pysteps (where installed) without the line pysteps prints on import.
    code = (
        "import importlib.util, sys, numpy as np, convlstm_jax.nowcasting as nowcasting\n"
        "print('pysteps' in sys.modules, 'cv2' in sys.modules)\n"
        "if importlib.util.find_spec('pysteps'):\n"
        "    nowcasting.persistence(np.zeros((2, 4, 4), np.float32), 1)\n"
        "    assert 'pysteps' in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "False False\n"


def test_without_pysteps_the_functions_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pysteps", None)  # `import pysteps` raises ImportError
    rain = np.zeros((1, 3, 8, 8), np.float32)
    for call in (
        lambda: persistence(rain, 2),
        lambda: optical_flow(rain, 2),
        lambda: Verification(2),
        lambda: plot_radar_forecasts("unused.png", rain[0], rain[0], {"m": rain[0]}),
    ):
        with pytest.raises(ImportError, match=re.escape('pip install "convlstm-jax[nowcast]"')):
            call()


def test_lucas_kanade_without_opencv_says_how_to_install_it(pysteps, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"OpenCV.*convlstm-jax\[nowcast\].*motion='vet'"):
        optical_flow(np.zeros((1, 3, 8, 8), np.float32), 2)


# --- Baselines --------------------------------------------------------------------------------


def test_persistence_repeats_the_last_frame(pysteps):
    observed = np.random.default_rng(0).gamma(0.5, 2.0, size=(3, 4, 8, 9)).astype(np.float32)
    forecast = persistence(observed, 5)
    assert forecast.shape == (3, 5, 8, 9) and forecast.dtype == np.float32
    for n in range(3):
        for lead in range(5):
            np.testing.assert_array_equal(forecast[n, lead], observed[n, -1])
    np.testing.assert_array_equal(persistence(observed[1], 5), forecast[1])  # one sequence, no N


@pytest.mark.parametrize(("dy", "dx", "seed"), [(1, 2, 0), (0, 3, 2), (2, 1, 1), (1, 1, 2)])
def test_optical_flow_forecasts_a_translation_by_whole_pixels(opencv, dy, dx, seed):
    lead_times = 4
    frames = _translating(6 + lead_times, 64, dy, dx, seed)
    observed, truth = frames[:6], frames[6:]
    forecast = optical_flow(observed, lead_times)
    assert forecast.shape == truth.shape and forecast.dtype == np.float32
    missed = 0.0
    for k in range(1, lead_times + 1):
        # Rain that came from beyond the top or left edge is not forecast: that band has no value (NaN).
        upwind = np.zeros(truth.shape[1:], bool)
        upwind[: dy * k] = True
        upwind[:, : dx * k] = True
        assert np.isnan(forecast[k - 1][upwind]).all()
        missed = max(missed, truth[k - 1][upwind].max())
        # Elsewhere (a pixel further in: bilinear interpolation's reach) the forecast is the truth,
        # but for Lucas-Kanade's error on the speed (up to ~0.1 pixel a frame on 64 x 64 frames,
        # measured), which grows with the lead time: 2-8 % of persistence's error.
        inside = (slice(dy * k + 1, None), slice(dx * k + 1, None))
        error = np.abs(forecast[k - 1][inside] - truth[k - 1][inside])
        persistence_error = np.abs(observed[-1][inside] - truth[k - 1][inside])
        assert error.mean() <= 0.1 * persistence_error.mean(), (k, error.mean(), persistence_error.mean())
        assert error.max() <= 0.25 * truth.max(), (k, error.max(), truth.max())
    assert missed > 1  # there was rain in that band to miss


def test_optical_flow_by_vet_forecasts_a_translation(pysteps, capsys):
    lead_times = 3
    frames = _translating(4 + lead_times, 32, 1, 1, seed=0)
    observed, truth = frames[:4], frames[4:]
    # VET's OpenMP threads wait for each other at every step: one thread is far faster on busy CPUs
    # (0.5 s here, pysteps' default sectors).
    with _one_openmp_thread():
        forecast = optical_flow(observed, lead_times, motion="vet")
    assert capsys.readouterr().out == ""  # VET's progress lines are off
    for k in range(1, lead_times + 1):
        assert np.isnan(forecast[k - 1, :k]).all()  # nothing comes in from beyond the edges: no value
        assert np.isnan(forecast[k - 1, :, :k]).all()
        inside = (slice(k + 1, None), slice(k + 1, None))
        error = np.abs(forecast[k - 1][inside] - truth[k - 1][inside])
        persistence_error = np.abs(observed[-1][inside] - truth[k - 1][inside])
        assert error.mean() <= 0.1 * persistence_error.mean(), (k, error.mean(), persistence_error.mean())


def test_optical_flow_of_dry_frames_is_dry(opencv):
    forecast = optical_flow(np.zeros((2, 3, 16, 16), np.float32), 2)
    np.testing.assert_array_equal(forecast, np.zeros((2, 2, 16, 16), np.float32))


def test_optical_flow_uses_the_last_motion_frames(opencv):
    # Frames before the last motion_frames move the other way: they must not matter.
    frames = _translating(8, 32, 0, 2, seed=2)
    observed = np.concatenate([frames[4:1:-1], frames[:5]])  # moving left, then right
    np.testing.assert_array_equal(optical_flow(observed, 2), optical_flow(observed[-3:], 2))
    assert not np.array_equal(optical_flow(observed, 2, motion_frames=6), optical_flow(observed[-3:], 2))


def test_baselines_are_the_functions_by_name(opencv):
    observed = np.stack([_translating(4, 32, 1, 1, seed=3), _translating(4, 32, 0, 2, seed=4)])
    forecasts = baselines(observed, 3)
    assert list(forecasts) == ["persistence", "optical_flow"]
    np.testing.assert_array_equal(forecasts["persistence"], persistence(observed, 3))
    np.testing.assert_array_equal(forecasts["optical_flow"], optical_flow(observed, 3))
    only = baselines(observed, 3, methods=("optical_flow",), motion_frames=2)
    assert list(only) == ["optical_flow"]
    np.testing.assert_array_equal(only["optical_flow"], optical_flow(observed, 3, motion_frames=2))


RAIN = np.zeros((2, 4, 8, 8), np.float32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f: f(RAIN.astype(np.uint8), 2), TypeError, r"floating-point dtype, got uint8.*pixels_to_rain"),
        (lambda f: f(RAIN.tolist(), 2), TypeError, "must be an array of rain rates in mm/h, got list"),
        (lambda f: f(RAIN[0, 0], 2), ValueError, r"\(N, T_in, H, W\) or one sequence.*got shape \(8, 8\)"),
        (lambda f: f(RAIN[None], 2), ValueError, r"got shape \(1, 2, 4, 8, 8\)"),
        (lambda f: f(np.where(RAIN == 0, np.inf, RAIN), 2), ValueError, r"or NaN \(missing\): it holds 512 infinite"),
        (lambda f: f(RAIN - 1, 2), ValueError, "rain rates >= 0 mm/h, got a minimum of -1"),
        (lambda f: f(RAIN, 0), ValueError, "lead_times must be >= 1, got 0"),
        (lambda f: f(RAIN, 2.0), TypeError, "lead_times must be an int, got float"),
        (lambda f: f(RAIN, True), TypeError, "lead_times must be an int, got bool"),
    ],
)
@pytest.mark.parametrize("function", [persistence, optical_flow, baselines], ids=lambda f: f.__name__)
def test_bad_observations_are_refused_before_any_work(monkeypatch, function, call, error, match):
    monkeypatch.setattr(baselines_module, "_pysteps", lambda: pytest.fail("pysteps was reached"))
    with pytest.raises(error, match=match):
        call(function)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"motion": "farneback"}, ValueError, r"motion must be one of \('lucaskanade', 'vet'\), got 'farneback'"),
        ({"motion_frames": 1}, ValueError, "motion_frames must be >= 2, got 1"),
        ({"motion_frames": 5}, ValueError, r"last motion_frames=5 frames; observed has 4"),
        ({"motion_kwargs": [("sectors", 2)]}, TypeError, "motion_kwargs must be a mapping"),
    ],
)
@pytest.mark.parametrize("function", [optical_flow, baselines], ids=lambda f: f.__name__)
def test_bad_motion_options_are_refused_before_any_work(monkeypatch, function, kwargs, error, match):
    monkeypatch.setattr(baselines_module, "_pysteps", lambda: pytest.fail("pysteps was reached"))
    with pytest.raises(error, match=match):
        function(RAIN, 2, **kwargs)


@pytest.mark.parametrize(
    ("methods", "error", "match"),
    [
        ("persistence", TypeError, "methods must be a sequence of names"),
        ((), ValueError, "methods must name each of some of"),
        (("persistence", "persistence"), ValueError, "once"),
        (("model",), ValueError, r"got \('model',\)"),
    ],
)
def test_baselines_refuse_other_methods(monkeypatch, methods, error, match):
    monkeypatch.setattr(baselines_module, "_pysteps", lambda: pytest.fail("pysteps was reached"))
    with pytest.raises(error, match=match):
        baselines(RAIN, 2, methods=methods)


# --- Scores -----------------------------------------------------------------------------------


def _pair(seed, n=3, lead_times=2, size=16):
    """A noisy, shifted forecast and the truth: radar-like rain rates (n, lead_times, size, size)."""
    rng = np.random.default_rng(seed)
    truth = np.stack([[_radar_like(size, size, (seed, i, t)) for t in range(lead_times)] for i in range(n)])
    forecast = np.roll(truth, 1, axis=-1) * rng.uniform(0.5, 1.5, truth.shape)
    return forecast.astype(np.float32), truth.astype(np.float32)


def _assert_same_result(actual, expected):
    """Equal keys, None at the same places, the numbers within float64 rounding."""
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            _assert_same_result(actual[key], value)
        elif isinstance(value, list) and any(isinstance(v, float) or v is None for v in value):
            assert [v is None for v in actual[key]] == [v is None for v in value], key
            pairs = np.array([(a, e) for a, e in zip(actual[key], value) if e is not None], np.float64).reshape(-1, 2)
            assert tolerance_for("float64").score(pairs[:, 0], pairs[:, 1]) <= 1, key
        else:
            assert actual[key] == value, key


def test_two_batches_score_as_their_concatenation(pysteps):
    (f1, t1), (f2, t2) = _pair(1, n=2), _pair(2, n=3)
    verification = Verification(2)
    verification.accumulate(f1, t1)
    verification.accumulate(f2, t2)
    batched = verification.result()
    whole = verify(np.concatenate([f1, f2]), np.concatenate([t1, t2]))
    assert batched["num_sequences"] == whole["num_sequences"] == 5
    assert all(v is not None for v in batched["CSI"]["0.5"] + batched["corr"])  # a test of numbers
    _assert_same_result(batched, whole)
    # And the batches do count: the first batch alone scores otherwise.
    assert verify(f1, t1)["MSE"] != whole["MSE"]


def test_categorical_scores_are_those_of_the_contingency_table(pysteps):
    forecast, truth = _pair(3, n=2, lead_times=3)
    thresholds = (0.5, 2.0)
    result = verify(forecast, truth, thresholds=thresholds, fss_scales=())
    for t in thresholds:
        key = threshold_key(t)
        for lead in range(3):
            f, o = forecast[:, lead] > t, truth[:, lead] > t
            hits, misses = int(np.sum(f & o)), int(np.sum(~f & o))
            false_alarms, negatives = int(np.sum(f & ~o)), int(np.sum(~f & ~o))
            assert min(hits, misses, false_alarms, negatives) > 0  # every cell of the table is used
            counts = result["contingency"][key]
            assert [counts[c][lead] for c in ("hits", "misses", "false_alarms", "correct_negatives")] == [
                hits,
                misses,
                false_alarms,
                negatives,
            ]
            assert result["CSI"][key][lead] == pytest.approx(hits / (hits + misses + false_alarms), rel=1e-12)
            assert result["POD"][key][lead] == pytest.approx(hits / (hits + misses), rel=1e-12)
            assert result["FAR"][key][lead] == pytest.approx(false_alarms / (hits + false_alarms), rel=1e-12)
            expected_random = (
                (hits + misses) * (hits + false_alarms) + (negatives + misses) * (negatives + false_alarms)
            ) / f.size
            hss = (hits + negatives - expected_random) / (f.size - expected_random)
            assert result["HSS"][key][lead] == pytest.approx(hss, rel=1e-12)


def test_a_tiny_hand_made_table():
    pytest.importorskip("pysteps", reason="needs pysteps (the nowcast extra)")
    truth = np.zeros((1, 1, 2, 3), np.float32)
    forecast = np.zeros_like(truth)
    truth[0, 0] = [[1.0, 1.0, 0.0], [0.0, 0.7, 0.0]]
    forecast[0, 0] = [[1.0, 0.0, 1.0], [0.0, 0.6, 0.4]]
    result = verify(forecast, truth, thresholds=(0.5,), fss_scales=(1,))
    # Above 0.5 mm/h: hits at (0, 0) and (1, 1), a miss at (0, 1), a false alarm at (0, 2), 2 correct negatives.
    hits, misses, false_alarms = 2, 1, 1
    assert result["contingency"]["0.5"] == {"hits": [2], "misses": [1], "false_alarms": [1], "correct_negatives": [2]}
    assert result["CSI"]["0.5"] == [hits / (hits + misses + false_alarms)]
    assert result["POD"]["0.5"] == [hits / (hits + misses)]
    assert result["FAR"]["0.5"] == [false_alarms / (hits + false_alarms)]
    # FSS at one pixel: 1 - sum (I_f - I_o)^2 / sum (I_f^2 + I_o^2), binary fields (>= 0.5).
    f, o = (forecast >= 0.5).astype(float), (truth >= 0.5).astype(float)
    assert result["FSS"]["0.5"]["1"] == pytest.approx([1 - np.sum((f - o) ** 2) / np.sum(f**2 + o**2)], rel=1e-12)


def test_continuous_scores_are_the_mse_and_pearson_correlation_per_lead_time(pysteps):
    forecast, truth = _pair(4, n=3, lead_times=2)
    result = verify(forecast, truth)
    for lead in range(2):
        f, o = forecast[:, lead].astype(np.float64).ravel(), truth[:, lead].astype(np.float64).ravel()
        assert result["MSE"][lead] == pytest.approx(np.mean((f - o) ** 2), rel=1e-9)
        assert result["corr"][lead] == pytest.approx(np.corrcoef(f, o)[0, 1], rel=1e-9)


def test_fss_grows_with_the_scale_for_a_displaced_forecast(pysteps):
    truth = np.zeros((1, 1, 32, 32), np.float32)
    truth[0, 0, 10:16, 10:16] = 3.0
    forecast = np.roll(truth, 3, axis=-1)
    fss = verify(forecast, truth, thresholds=(1.0,), fss_scales=(1, 5, 15))["FSS"]["1"]
    assert fss["1"][0] < fss["5"][0] < fss["15"][0] < 1


def test_a_perfect_forecast_and_an_empty_event(pysteps):
    truth = np.zeros((2, 2, 8, 8), np.float32)
    truth[:, :, 2:5, 3:6] = 3.0
    truth[:, 1, 0, 0] = 0.7
    result = verify(truth, truth)
    json.dumps(result, allow_nan=False)  # strict JSON: undefined scores are None, not NaN
    for key in ("0.5", "2"):  # thresholds with events
        assert result["CSI"][key] == result["POD"][key] == result["HSS"][key] == [1.0, 1.0]
        assert result["FAR"][key] == [0.0, 0.0]
        assert all(result["FSS"][key][s] == [1.0, 1.0] for s in ("1", "5", "15"))
    assert result["MSE"] == [0.0, 0.0]
    assert result["corr"] == pytest.approx([1.0, 1.0], rel=1e-12)
    for key in ("5", "10"):  # no rain above 5 mm/h anywhere: no event, the scores are undefined
        for score in ("CSI", "POD", "FAR", "HSS"):
            assert result[score][key] == [None, None], (score, key)
        assert all(result["FSS"][key][s] == [None, None] for s in ("1", "5", "15"))
        assert result["contingency"][key]["correct_negatives"] == [2 * 64, 2 * 64]
    # All dry: no correlation either (a constant field), and an MSE of 0.
    dry = verify(np.zeros_like(truth), np.zeros_like(truth))
    assert dry["corr"] == [None, None] and dry["MSE"] == [0.0, 0.0]
    # A forecast of nothing where it rained: POD 0, FAR undefined (never forecast).
    missed = verify(np.zeros_like(truth), truth, thresholds=(0.5,))
    assert missed["POD"]["0.5"] == [0.0, 0.0] and missed["FAR"]["0.5"] == [None, None]
    assert missed["CSI"]["0.5"] == [0.0, 0.0]


def test_one_lead_time_and_one_sequence_without_n(pysteps):
    forecast, truth = _pair(5, n=1, lead_times=1)
    single = verify(forecast[0], truth[0])
    _assert_same_result(single, verify(forecast, truth))
    assert single["lead_times"] == [1] and single["num_sequences"] == 1


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Verification(0), ValueError, "lead_times must be >= 1, got 0"),
        (lambda: Verification(2, thresholds=()), ValueError, "at least one rain rate"),
        (lambda: Verification(2, thresholds=(0.5, 0.50)), ValueError, "thresholds must differ"),
        (lambda: Verification(2, thresholds=(-1,)), ValueError, r"thresholds\[\] must be positive and finite, got -1"),
        (lambda: Verification(2, thresholds=0.5), TypeError, "thresholds must be a sequence, got float"),
        (lambda: Verification(2, thresholds=("1",)), TypeError, "must be a real number, got str"),
        (lambda: Verification(2, fss_scales=(0,)), ValueError, r"fss_scales\[\] must be >= 1, got 0"),
        (lambda: Verification(2, fss_scales=(2.5,)), TypeError, r"fss_scales\[\] must be an int, got float"),
        (lambda: Verification(2, fss_scales=(3, 3)), ValueError, "fss_scales must differ"),
    ],
)
def test_bad_verification_options_are_refused(monkeypatch, make, error, match):
    monkeypatch.setattr(verification_module, "_pysteps", lambda: pytest.fail("pysteps was reached"))
    with pytest.raises(error, match=match):
        make()


def test_bad_batches_are_refused_and_leave_the_scores_alone(pysteps):
    forecast, truth = _pair(6, n=2, lead_times=2)
    verification = Verification(2)
    with pytest.raises(ValueError, match="Nothing to score yet"):
        verification.result()
    cases = [
        ((forecast, truth[:1]), ValueError, r"one shape, got \(2, 2, 16, 16\) and \(1, 2, 16, 16\)"),
        ((forecast[:, :1], truth[:, :1]), ValueError, r"lead_times=2 frames .* got shape \(2, 1, 16, 16\)"),
        ((forecast, truth.astype(np.int32)), TypeError, "truth must be rain rates in mm/h of a floating-point dtype"),
        ((forecast, -truth), ValueError, "truth must be rain rates >= 0"),
        ((np.full_like(forecast, np.inf), truth), ValueError, "forecast must be finite"),
    ]
    for arrays, error, match in cases:
        with pytest.raises(error, match=match):
            verification.accumulate(*arrays)
    assert verification.num_sequences == 0
    verification.accumulate(forecast, truth)
    _assert_same_result(verification.result(), verify(forecast, truth))


# --- The table and score series ---------------------------------------------------------------


@pytest.fixture(scope="module")
def results():
    pytest.importorskip("pysteps", reason="needs pysteps (the nowcast extra)")
    out = {}
    for seed, name in enumerate(("model", "persistence", "optical_flow")):
        forecast, truth = _pair(10 + seed, n=2, lead_times=3)
        out[name] = verify(forecast, truth)
    out["persistence"]["corr"][1] = None  # an undefined score, as JSON holds it
    return out


def test_the_skill_table_holds_the_numbers(results):
    table = skill_table(results, threshold=2, interval_minutes=6)
    lines = table.splitlines()
    assert "at 2 mm/h" in lines[0]
    assert lines[1].split() == ["lead", "method", "CSI", "POD", "FAR", "HSS", "MSE", "corr"]
    assert len({len(line) for line in lines[1:]}) == 1  # fixed width
    rows = lines[2:]
    assert len(rows) == 3 * 3 + 3
    names = list(results)
    for i, line in enumerate(rows):
        lead, name = divmod(i, 3)
        method = names[name]
        label = "mean" if lead == 3 else f"{6 * (lead + 1)} min"
        assert line.startswith(label if name == 0 else " " * 8), line
        cells = line[8:].split()
        assert cells[0] == method
        expected = [score_by_lead_time(results[method], s, threshold=2) for s in ("CSI", "POD", "FAR", "HSS")]
        expected += [score_by_lead_time(results[method], s) for s in ("MSE", "corr")]
        for cell, values in zip(cells[1:], expected):
            value = np.nanmean(values) if lead == 3 else values[lead]
            assert cell == ("n/a" if math.isnan(value) else f"{value:.3f}"), (line, cell, value)
    assert rows[4].split()[-1] == "n/a"  # persistence's undefined corr at 12 min
    assert rows[10].split()[-1] != "n/a"  # its mean over the lead times where it is defined


def test_the_skill_table_keeps_the_order_of_the_methods(results):
    reordered = {name: results[name] for name in ("optical_flow", "model", "persistence")}
    lines = skill_table(reordered).splitlines()
    assert [line[8:].split()[0] for line in lines[2:5]] == ["optical_flow", "model", "persistence"]
    assert lines[2].startswith("6 min") and skill_table(results, interval_minutes=2.5).splitlines()[5].startswith(
        "5 min"
    )


def test_the_skill_table_refuses_bad_results(results):
    other = verify(*_pair(20, n=1, lead_times=2))
    cases = [
        ([], 0.5, TypeError, "must map method names"),
        ({}, 0.5, ValueError, "at least one method"),
        ({"model": results["model"], "persistence": {**other, "lead_times": [7, 8]}}, 0.5, ValueError, "share a lead"),
        (
            {"model": results["model"]},
            3,
            ValueError,
            r"no CSI at 3 mm/h; its thresholds are \['0.5', '2', '5', '10', '30'\]",
        ),
        ({1: results["model"]}, 0.5, TypeError, "keyed by method names"),
        ({"model": {"lead_times": [1]}}, 0.5, ValueError, "no 'CSI' per lead time"),
    ]
    for value, threshold, error, match in cases:
        with pytest.raises(error, match=match):
            skill_table(value, threshold=threshold)
    with pytest.raises(ValueError, match="interval_minutes must be positive"):
        skill_table(results, interval_minutes=0)


def test_score_series(results):
    result = results["model"]

    def floats(values):  # None (undefined) is NaN
        return np.array(values, np.float64)

    assert None in result["POD"]["5"]
    np.testing.assert_array_equal(score_by_lead_time(result, "POD", threshold=5), floats(result["POD"]["5"]))
    np.testing.assert_array_equal(score_by_lead_time(result, "MSE"), floats(result["MSE"]))
    fss = score_by_lead_time(result, "FSS", threshold=0.5)  # at the first scale
    np.testing.assert_array_equal(fss, floats(result["FSS"]["0.5"]["1"]))
    fss = score_by_lead_time(result, "FSS", threshold=0.5, scale=15)
    np.testing.assert_array_equal(fss, floats(result["FSS"]["0.5"]["15"]))
    for kwargs, match in [
        ({"score": "ETS", "threshold": 0.5}, "score must be one of"),
        ({"score": "CSI"}, "CSI is per threshold"),
        ({"score": "MSE", "threshold": 0.5}, "takes no threshold"),
        ({"score": "CSI", "threshold": 0.5, "scale": 5}, "CSI takes no scale"),
        ({"score": "FSS", "threshold": 0.5, "scale": 3}, r"no FSS at scale 3; its scales are \['1', '5', '15'\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            score_by_lead_time(result, **kwargs)


# --- Plots ------------------------------------------------------------------------------------


def _png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_plot_skill_writes_a_png(results, tmp_path):
    for score, kwargs in [("CSI", {}), ("FSS", {"threshold": 2, "scale": 5}), ("MSE", {}), ("corr", {})]:
        path = tmp_path / f"{score}.png"
        plot_skill(path, results, score=score, **kwargs)
        assert _png_size(path) == (640, 400)  # 6.4 x 4 inches at 100 dpi


def test_plot_skill_refuses_bad_arguments(results, tmp_path):
    path = tmp_path / "skill.png"
    cases = [
        ({"results": {}}, ValueError, "at least one method"),
        ({"results": [results["model"]]}, TypeError, "must map method names"),
        ({"score": "BIAS"}, ValueError, "score must be one of"),
        ({"threshold": 1.0}, ValueError, "no CSI at 1 mm/h"),
        ({"scale": 5}, ValueError, "scale is the side of FSS's windows"),
        ({"score": "FSS", "scale": 4}, ValueError, "no FSS at scale 4"),
        ({"interval_minutes": -6}, ValueError, "interval_minutes must be positive"),
        ({"interval_minutes": "6"}, TypeError, "interval_minutes must be a number"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            plot_skill(path, kwargs.pop("results", results), **kwargs)
    assert not path.exists()


def test_plot_radar_forecasts_grows_with_rows_and_columns_up_to_max_columns(pysteps, tmp_path):
    rain = _translating(12, 16, 1, 1, seed=7)

    def size(inputs, lead_times, methods, **kwargs):
        path = tmp_path / "radar.png"
        truth = rain[inputs : inputs + lead_times]
        plot_radar_forecasts(path, rain[:inputs], truth, {f"m{i}": truth for i in range(methods)}, **kwargs)
        return _png_size(path)

    width, height = size(2, 2, 1, max_columns=3)
    assert width > height / 2  # two columns and the colour bar, three rows
    one_more, two_more = size(2, 2, 2, max_columns=3), size(2, 2, 3, max_columns=3)
    assert one_more[0] == two_more[0] == width
    assert two_more[1] - one_more[1] == one_more[1] - height > 0  # a row more, as much taller
    three = size(2, 3, 1, max_columns=3)
    assert three[0] > width and three[1] == height  # a column more, wider
    assert size(5, 6, 1, max_columns=3) == three  # at most 3 columns: every other frame
    assert size(2, 2, 1, max_columns=3, title="sequence 0")[1] > height


def test_plot_radar_forecasts_refuses_bad_arguments(pysteps, tmp_path):
    rain = np.zeros((6, 8, 8), np.float32)
    inputs, truth = rain[:3], rain[3:]
    path = tmp_path / "radar.png"
    cases = [
        ((inputs, truth, {"model": truth[:2]}), {}, ValueError, r"model must be of shape \(3, 8, 8\)"),
        ((inputs[:, :4], truth, {"model": truth}), {}, ValueError, r"inputs must be of shape \('T_in', 8, 8\)"),
        ((inputs, truth, {"model": truth[None]}), {}, ValueError, "model must be 3-D"),
        ((inputs, truth.astype(np.uint8), {"model": truth}), {}, TypeError, "truth must be a floating-point array"),
        ((inputs, truth, [truth]), {}, TypeError, "forecasts must map method names"),
        ((inputs, truth, {}), {}, ValueError, "at least one method's forecast"),
        ((inputs, truth, {"truth": truth}), {}, TypeError, "other than inputs/truth"),
        ((inputs, truth, {"model": truth}), {"max_columns": 0}, ValueError, "max_columns must be >= 1"),
        ((inputs, truth, {"model": truth}), {"max_columns": 2.0}, TypeError, "max_columns must be an int"),
        ((inputs, truth, {"model": truth}), {"interval_minutes": 0}, ValueError, "interval_minutes must be positive"),
    ]
    for args, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            plot_radar_forecasts(path, *args, **kwargs)
    assert not path.exists()
