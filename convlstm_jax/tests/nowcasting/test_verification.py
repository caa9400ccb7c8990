"""Verification that counts observed pixels only, on the whole frame and on the pixels extrapolation can
reach, with paired bootstrap intervals of the model-minus-baseline differences."""

import importlib
import warnings

import numpy as np
import pytest

verification = importlib.import_module("convlstm_jax.nowcasting.verification")


@pytest.fixture
def pysteps():
    return pytest.importorskip("pysteps", reason="needs pysteps (the nowcast extra)")


def _hand_counts(forecast, truth, threshold, scored):
    """Contingency counts per lead time, by hand: a NaN forecast is dry, a NaN truth is not counted."""
    forecast = np.nan_to_num(forecast, nan=0.0)
    scored = scored & np.isfinite(truth)
    f, o = forecast > threshold, np.nan_to_num(truth, nan=0.0) > threshold
    axes = (0, 2, 3)
    return {
        "hits": np.sum(f & o & scored, axis=axes),
        "misses": np.sum(~f & o & scored, axis=axes),
        "false_alarms": np.sum(f & ~o & scored, axis=axes),
        "correct_negatives": np.sum(~f & ~o & scored, axis=axes),
    }


def _random_pair(seed, n=3, lead_times=2, size=8, missing=0.1, blind=0.1):
    rng = np.random.default_rng(seed)
    truth = rng.gamma(0.5, 4.0, (n, lead_times, size, size)).astype(np.float32)
    forecast = np.clip(truth + rng.normal(0, 2.0, truth.shape), 0, None).astype(np.float32)
    truth[rng.random(truth.shape) < missing] = np.nan
    forecast[rng.random(truth.shape) < blind] = np.nan
    return forecast, truth


def test_30_mm_h_is_among_the_thresholds():
    assert 30.0 in verification.THRESHOLDS and list(verification.THRESHOLDS) == sorted(verification.THRESHOLDS)


def test_missing_truth_is_not_scored_and_a_blind_forecast_is_dry(pysteps):
    forecast, truth = _random_pair(0)
    mask = np.zeros(truth.shape, bool)
    mask[..., 2:6, 1:7] = True
    for region in (None, mask):
        scored = np.ones(truth.shape, bool) if region is None else region
        v = verification.Verification(2, thresholds=(0.5, 5.0), fss_scales=())
        v.accumulate(forecast, truth, mask=region)
        result = v.result()
        for threshold in (0.5, 5.0):
            counts = _hand_counts(forecast, truth, threshold, scored)
            key = verification.threshold_key(threshold)
            for name, values in counts.items():
                assert result["contingency"][key][name] == values.tolist()
            h, m, f = counts["hits"], counts["misses"], counts["false_alarms"]
            np.testing.assert_allclose(result["CSI"][key], h / (h + m + f))
        valid = scored & np.isfinite(truth)
        error = (np.nan_to_num(forecast, nan=0.0) - np.nan_to_num(truth)) ** 2
        mse = np.sum(error * valid, axis=(0, 2, 3)) / np.sum(valid, axis=(0, 2, 3))
        np.testing.assert_allclose(result["MSE"], mse, rtol=1e-6)
        assert result["observed_pixels"] == np.sum(valid, axis=(0, 2, 3)).tolist()


def test_fss_ignores_what_is_not_scored(pysteps):
    truth = np.zeros((1, 1, 16, 16), np.float32)
    truth[0, 0, 4:8, 4:8] = 5.0
    forecast = truth.copy()
    forecast[0, 0, :, 12:] = 9.0  # a false alarm where the truth is missing: not scored
    truth[0, 0, :, 12:] = np.nan
    result = verification.verify(forecast, truth, thresholds=(1.0,), fss_scales=(1, 3))
    assert result["FSS"]["1"] == {"1": [1.0], "3": [1.0]}


def test_per_sequence_counts_add_up_to_pysteps_table(pysteps):
    forecast, truth = _random_pair(1, n=4, missing=0, blind=0)
    result = verification.verify(forecast, truth, thresholds=(2.0,), fss_scales=())
    table = pysteps.verification.det_cat_fct_init(2.0, axis=(0, 2, 3))
    pysteps.verification.det_cat_fct_accum(table, forecast, truth)
    per_sequence = result["per_sequence"]["contingency"]["2"]
    for name in ("hits", "misses", "false_alarms", "correct_negatives"):
        np.testing.assert_array_equal(np.sum(per_sequence[name], axis=0), table[name])
    assert np.shape(per_sequence["hits"]) == (4, 2)
    errors = pysteps.verification.det_cont_fct(forecast[:, 1], truth[:, 1], ["MSE"])["MSE"]
    assert result["MSE"][1] == pytest.approx(errors, rel=1e-6)


def test_bad_masks_are_refused(pysteps):
    forecast, truth = _random_pair(2)
    v = verification.Verification(2, fss_scales=())
    cases = [
        (
            np.ones(truth.shape[1:], bool),
            ValueError,
            r"mask must have the shape of truth, \(3, 2, 8, 8\), got \(2, 8, 8\)",
        ),
        (np.ones(truth.shape, np.float32), TypeError, "mask must be a boolean array"),
    ]
    for mask, error, match in cases:
        with pytest.raises(error, match=match):
            v.accumulate(forecast, truth, mask=mask)
    with pytest.raises(ValueError, match="forecast must be finite or NaN"):
        v.accumulate(np.full_like(forecast, np.inf), truth)
    assert v.num_sequences == 0


def _moving_cell(frames=6, size=32, speed=2):
    rows, columns = np.mgrid[:size, :size]
    cell = lambda t: 10 * np.exp(-((rows - 16) ** 2 + (columns - 10 - speed * t) ** 2) / 18)  # noqa: E731
    return np.stack([cell(t) for t in range(frames)]).astype(np.float32)


def test_reachable_is_where_pysteps_extrapolation_returns_a_value(pysteps):
    pytest.importorskip("cv2", reason="pysteps' Lucas-Kanade needs OpenCV (the nowcast extra)")
    from convlstm_jax.nowcasting.baselines import DB_THRESHOLD, DB_ZERO_VALUE

    observed = _moving_cell()
    observed[-1, 0, 0] = np.nan  # a missing pixel of the last frame: extrapolation cannot move it
    reachable = verification.reachable(observed[np.newaxis], 3)
    assert reachable.shape == (1, 3, 32, 32) and reachable.dtype == bool
    db = pysteps.utils.transformation.dB_transform(observed[-3:], threshold=DB_THRESHOLD, zerovalue=DB_ZERO_VALUE)[0]
    with warnings.catch_warnings():  # a pure translation: pysteps finds the vectors' covariance singular
        warnings.filterwarnings("ignore", message="Singular matrix during outlier detection")
        velocity = pysteps.motion.get_method("lucaskanade")(db)
    moved = pysteps.extrapolation.semilagrangian.extrapolate(
        db[-1], velocity, 3, outval=np.nan, allow_nonfinite_values=True
    )
    np.testing.assert_array_equal(reachable[0], np.isfinite(moved))
    # The rain moves right: the upwind band (left columns) widens lead time by lead time.
    band = [int(np.sum(~r[16])) for r in reachable[0]]
    assert 0 < band[0] < band[1] < band[2] and not reachable[0, 0, 16, 0] and reachable[0, 0, 16, -1]
    np.testing.assert_array_equal(verification.reachable(observed, 3), reachable[0])
    with pytest.raises(ValueError, match="motion_frames=3 frames"):
        verification.reachable(observed[:2], 3)


def _results_with_counts(seed, n, lead_times, bias):
    rng = np.random.default_rng(seed)
    truth = rng.gamma(0.5, 4.0, (n, lead_times, 8, 8)).astype(np.float32)
    forecast = np.clip(truth * bias + rng.normal(0, 2.0, truth.shape), 0, None).astype(np.float32)
    return forecast, truth


def test_the_bootstrap_interval_is_a_paired_resampling_of_sequences(pysteps):
    n, lead_times, resamples, seed = 7, 3, 200, 4
    model, truth = _results_with_counts(0, n, lead_times, 1.0)
    baseline, _ = _results_with_counts(1, n, lead_times, 0.6)
    results = {
        name: verification.verify(f, truth, thresholds=(0.5, 5.0), fss_scales=())
        for name, f in (("model", model), ("persistence", baseline))
    }
    got = verification.bootstrap_differences(results, resamples=resamples, seed=seed)
    assert list(got) == ["persistence"]

    def headline(forecast, index):  # CSI at 5 mm/h and MSE, means over the lead times, from the pixels
        f, o = forecast[index], truth[index]
        h = np.sum((f > 5) & (o > 5), axis=(0, 2, 3))
        wrong = np.sum((f > 5) != (o > 5), axis=(0, 2, 3))
        return np.mean(h / (h + wrong)), np.mean(np.mean((f - o) ** 2, axis=(0, 2, 3)))

    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        differences.append(np.subtract(headline(model, index), headline(baseline, index)))
    differences = np.array(differences)
    everything = np.arange(n)
    point = np.subtract(headline(model, everything), headline(baseline, everything))
    for column, entry in enumerate((got["persistence"]["CSI"]["5"], got["persistence"]["MSE"])):
        assert entry["difference"] == pytest.approx(point[column])
        low, high = np.percentile(differences[:, column], [2.5, 97.5])
        assert (entry["low"], entry["high"]) == (pytest.approx(low), pytest.approx(high))
        assert entry["low"] <= entry["difference"] <= entry["high"]
    assert verification.bootstrap_differences(results, resamples=resamples, seed=seed) == got
    with pytest.raises(ValueError, match="the same sequences"):
        other = verification.verify(model[:2], truth[:2], thresholds=(0.5, 5.0), fss_scales=())
        verification.bootstrap_differences({"model": results["model"], "persistence": other})
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        verification.bootstrap_differences(results, resamples=0)
    with pytest.raises(ValueError, match="no 'model'"):
        verification.bootstrap_differences({"persistence": results["persistence"]})


def test_the_table_means_over_the_lead_times_every_method_has(pysteps):
    forecast, truth = _results_with_counts(3, 2, 4, 1.0)
    long = verification.verify(forecast, truth, fss_scales=())
    short = verification.verify(forecast[:, :2], truth[:, :2], fss_scales=())
    lines = verification.skill_table({"model": long, "persistence": short}).splitlines()
    assert "mean over the 2 lead times every method has" in lines[0]
    labels = [line[:8].strip() for line in lines[2:]]
    assert labels == ["6 min", "", "12 min", "", "18 min", "", "24 min", "", "mean", ""]
    assert lines[2 + 7][8:].split() == ["persistence"] + ["n/a"] * 6  # no 24-minute forecast
    mean = float(lines[2 + 8][8:].split()[1])
    assert mean == pytest.approx(np.mean(long["CSI"]["0.5"][:2]), abs=5e-4)
    assert mean != pytest.approx(np.mean(long["CSI"]["0.5"]), abs=5e-4)


def test_the_table_of_a_skill_dict_has_both_regions_and_the_intervals(pysteps):
    forecast, truth = _results_with_counts(5, 4, 2, 1.0)
    mask = np.zeros(truth.shape, bool)
    mask[..., 2:, 2:] = True
    regions = {"frame": {}, "reachable": {}}
    for name, f in (("model", forecast), ("optical_flow", forecast * 0.5)):
        for region, m in (("frame", None), ("reachable", mask)):
            v = verification.Verification(2, fss_scales=())
            v.accumulate(f, truth, mask=m)
            regions[region][name] = v.result()
    skill = {
        "regions": regions,
        "differences": {r: verification.bootstrap_differences(regions[r], resamples=50) for r in regions},
    }
    table = verification.skill_table(skill)
    for region in regions:
        assert verification.skill_table(regions[region]) in table
        entry = skill["differences"][region]["optical_flow"]["CSI"]["0.5"]
        assert f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]" in table
    assert "frame: every observed pixel" in table and "reachable:" in table


def test_plot_skill_draws_both_regions_of_a_skill_dict(pysteps, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the figures need matplotlib")
    from matplotlib.figure import Figure

    from convlstm_jax.nowcasting import plots

    forecast, truth = _results_with_counts(6, 2, 3, 1.0)
    regions = {r: {"model": verification.verify(forecast, truth, fss_scales=())} for r in ("frame", "reachable")}
    regions["reachable"]["persistence"] = verification.verify(forecast[:, :2], truth[:, :2], fss_scales=())
    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, path, **kwargs: drawn.append(figure))
    plots.plot_skill(tmp_path / "csi.png", {"regions": regions, "differences": {}}, score="CSI", threshold=0.5)
    (axes,) = drawn[0].axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert list(lines) == ["model, frame", "model, reachable", "persistence, reachable"]
    np.testing.assert_allclose(
        lines["persistence, reachable"].get_ydata(), regions["reachable"]["persistence"]["CSI"]["0.5"]
    )
    np.testing.assert_allclose(lines["persistence, reachable"].get_xdata(), [6, 12])
    assert lines["model, reachable"].get_linestyle() == "--" and lines["model, frame"].get_linestyle() == "-"
    assert lines["model, reachable"].get_color() == lines["model, frame"].get_color()
