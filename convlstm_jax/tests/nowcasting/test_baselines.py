"""`convlstm_jax.nowcasting`'s baselines beyond persistence and optical flow (pysteps' S-PROG, ANVIL and
STEPS), their blind pixels (NaN) and missing input."""

import importlib

import numpy as np
import pytest

from convlstm_jax.nowcasting import ALL_BASELINES, ENSEMBLE_BASELINES, anvil, baselines, optical_flow, sprog, steps

baselines_module = importlib.import_module("convlstm_jax.nowcasting.baselines")


@pytest.fixture
def opencv():
    pytest.importorskip("pysteps", reason="needs pysteps (the nowcast extra)")
    return pytest.importorskip("cv2", reason="pysteps' Lucas-Kanade needs OpenCV (the nowcast extra)")


def _periodic_rain(size, seed):
    """Radar-like rain in mm/h on a periodic (size, size) grid: a Gaussian field of power spectrum |k|^-3,
    0.1 * 10^(0.8 (z - q)) mm/h above its 60 % quantile q, dry elsewhere."""
    rng = np.random.default_rng(seed)
    k = np.hypot(np.fft.fftfreq(size)[:, np.newaxis], np.fft.fftfreq(size)[np.newaxis, :])
    k[0, 0] = 1.0
    z = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * k**-1.5))
    z = (z - z.mean()) / z.std()
    q = np.quantile(z, 0.6)
    return np.where(z > q, 0.1 * 10 ** (0.8 * (z - q)), 0.0)


def _rolling(frames, size, dy, dx, seed):
    """The periodic field rolled (dy, dx) pixels a frame down and right: (frames, size, size) float32."""
    field = _periodic_rain(size, seed)
    return np.stack([np.roll(field, (t * dy, t * dx), axis=(0, 1)) for t in range(frames)]).astype(np.float32)


DY, DX = 1, 2
EXTRAPOLATING = ("optical_flow", "sprog", "anvil", "steps_mean")


@pytest.fixture(scope="module")
def translating():
    """Two sequences of 5 frames of 32 x 32 moving (1, 2) pixels a frame, every baseline's forecast of 3
    frames (STEPS with 3 members), and the truth."""
    pytest.importorskip("pysteps", reason="needs pysteps (the nowcast extra)")
    pytest.importorskip("cv2", reason="pysteps' Lucas-Kanade needs OpenCV (the nowcast extra)")
    frames = np.stack([_rolling(8, 32, DY, DX, seed) for seed in (0, 1)])
    observed, truth = frames[:, :5], frames[:, 5:]
    forecasts = baselines(observed, 3, methods=ALL_BASELINES, n_ens_members=3, seed=7)
    return observed, truth, forecasts


def test_every_baseline_has_the_documented_shape_and_dtype(translating):
    _, truth, forecasts = translating
    assert list(forecasts) == list(ALL_BASELINES)
    for name, forecast in forecasts.items():
        expected = (2, 3, 3, 32, 32) if name in ENSEMBLE_BASELINES else truth.shape
        assert forecast.shape == expected and forecast.dtype == np.float32, name
        assert np.nanmin(forecast) >= 0, name
    ensemble = forecasts["steps_ensemble"].astype(np.float64)
    mean = ensemble.mean(axis=1)  # NaN where any member is
    np.testing.assert_allclose(forecasts["steps_mean"], mean, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("name", EXTRAPOLATING)
def test_extrapolation_moves_the_rain_with_the_wind(translating, name):
    observed, truth, forecasts = translating
    forecast = forecasts[name]
    for n in range(2):
        last = observed[n, -1]
        for k in range(1, 4):
            frame = forecast[n, k - 1]
            inside = np.isfinite(frame)
            inside[: DY * k + 2] = inside[:, : DX * k + 2] = False  # the upwind band and one pixel more
            assert inside.sum() > 0.3 * frame.size  # ANVIL, whose older input frames move too, reaches least
            # The shift of the last frame that best matches the forecast is the true displacement.
            shifts = [(sy, sx) for sy in range(-1, 5) for sx in range(-1, 8)]
            errors = [np.abs(np.roll(last, s, axis=(0, 1))[inside] - frame[inside]).mean() for s in shifts]
            best = shifts[int(np.argmin(errors))]
            if name == "steps_mean":  # 3 members, each moved along its own perturbed motion: within a pixel
                assert abs(best[0] - DY * k) <= 1 and abs(best[1] - DX * k) <= 1, (name, n, k, best)
            else:
                assert best == (DY * k, DX * k), (name, n, k)
            # And closer to the truth than persistence.
            moved_error = np.abs(truth[n, k - 1][inside] - frame[inside]).mean()
            assert moved_error < np.abs(truth[n, k - 1][inside] - last[inside]).mean(), (name, n, k)


@pytest.mark.parametrize("name", ("optical_flow", "sprog", "anvil", "steps_mean", "steps_ensemble"))
def test_rain_from_beyond_the_edge_is_nan_not_dry(translating, name):
    _, _, forecasts = translating
    forecast = forecasts[name]
    for k in range(1, 4):
        # The upwind column has no trajectory inside the frame at any lead time.
        assert np.isnan(forecast[..., k - 1, :, 0]).all(), (name, k)
        # Far downwind everything is reached.
        assert np.isfinite(forecast[..., k - 1, DY * k + 16 :, DX * k + 16 :]).all(), (name, k)
    assert np.isfinite(forecasts["persistence"]).all()


def test_optical_flow_is_nan_beyond_its_trajectories_and_as_before_elsewhere(opencv):
    import contextlib
    import io
    import warnings

    with contextlib.redirect_stdout(io.StringIO()):
        import pysteps
    observed = _rolling(4, 32, DY, DX, seed=3)
    forecast = optical_flow(observed, 3)
    # pysteps' extrapolation example, step by step.
    db = pysteps.utils.transformation.dB_transform(observed[-3:].astype(np.float64), threshold=0.1, zerovalue=-15.0)[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Singular matrix")
        velocity = pysteps.motion.get_method("lucaskanade")(db)
    moved = pysteps.nowcasts.get_method("extrapolation")(db[-1], velocity, 3)
    expected = pysteps.utils.transformation.dB_transform(moved, threshold=-10.0, inverse=True)[0].astype(np.float32)
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(np.isnan(forecast), np.isnan(expected))
    np.testing.assert_array_equal(forecast[np.isfinite(forecast)], expected[np.isfinite(expected)])


def test_missing_input_is_carried_as_nan(opencv):
    observed = _rolling(5, 32, DY, DX, seed=4)
    observed[:, 12:18, 14:20] = np.nan  # a radar down over the same pixels in every frame
    forecasts = baselines(observed[np.newaxis], 3, methods=ALL_BASELINES, n_ens_members=2)
    np.testing.assert_array_equal(np.isnan(forecasts["persistence"][0]), np.isnan(observed[[-1, -1, -1]]))
    for name in ("optical_flow", "sprog", "anvil", "steps_mean"):
        forecast = forecasts[name][0]
        for k in range(1, 4):
            # The missing block, carried along the motion (its core: interpolation widens it; STEPS' members
            # each move along their own perturbed motion).
            a = 2 if name == "steps_mean" else 1
            core = forecast[k - 1, 12 + a + DY * k : 18 - a + DY * k, 14 + a + DX * k : 20 - a + DX * k]
            assert np.isnan(core).all(), (name, k)
            assert np.isfinite(forecast[k - 1, 26:, 28:]).all(), (name, k)  # downwind of both


def test_dry_input_is_forecast_dry(opencv):
    forecasts = baselines(np.zeros((1, 4, 16, 16), np.float32), 2, methods=ALL_BASELINES, n_ens_members=2)
    for name, forecast in forecasts.items():
        np.testing.assert_array_equal(np.nan_to_num(forecast, nan=1.0), 0, err_msg=name)


def test_steps_is_seeded_and_each_sequence_its_own(opencv):
    observed = np.stack([_rolling(4, 32, DY, DX, seed) for seed in (5, 6)])
    ensemble = steps(observed, 2, n_ens_members=2, seed=3)
    assert ensemble.shape == (2, 2, 2, 32, 32)
    np.testing.assert_array_equal(steps(observed[1], 2, n_ens_members=2, seed=3), ensemble[1])
    assert not np.array_equal(steps(observed, 2, n_ens_members=2, seed=4), ensemble, equal_nan=True)


def test_the_functions_are_the_baselines_by_name(opencv):
    observed = _rolling(4, 32, DY, DX, seed=8)
    forecasts = baselines(observed, 2, methods=("sprog", "anvil", "steps_ensemble"), n_ens_members=2, seed=1)
    np.testing.assert_array_equal(forecasts["sprog"], sprog(observed, 2))
    np.testing.assert_array_equal(forecasts["anvil"], anvil(observed, 2))
    np.testing.assert_array_equal(forecasts["steps_ensemble"], steps(observed, 2, n_ens_members=2, seed=1))


RAIN = np.ones((2, 4, 8, 8), np.float32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: baselines(RAIN, 2, methods=("steps",)), ValueError, r"got \('steps',\)"),
        (lambda: baselines(RAIN[:, :3], 2, methods=("anvil",)), ValueError, r"anvil needs the last 4 frames.*has 3"),
        (lambda: sprog(RAIN[:, :2], 2), ValueError, r"sprog needs the last 3 frames.*has 2"),
        (lambda: steps(RAIN, 2, n_ens_members=0), ValueError, "n_ens_members must be >= 1, got 0"),
        (lambda: steps(RAIN, 2, seed=1.5), TypeError, "seed must be an int, got float"),
        (lambda: steps(RAIN, 2, kmperpixel=0), ValueError, "kmperpixel must be positive and finite, got 0"),
        (lambda: steps(RAIN, 2, timestep="6"), TypeError, "timestep must be a real number, got str"),
        (lambda: anvil(np.where(RAIN > 0, np.inf, RAIN), 2), ValueError, "infinite"),
        (
            lambda: sprog(np.concatenate([RAIN[:, :3], np.full_like(RAIN[:, :1], np.nan)], 1), 2),
            ValueError,
            r"frame 3 of sequence 0 is entirely missing",
        ),
    ],
)
def test_bad_input_is_refused_before_any_work(monkeypatch, call, error, match):
    monkeypatch.setattr(baselines_module, "_pysteps", lambda: pytest.fail("pysteps was reached"))
    with pytest.raises(error, match=match):
        call()
