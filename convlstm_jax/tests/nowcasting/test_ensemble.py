"""`convlstm_jax.nowcasting.ensemble`: an ensemble's CRPS, rank histogram and reliability per lead time, held
to numpy's computation of their formulas."""

import numpy as np
import pytest

from convlstm_jax.nowcasting import EnsembleVerification, verify_ensemble


@pytest.fixture(autouse=True)
def pysteps():
    return pytest.importorskip("pysteps", reason="needs pysteps (the nowcast extra)")


def _ensemble(seed, n=2, members=5, lead_times=3, size=8):
    """Continuous, tie-free members and truth in mm/h: (n, members, lead_times, size, size), (n, lead_times, ...)."""
    rng = np.random.default_rng(seed)
    truth = rng.gamma(1.0, 2.0, (n, lead_times, size, size))
    ensemble = truth[:, np.newaxis] * rng.uniform(0.3, 1.7, (n, members, lead_times, size, size))
    return ensemble.astype(np.float32), truth.astype(np.float32)


def _crps_numpy(members, y):
    """The CRPS of the empirical CDF of members (M, P) at observations y (P,): E|X - y| - E|X - X'| / 2."""
    spread = np.abs(members[:, np.newaxis] - members[np.newaxis]).mean(axis=(0, 1))
    return (np.abs(members - y).mean(axis=0) - spread / 2).mean()


def test_crps_is_the_formula_over_observed_pixels():
    ensemble, truth = _ensemble(0)
    truth[0, :, :2] = np.nan  # missing observations
    ensemble[1, 3, :, 4, 4] = np.nan  # one member without a value at one pixel
    result = verify_ensemble(ensemble, truth, thresholds=(1.0,))
    for k in range(3):
        observed = np.isfinite(truth[:, k]) & np.isfinite(ensemble[:, :, k]).all(axis=1)
        members = np.moveaxis(ensemble[:, :, k], 1, 0)[:, observed].astype(np.float64)
        expected = _crps_numpy(members, truth[:, k][observed].astype(np.float64))
        assert result["CRPS"][k] == pytest.approx(expected, rel=1e-6)
        assert result["observed_pixels"][k] == int(np.isfinite(truth[:, k]).sum()) == 2 * 64 - 16
        assert result["scored_pixels"][k] == int(observed.sum()) == result["observed_pixels"][k] - 1


def test_the_crps_of_a_deterministic_forecast_is_its_mean_absolute_error():
    ensemble, truth = _ensemble(1)
    forecast = ensemble[:, 0]
    truth[1, 0, 3:5] = np.nan
    result = verify_ensemble(forecast, truth)
    mae = [float(np.nanmean(np.abs(forecast[:, k] - truth[:, k]).astype(np.float64))) for k in range(3)]
    assert result["CRPS"] == pytest.approx(mae, rel=1e-6)
    assert verify_ensemble(forecast[:, np.newaxis], truth) == result  # one member, said either way
    assert all(len(h) == 2 for h in result["rank_histogram"])


def test_the_rank_histogram_counts_where_the_observation_falls():
    ensemble, truth = _ensemble(2, members=4)
    result = verify_ensemble(ensemble, truth, rank_threshold=0.0)
    for k in range(3):
        below = (ensemble[:, :, k] < truth[:, np.newaxis, k]).sum(axis=1).ravel()  # members below: the rank
        expected = np.bincount(below, minlength=5) / below.size
        np.testing.assert_allclose(result["rank_histogram"][k], expected)


def test_the_reliability_diagram_is_the_binned_probability_against_the_observed_frequency():
    ensemble, truth = _ensemble(3, n=4, members=3, size=16)  # probabilities 0, 1/3, 2/3, 1: no bin edge
    result = verify_ensemble(ensemble, truth, thresholds=(2.0,), reliability_min_count=5)
    for k in range(3):
        probability = (ensemble[:, :, k] >= 2.0).mean(axis=1).ravel()
        event = (truth[:, k] >= 2.0).ravel()
        bins = np.maximum(np.ceil(probability * 10).astype(int), 1) - 1  # (0, 0.1], (0.1, 0.2], ...
        diagram = result["reliability"]["2"][k]
        for b in range(10):
            count = int((bins == b).sum())
            assert diagram["pixels"][b] == count
            if count < 5:
                assert diagram["forecast_probability"][b] is None and diagram["observed_frequency"][b] is None
            else:
                assert diagram["forecast_probability"][b] == pytest.approx(probability[bins == b].mean())
                assert diagram["observed_frequency"][b] == pytest.approx(event[bins == b].mean())
        assert sum(diagram["pixels"]) == event.size


def test_two_batches_score_as_their_concatenation():
    ensemble, truth = _ensemble(4, n=4)
    whole = verify_ensemble(ensemble, truth, rank_threshold=0.0)
    verification = EnsembleVerification(3, rank_threshold=0.0)
    verification.accumulate(ensemble[:1], truth[:1])
    verification.accumulate(ensemble[1:], truth[1:])
    parts = verification.result()
    assert parts["CRPS"] == pytest.approx(whole["CRPS"])
    np.testing.assert_allclose(parts["rank_histogram"], whole["rank_histogram"])
    for key, diagrams in whole["reliability"].items():
        for part, diagram in zip(parts["reliability"][key], diagrams, strict=True):
            assert part["pixels"] == diagram["pixels"]
            for name in ("forecast_probability", "observed_frequency"):
                got = np.array(part[name], dtype=float)  # None: NaN
                np.testing.assert_allclose(got, np.array(diagram[name], dtype=float), rtol=1e-12)
    assert parts["observed_pixels"] == whole["observed_pixels"]


def test_a_mask_scores_its_pixels_only():
    ensemble, truth = _ensemble(5)
    mask = np.zeros(truth.shape[-2:], bool)
    mask[2:6, 1:7] = True
    masked = verify_ensemble(ensemble, truth, mask)
    cropped = verify_ensemble(ensemble[..., 2:6, 1:7], truth[..., 2:6, 1:7])
    assert masked["CRPS"] == pytest.approx(cropped["CRPS"])
    assert masked["observed_pixels"] == [2 * 24] * 3


def test_tied_ranks_are_broken_from_the_seed_and_leave_numpy_alone():
    truth = np.zeros((1, 1, 8, 8), np.float32)
    truth[0, 0, :4] = 1.0
    ensemble = np.ones((1, 3, 1, 8, 8), np.float32)  # ties wherever it rains
    before = np.random.get_state()[1].copy()  # noqa: NPY002  (the global generator pysteps draws from)
    first = verify_ensemble(ensemble, truth, seed=2)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    assert verify_ensemble(ensemble, truth, seed=2) == first
    assert sum(first["rank_histogram"][0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("forecast", "truth", "kwargs", "error", "match"),
    [
        (np.ones((1, 2, 3, 4, 4), np.float32), np.ones((1, 2, 4, 4), np.float32), {}, ValueError, "L=2 lead times"),
        (np.ones((1, 2, 2, 4, 4), np.float32), np.ones((1, 2, 4, 4), np.int32), {}, TypeError, "floating-point"),
        (-np.ones((1, 2, 2, 4, 4), np.float32), np.ones((1, 2, 4, 4), np.float32), {}, ValueError, ">= 0 mm/h"),
        (np.ones((2, 2, 4, 4, 1, 1)), np.ones((1, 2, 4, 4)), {}, ValueError, r"\(N, M, L, H, W\) members"),
        (
            np.ones((1, 2, 4, 4)),
            np.ones((1, 2, 4, 4)),
            {"mask": np.ones((3, 3), bool)},
            ValueError,
            "mask must be bool",
        ),
        (np.ones((1, 2, 4, 4)), np.ones((1, 2, 4, 4)), {"thresholds": (1, 1.0)}, ValueError, "must not repeat"),
        (np.ones((1, 2, 4, 4)), np.ones((1, 2, 4, 4)), {"seed": -1}, ValueError, "seed must be >= 0"),
    ],
)
def test_bad_input_is_refused(forecast, truth, kwargs, error, match):
    with pytest.raises(error, match=match):
        verify_ensemble(forecast, truth, **kwargs)


def test_a_batch_of_other_members_is_refused_and_leaves_the_scores_alone():
    ensemble, truth = _ensemble(6)
    verification = EnsembleVerification(3)
    verification.accumulate(ensemble, truth)
    before = verification.result()
    with pytest.raises(ValueError, match="the 5 members of the batches before, got 4"):
        verification.accumulate(ensemble[:, :4], truth)
    assert verification.result() == before


def test_steps_scored_on_a_translating_field():
    pytest.importorskip("cv2", reason="pysteps' Lucas-Kanade needs OpenCV (the nowcast extra)")
    from convlstm_jax.nowcasting import baselines

    rng = np.random.default_rng(0)
    field = np.maximum(np.cumsum(np.cumsum(rng.normal(size=(32, 32)), 0), 1) / 8, 0)
    frames = np.stack([np.roll(field, (t, 2 * t), axis=(0, 1)) for t in range(7)]).astype(np.float32)
    forecasts = baselines(frames[np.newaxis, :4], 3, methods=("steps_ensemble", "steps_mean"), n_ens_members=3)
    ensemble, truth = forecasts["steps_ensemble"], frames[np.newaxis, 4:]
    result = verify_ensemble(ensemble, truth)
    mean = verify_ensemble(forecasts["steps_mean"], truth)
    for k in range(3):
        assert result["scored_pixels"][k] < result["observed_pixels"][k] == 32 * 32  # the inflow band: NaN
        assert result["scored_pixels"][k] == mean["scored_pixels"][k]  # the mean is NaN where any member is
        # E|X - y| - E|X - X'| / 2 <= E|X - y|: the CRPS is at most the members' mean absolute error.
        scored = np.isfinite(ensemble[0, :, k]).all(axis=0)
        members_mae = np.abs(ensemble[0, :, k][:, scored] - truth[0, k][scored]).mean()
        assert result["CRPS"][k] <= members_mae + 1e-6
