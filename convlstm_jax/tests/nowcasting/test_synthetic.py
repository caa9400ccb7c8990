"""`convlstm_jax.nowcasting`'s units and synthetic radar: rain rate, reflectivity and HKO-7 pixels, and
`synthetic_radar`, whose physics (wet fraction, intensities, motion, rotation, evolution, spectrum) is
measured on its output."""

import contextlib
import io
import math

import numpy as np
import pytest
from scipy import ndimage, optimize

from convlstm_jax.nowcasting import (
    dbz_to_pixels,
    dbz_to_rain,
    pixels_to_dbz,
    pixels_to_rain,
    rain_to_dbz,
    rain_to_pixels,
    synthetic_radar,
)

# HKO-7's encoding, pixel = 255 (dBZ + 10) / 70, and Marshall-Palmer's Z = 200 R^1.6, written out here
# rather than read from the module, so that a wrong constant there shows.
LOW_DBZ, HIGH_DBZ = -10.0, 60.0
PIXEL_DBZ = (HIGH_DBZ - LOW_DBZ) / 255  # 0.2745 dBZ a pixel
MP_A, MP_B = 200.0, 1.6

# A pattern that neither moves nor evolves: no wind, no growth, a lifetime far beyond any sequence.
FROZEN = dict(speed=(0.0, 0.0), rotation=0.0, turning=0.0, wind_variability=0.0, growth=0.0, lifetime=1e9)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays, flattened."""
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _shift(before: np.ndarray, after: np.ndarray, reach: int) -> np.ndarray:
    """(rows, columns) by which `after` is `before` moved, after(x) ~ before(x - shift), for shifts up to
    `reach` pixels: the peak of their phase correlation (Hann-windowed) within `reach`, refined to a
    hundredth of a pixel by least squares on the pixels `reach` away from the edges (cubic splines)."""
    n = before.shape[0]
    window = np.outer(np.hanning(n), np.hanning(n))
    fa = np.fft.fft2((before - before.mean()) * window)
    fb = np.fft.fft2((after - after.mean()) * window)
    cross = fb * np.conj(fa)
    surface = np.fft.fftshift(np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-12))))
    offsets = np.arange(n) - n // 2
    surface[np.hypot(offsets[:, np.newaxis], offsets[np.newaxis, :]) > reach] = -np.inf
    peak = np.unravel_index(np.argmax(surface), surface.shape)
    coefficients = ndimage.spline_filter(before, order=3, mode="nearest")
    inner = (slice(reach + 1, n - reach - 1),) * 2

    def misfit(shift: np.ndarray) -> float:
        moved = ndimage.shift(coefficients, shift, order=3, mode="nearest", prefilter=False)
        return float(np.mean((moved[inner] - after[inner]) ** 2))

    start = np.array([offsets[peak[0]], offsets[peak[1]]], np.float64)
    return optimize.minimize(misfit, start, method="Nelder-Mead", options={"xatol": 0.01, "fatol": 1e-12}).x


def _high_wavenumber_fraction(fields: np.ndarray) -> float:
    """The share of the (Hann-windowed, mean-removed) power of square fields (..., n, n) beyond n / 8
    cycles per frame: low for a smooth field, high for a rough one."""
    n = fields.shape[-1]
    window = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fft2((fields - fields.mean(axis=(-2, -1), keepdims=True)) * window)) ** 2
    k = np.fft.fftfreq(n) * n
    high = np.hypot(k[:, np.newaxis], k[np.newaxis, :]) > n / 8
    return float(power[..., high].sum() / power.sum())


# --- Conversions -----------------------------------------------------------------------------------


def test_rain_to_dbz_is_marshall_palmer_and_dbz_to_rain_inverts_it():
    rain = np.geomspace(1e-3, 500.0, 200)
    np.testing.assert_allclose(rain_to_dbz(rain), 10 * np.log10(MP_A * rain**MP_B), rtol=1e-12)
    np.testing.assert_allclose(dbz_to_rain(rain_to_dbz(rain)), rain, rtol=1e-12)
    # float32 in, float32 out, to float32's precision.
    rain32 = rain.astype(np.float32)
    assert rain_to_dbz(rain32).dtype == np.float32
    assert dbz_to_rain(rain_to_dbz(rain32)).dtype == np.float32
    np.testing.assert_allclose(dbz_to_rain(rain_to_dbz(rain32)), rain32, rtol=1e-5)
    # Another Z-R relation (a convective one, Z = 300 R^1.4) round-trips with the same a and b.
    np.testing.assert_allclose(rain_to_dbz(rain, a=300.0, b=1.4), 10 * np.log10(300.0 * rain**1.4), rtol=1e-12)
    np.testing.assert_allclose(dbz_to_rain(rain_to_dbz(rain, 300.0, 1.4), 300.0, 1.4), rain, rtol=1e-12)
    # Dry is -inf dBZ, and back.
    assert rain_to_dbz(np.array([0.0]))[0] == -np.inf
    assert dbz_to_rain(np.array([-np.inf]))[0] == 0.0


def test_rain_to_dbz_agrees_with_pysteps():
    conversion = pytest.importorskip("pysteps.utils.conversion", reason="pysteps is not installed")
    with contextlib.redirect_stdout(io.StringIO()):  # pysteps greets on its first import
        import pysteps  # noqa: F401
    rain = np.concatenate([[0.0, 0.05], np.geomspace(0.1, 300.0, 60)])
    metadata = {"unit": "mm/h", "transform": None, "threshold": 0.1, "zerovalue": 0.0, "accutime": 6}
    dbz, out = conversion.to_reflectivity(rain, metadata)
    assert out["unit"] == "dBZ" and (out["zr_a"], out["zr_b"]) == (MP_A, MP_B)
    wet = rain >= metadata["threshold"]  # pysteps sets what is below its threshold to a zero value
    np.testing.assert_allclose(rain_to_dbz(rain[wet]), dbz[wet], rtol=0, atol=1e-9)
    dbz, _ = conversion.to_reflectivity(rain, metadata, zr_a=300.0, zr_b=1.4)
    np.testing.assert_allclose(rain_to_dbz(rain[wet], a=300.0, b=1.4), dbz[wet], rtol=0, atol=1e-9)


def test_the_pixel_encoding_end_points():
    assert dbz_to_pixels(np.array([LOW_DBZ, HIGH_DBZ])).tolist() == [0, 255]
    assert dbz_to_pixels(np.array([-np.inf, -40.0, 75.0])).tolist() == [0, 0, 255]  # dry, and clipped
    assert dbz_to_pixels(np.array([LOW_DBZ])).dtype == np.uint8
    np.testing.assert_allclose(pixels_to_dbz(np.array([0, 255], np.uint8)), [LOW_DBZ, HIGH_DBZ], atol=1e-5)
    # Rain: dry is 0, rain beyond 60 dBZ (205 mm/h by Marshall-Palmer) is 255, below -10 dBZ 0.
    heaviest = (10 ** (HIGH_DBZ / 10) / MP_A) ** (1 / MP_B)
    lightest = (10 ** (LOW_DBZ / 10) / MP_A) ** (1 / MP_B)
    assert rain_to_pixels(np.array([0.0, 0.5 * lightest, 1.01 * heaviest, 1e4])).tolist() == [0, 0, 255, 255]
    assert pixels_to_rain(np.array([0], np.uint8))[0] == 0.0
    np.testing.assert_allclose(pixels_to_rain(np.array([255], np.uint8)), [heaviest], rtol=1e-5)
    # A float forecast at or below 0 is dry too.
    assert pixels_to_rain(np.array([-3.0, 0.0])).tolist() == [0.0, 0.0]


def test_every_pixel_round_trips_and_the_encoding_is_linear_in_dbz():
    pixels = np.arange(256, dtype=np.uint8)
    dbz = pixels_to_dbz(pixels)
    np.testing.assert_allclose(dbz, LOW_DBZ + PIXEL_DBZ * pixels, atol=1e-5)
    np.testing.assert_array_equal(dbz_to_pixels(dbz), pixels)
    np.testing.assert_array_equal(rain_to_pixels(pixels_to_rain(pixels)), pixels)


def test_rain_round_trips_through_pixels_within_half_a_pixel():
    # Rounding to the nearest pixel moves dBZ by at most half a pixel, PIXEL_DBZ / 2 = 0.137 dBZ, and
    # dBZ = 10 log10(a) + 10 b log10(R), so the rate by at most a factor 10^(PIXEL_DBZ / (20 b)) = 1.0199.
    bound = 10 ** (PIXEL_DBZ / 2 / (10 * MP_B))
    lightest = (10 ** ((LOW_DBZ + PIXEL_DBZ / 2) / 10) / MP_A) ** (1 / MP_B)  # rounds up to pixel 1
    heaviest = (10 ** (HIGH_DBZ / 10) / MP_A) ** (1 / MP_B)
    rain = np.geomspace(lightest * 1.001, heaviest * 0.999, 5000)
    ratio = pixels_to_rain(rain_to_pixels(rain)) / rain
    assert ratio.max() <= bound * (1 + 1e-6) and ratio.min() >= (1 - 1e-6) / bound
    assert ratio.max() > bound**0.9  # and the bound is tight: the step is not finer than the encoding's
    assert rain_to_pixels(np.array([0.0]))[0] == 0 and pixels_to_rain(rain_to_pixels(np.array([0.0])))[0] == 0.0


def test_the_conversions_are_monotonic():
    rain = np.geomspace(1e-3, 1e3, 3000)
    assert (np.diff(rain_to_dbz(rain)) > 0).all()
    assert (np.diff(rain_to_pixels(rain).astype(int)) >= 0).all()
    assert set(np.unique(rain_to_pixels(rain)).tolist()) == set(range(256))  # every pixel is reached
    dbz = np.linspace(-20.0, 70.0, 3000)
    assert (np.diff(dbz_to_rain(dbz)) > 0).all()
    assert (np.diff(dbz_to_pixels(dbz).astype(int)) >= 0).all()
    forecast = np.linspace(0.5, 255.0, 1000)  # a float forecast maps continuously and increasingly
    assert (np.diff(pixels_to_rain(forecast)) > 0).all()


def test_the_conversions_take_lists():
    np.testing.assert_allclose(rain_to_dbz([0.5, 1.0]), rain_to_dbz(np.array([0.5, 1.0])))
    np.testing.assert_allclose(dbz_to_rain([20.0, 30.0]), dbz_to_rain(np.array([20.0, 30.0])))
    np.testing.assert_array_equal(rain_to_pixels([0.5, 1.0]), rain_to_pixels(np.array([0.5, 1.0])))


# --- synthetic_radar: the contract -------------------------------------------------------------------


def test_synthetic_radar_shape_dtype_and_values():
    rain = synthetic_radar(8, 6, size=32, seed=1)
    assert rain.shape == (8, 6, 32, 32)
    assert rain.dtype == np.float32
    assert np.isfinite(rain).all()
    wet = rain > 0
    assert (rain[~wet] == 0).all()  # dry is exactly 0, never negative
    assert rain[wet].min() >= np.float32(0.1)  # the lightest rain is the threshold, 0.1 mm/h
    assert 0 < wet.mean() < 1
    assert rain.max() > 10  # cores of 10 mm/h and more
    assert synthetic_radar(1, 1, size=2).shape == (1, 1, 2, 2)  # the smallest frames


def test_synthetic_radar_is_deterministic_and_each_sequence_its_own():
    rain = synthetic_radar(18, 3, size=16, seed=4)
    np.testing.assert_array_equal(rain, synthetic_radar(18, 3, size=16, seed=4))
    # Sequence n depends on (seed, n) alone: the first k of N are those of k, across the blocks of 16
    # sequences made together, and a shorter sequence is the start of a longer one.
    for k in (1, 2, 17):
        np.testing.assert_array_equal(rain[:k], synthetic_radar(k, 3, size=16, seed=4))
    np.testing.assert_array_equal(rain[:, :2], synthetic_radar(18, 2, size=16, seed=4))
    # Another seed gives other sequences, and the sequences differ from one another.
    other = synthetic_radar(18, 3, size=16, seed=5)
    assert all(not np.array_equal(rain[n], other[n]) for n in range(18))
    assert len({rain[n].tobytes() for n in range(18)}) == 18


def test_synthetic_radar_is_the_same_with_workers():
    # Three chunks of 16 sequences, made by 2 and by 3 workers at once.
    serial = synthetic_radar(33, 3, size=16, seed=4)
    for workers in (2, 3):
        np.testing.assert_array_equal(synthetic_radar(33, 3, size=16, seed=4, workers=workers), serial)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(num_sequences=0), ValueError, r"num_sequences must be a positive int, got 0"),
        (dict(num_sequences=2.0), TypeError, r"num_sequences must be an int, got float"),
        (dict(num_sequences=True), TypeError, r"num_sequences must be an int, got bool"),
        (dict(num_frames=0), ValueError, r"num_frames must be a positive int, got 0"),
        (dict(num_frames="3"), TypeError, r"num_frames must be an int, got str"),
        (dict(size=1), ValueError, r"size must be an int >= 2, got 1"),
        (dict(size=16.0), TypeError, r"size must be an int, got float"),
        (dict(seed=-1), ValueError, r"seed must be an int >= 0, got -1"),
        (dict(seed=None), TypeError, r"seed must be an int, got NoneType"),
        (dict(seed=False), TypeError, r"seed must be an int, got bool"),
        (dict(speed=2.0), TypeError, r"speed must be a \(low, high\) pair of pixels a frame, got 2\.0"),
        (dict(speed=(1.0, 2.0, 3.0)), TypeError, r"speed must be a \(low, high\) pair .*got \(1\.0, 2\.0, 3\.0\)"),
        (dict(speed="12"), TypeError, r"speed must be a \(low, high\) pair"),
        (dict(speed=(3.0, 1.0)), ValueError, r"speed\[1\] must be >= 3\.0, got 1\.0"),
        (dict(speed=(-1.0, 2.0)), ValueError, r"speed\[0\] must be >= 0\.0, got -1\.0"),
        (dict(speed=(True, 2.0)), TypeError, r"speed\[0\] must be a real number, got bool"),
        (dict(speed=(1.0, "2")), TypeError, r"speed\[1\] must be a real number, got str"),
        (dict(speed=(math.nan, 2.0)), ValueError, r"speed\[0\] must be >= 0\.0, got nan"),
        (dict(rotation=-0.01), ValueError, r"rotation must be >= 0\.0, got -0\.01"),
        (dict(rotation=True), TypeError, r"rotation must be a real number, got bool"),
        (dict(rotation=math.nan), ValueError, r"rotation must be >= 0\.0, got nan"),
        (dict(turning=-1), ValueError, r"turning must be >= 0\.0, got -1"),
        (dict(turning="0.1"), TypeError, r"turning must be a real number, got str"),
        (dict(wind_variability=-0.5), ValueError, r"wind_variability must be >= 0\.0, got -0\.5"),
        (dict(wind_variability=None), TypeError, r"wind_variability must be a real number, got NoneType"),
        (dict(growth=-0.1), ValueError, r"growth must be >= 0\.0, got -0\.1"),
        (dict(growth=False), TypeError, r"growth must be a real number, got bool"),
        (dict(growth_lifetime=0), ValueError, r"growth_lifetime must be positive, got 0"),
        (dict(growth_lifetime=-1.0), ValueError, r"growth_lifetime must be >= 0\.0, got -1\.0"),
        (dict(growth_lifetime=math.inf), ValueError, r"growth_lifetime must be finite, got inf"),
        (dict(growth_lifetime="10"), TypeError, r"growth_lifetime must be a real number, got str"),
        (dict(lifetime=0), ValueError, r"lifetime must be positive, got 0"),
        (dict(lifetime=-5.0), ValueError, r"lifetime must be >= 0\.0, got -5\.0"),
        (dict(lifetime=math.nan), ValueError, r"lifetime must be >= 0\.0, got nan"),
        (dict(lifetime=[40.0]), TypeError, r"lifetime must be a real number, got list"),
        (dict(wet_fraction=0.0), ValueError, r"wet_fraction must be strictly between 0 and 1, got 0\.0"),
        (dict(wet_fraction=1), ValueError, r"wet_fraction must be strictly between 0 and 1, got 1"),
        (dict(wet_fraction=1.5), ValueError, r"wet_fraction must be in \[0\.0, 1\.0\], got 1\.5"),
        (dict(wet_fraction=-0.2), ValueError, r"wet_fraction must be in \[0\.0, 1\.0\], got -0\.2"),
        (dict(wet_fraction=True), TypeError, r"wet_fraction must be a real number, got bool"),
        (dict(spectral_slope=-1.0), ValueError, r"spectral_slope must be >= 0\.0, got -1\.0"),
        (dict(spectral_slope="3"), TypeError, r"spectral_slope must be a real number, got str"),
        (dict(workers=0), ValueError, r"workers must be a positive int, got 0"),
        (dict(workers=2.0), TypeError, r"workers must be an int, got float"),
        (dict(workers=True), TypeError, r"workers must be an int, got bool"),
    ],
)
def test_synthetic_radar_rejects_bad_arguments(kwargs, error, match):
    args = {"num_sequences": 1, "num_frames": 2, "size": 8, **kwargs}
    with pytest.raises(error, match=match):
        synthetic_radar(args.pop("num_sequences"), args.pop("num_frames"), **args)


def test_synthetic_radar_takes_numpy_scalars_and_lists():
    rain = synthetic_radar(np.int64(2), np.int32(3), size=np.int64(8), speed=[np.float32(1.0), 2], growth=np.float64(0))
    np.testing.assert_array_equal(rain, synthetic_radar(2, 3, size=8, speed=(1.0, 2.0), growth=0.0))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(rotation=math.inf), "rotation"),
        (dict(turning=math.inf), "turning"),
        (dict(speed=(0.0, math.inf)), r"speed\[1\]"),
        (dict(growth=math.inf), "growth"),
        (dict(wind_variability=math.inf), "wind_variability"),
    ],
)
def test_synthetic_radar_rejects_infinite_rates(kwargs, name):
    with pytest.raises(ValueError, match=rf"{name}.*inf"):
        synthetic_radar(1, 2, size=8, **kwargs)


# --- synthetic_radar: the physics --------------------------------------------------------------------


@pytest.mark.parametrize("wet_fraction", [0.2, 0.6])
def test_the_wet_area_is_wet_fraction(wet_fraction):
    rain = synthetic_radar(48, 6, size=32, wet_fraction=wet_fraction, growth=0.0, seed=2)
    per_sequence = (rain > 0).mean(axis=(1, 2, 3))
    # The field's power is in its large scales, so one 32 x 32 crop's wet fraction varies much: its
    # standard deviation over sequences, for the mean of 6 consecutive frames (which barely averages),
    # measured 0.13-0.20 (8 seeds, both values). The mean of 48 sequences is then within
    # 0.2 / sqrt(48) = 0.029 (one standard error); 0.08 is 2.8 of them. (The means of the 8 seeds were
    # off by 0.05 at most.)
    assert abs(per_sequence.mean() - wet_fraction) < 0.08
    # The two values are far apart, so this also tells a threshold taken at the wrong tail.
    assert per_sequence.std() < 0.25


def test_the_wet_area_stays_wet_fraction_while_rain_grows_and_decays():
    rain = synthetic_radar(48, 12, size=32, wet_fraction=0.2, growth=0.2, seed=10)
    # Growth spreads the sequences' wet fractions further (standard deviation up to 0.27 measured), so the
    # standard error of the mean of 48 sequences is 0.04 at most; 20 seeds measured off by 0.046 at most.
    # A threshold fixed while growth raises z's variance gave 0.34.
    assert abs((rain[:, -3:] > 0).mean() - 0.2) < 0.1


def test_the_intensities_rise_10_db_per_standard_deviation():
    # wet_fraction = 0.5 puts the threshold at z = 0: wet z is half-normal, E[z^2 | z > 0] = 1, and
    # R = 0.1 mm/h 10^z is 10 z dB above 0.1 mm/h, so its mean square over the wet pixels is 100 dB^2.
    rain = synthetic_radar(64, 1, size=32, wet_fraction=0.5, seed=12)
    decibels = 10 * np.log10(rain[rain > 0] / 0.1)
    # Measured 10.05 dB; the crops' shared large scales make it uncertain by a few tenths of a dB
    # (8 dB, the law of 0.1 mm/h 10^(0.8 z), fails).
    assert abs(np.sqrt(np.mean(decibels**2)) - 10.0) < 1.0


def test_a_frozen_field_stays_and_growth_changes_it():
    rain = synthetic_radar(4, 10, size=32, seed=8, **FROZEN)
    wet = rain[:, :1] > 0
    assert ((rain > 0) == wet).all()  # no pixel turns wet or dry
    np.testing.assert_allclose(rain, np.broadcast_to(rain[:, :1], rain.shape), rtol=1e-3)  # measured 3e-6
    grown = synthetic_radar(4, 10, size=32, seed=8, **{**FROZEN, "growth": 0.1, "growth_lifetime": 3.0})
    # Growth is in its steady state from the first frame on (not started at it), and goes on: rain appears
    # and disappears. Measured on 10 seeds: 0.047-0.10, 0.044-0.14 and 0.033-0.11 (0 without growth).
    assert ((grown[:, 0] > 0) != wet[:, 0]).mean() > 0.02
    assert ((grown[:, -1] > 0) != (grown[:, 0] > 0)).mean() > 0.02
    assert np.abs(np.log1p(grown[:, -1]) - np.log1p(grown[:, 0])).mean() > 0.02


def test_the_statistics_do_not_drift_along_a_window():
    # A window's statistics must be those of any other frame of it: rain that grows on average from the
    # inputs to the leads is something a model learns from the window and extrapolation cannot know.
    # Pooled over 256 sequences (small frames: many independent crops for the time), frame 15 is compared
    # with frame 5 by the log-ratio of the area above 0.5 and 10 mm/h and of the 99th percentile, against
    # its standard error from resampling whole sequences (the frames of a sequence are not independent).
    rain = synthetic_radar(256, 16, size=16, seed=3)
    early, late = rain[:, 5], rain[:, 15]

    def pooled(frames):
        return np.array([(frames > 0.5).mean(), (frames > 10).mean(), np.percentile(frames, 99)])

    drift = np.log(pooled(late) / pooled(early))
    rng = np.random.default_rng(0)
    resampled = [rng.integers(0, len(rain), len(rain)) for _ in range(200)]
    error = np.std([np.log(pooled(late[i]) / pooled(early[i])) for i in resampled], axis=0)
    # Stationary, |drift| / error is about normal: 3.5 is passed with probability 0.9995 each. Growth as
    # a trend from the first frame, the wet area renormalised, measured 5.2-8.3 on the last two (4 seeds,
    # 256 and 512 sequences): the area above 10 mm/h 2-3 times, the percentile twice that of frame 5.
    assert (np.abs(drift) < 3.5 * error).all(), (drift, error)


@pytest.mark.parametrize("speed", [1.0, 2.5])
def test_rain_moves_with_the_mean_wind(speed):
    rain = synthetic_radar(6, 4, size=48, wet_fraction=0.5, seed=5, **{**FROZEN, "speed": (speed, speed)})
    field = np.log1p(rain)
    for n in range(len(field)):
        shifts = {(t0, t1): _shift(field[n, t0], field[n, t1], reach=8) for t0, t1 in [(0, 1), (1, 2), (2, 3), (0, 3)]}
        # speed * k pixels in k frames: measured within 0.65 px (3 seeds, both speeds); 10 px shifts in
        # 48 px frames were not measured as well (phase correlation's peaks less sharp, 1.1 px off).
        for (t0, t1), shift in shifts.items():
            assert abs(np.hypot(*shift) - speed * (t1 - t0)) < 1.0, (n, t0, t1, shift)
        # A steady wind: the same step every frame (measured within 0.33 px).
        for first, second in [((0, 1), (1, 2)), ((1, 2), (2, 3))]:
            assert np.hypot(*(shifts[second] - shifts[first])) < 0.75, (n, shifts)


def test_the_mean_wind_turns_at_up_to_turning_radians_a_frame():
    def turned(turning):
        """The angle between the wind's steps over frames 0-2 and 6-8: 6 frames of turning."""
        wind = {**FROZEN, "speed": (2.0, 2.0), "turning": turning}
        rain = synthetic_radar(4, 9, size=48, wet_fraction=0.5, seed=4, **wind)
        field = np.log1p(rain)
        early = [complex(*_shift(f[0], f[2], reach=8)) for f in field]
        late = [complex(*_shift(f[6], f[8], reach=8)) for f in field]
        return np.abs(np.angle(np.array(late) / np.array(early)))

    # Measured on 10 seeds: 0.13 rad at most without turning (a wind turning 0.1 rad a frame regardless
    # turns 0.6); with 0.15 rad a frame, up to 0.86 rad (6 frames: 0.9 at most), 0.38 or more for the
    # largest of 4.
    assert (turned(0.0) < 0.2).all()
    angles = turned(0.15)
    assert (angles <= 6 * 0.15 + 0.1).all() and angles.max() > 0.3, angles


def test_a_short_lifetime_decorrelates_frames_faster():
    def lag_5_correlation(lifetime):
        rain = synthetic_radar(4, 6, size=32, wet_fraction=0.5, seed=7, **{**FROZEN, "lifetime": lifetime})
        return np.mean([_correlation(np.log1p(r[0]), np.log1p(r[5])) for r in rain])

    # Measured on 20 seeds: 0.09-0.47 (lifetime 4) and 0.81-0.94 (lifetime 100).
    short, long = lag_5_correlation(4.0), lag_5_correlation(100.0)
    assert short < long - 0.3
    assert long > 0.7


def test_small_scales_live_shorter_than_large_ones():
    rain = synthetic_radar(8, 4, size=32, wet_fraction=0.5, seed=7, **{**FROZEN, "lifetime": 10.0})
    field = np.log1p(rain)
    large = ndimage.gaussian_filter(field, (0, 0, 4, 4), mode="wrap")  # scales of ~ 25 px and more
    small = field - ndimage.gaussian_filter(field, (0, 0, 1, 1), mode="wrap")  # of a few pixels
    kept_large = np.mean([_correlation(f[0], f[3]) for f in large])
    kept_small = np.mean([_correlation(f[0], f[3]) for f in small])
    # Measured over 3 frames, on 20 seeds: 0.74-0.91 (large) and 0.33-0.47 (small), 0.32 apart at least;
    # with one lifetime for every scale, 0.11 apart at most (the filters alone do not separate them).
    assert kept_small < kept_large - 0.25


def test_moving_rain_keeps_its_fine_scales():
    # Bilinear interpolation at every frame would smooth a moving field: its share of power beyond 4
    # cycles a frame measured 0.15 standing still, 0.02 after 20 steps of 1.7 px without giving the lost
    # power back. The generator gives it back: the ratios below measured 0.68-1.4 on 20 seeds (32
    # sequences sample the fine scales' share loosely), 0.13-0.35 without it (2 seeds).
    def roughness(rain):
        return _high_wavenumber_fraction(np.log10(np.maximum(rain, 0.1)))

    still = synthetic_radar(32, 1, size=32, wet_fraction=0.5, seed=1, **FROZEN)
    moving = synthetic_radar(32, 16, size=32, wet_fraction=0.5, seed=1, **{**FROZEN, "speed": (1.7, 1.7)})
    assert 0.5 < roughness(moving[:, -1]) / roughness(still[:, 0]) < 2.0
    assert 0.5 < roughness(moving[:, -1]) / roughness(moving[:, 0]) < 2.0


def test_a_larger_spectral_slope_gives_a_smoother_field():
    def roughness(slope):
        rain = synthetic_radar(8, 1, size=32, spectral_slope=slope, seed=9)
        return _high_wavenumber_fraction(np.log10(np.maximum(rain[:, 0], 0.1))), _high_wavenumber_fraction(
            (rain[:, 0] > 0).astype(np.float64)
        )

    # Measured: beyond 4 cycles a frame, 56% (slope 2) and 3% (slope 4) of the log-rain's power, and
    # 62% and 18% of the wet/dry mask's.
    (rough_rain, rough_mask), (smooth_rain, smooth_mask) = roughness(2.0), roughness(4.0)
    assert smooth_rain < rough_rain - 0.3
    assert smooth_mask < rough_mask - 0.2


def test_rotation_moves_the_rain_the_more_the_larger_it_is():
    def lag_8_correlations(rotation):
        rain = synthetic_radar(4, 9, size=32, wet_fraction=0.5, seed=12, **{**FROZEN, "rotation": rotation})
        return np.array([_correlation(np.log1p(r[0]), np.log1p(r[8])) for r in rain])

    # Each sequence draws its angular speed as the same fraction of `rotation`: measured 0.95-1.00
    # (0.02) and 0.58-0.96 (0.1), each sequence lower with the faster vortex.
    still, slow, fast = lag_8_correlations(0.0), lag_8_correlations(0.02), lag_8_correlations(0.1)
    assert (still > 0.999).all()
    assert (fast < slow).all() and (slow < still).all()
    assert fast.mean() < slow.mean() - 0.1


def test_rotation_turns_the_field_about_the_frame_centre():
    rotation, frames, size = 0.08, 10, 48
    rain = synthetic_radar(8, frames + 1, size=size, wet_fraction=0.5, seed=6, **{**FROZEN, "rotation": rotation})
    field = np.log1p(rain)
    rows, columns = np.mgrid[:size, :size] - (size - 1) / 2
    # The vortex turns at its drawn angular speed at the centre, slower away from it (its streamfunction
    # is periodic): within a quarter of the side it is nearly a solid rotation (90% of it at the edge).
    disc = np.hypot(rows, columns) < size / 4
    # The angular speed is drawn in +-rotation: search the angle the frames turned by, half as far again.
    angles = np.linspace(-1.5 * rotation * frames, 1.5 * rotation * frames, 61)
    fits, turned = [], []
    for first, last in zip(field[:, 0], field[:, -1]):
        if (first[disc] > 0).mean() < 0.1:  # (nearly) dry about the centre: nothing to see turn
            continue
        correlations = [
            _correlation(ndimage.rotate(first, np.degrees(a), reshape=False, order=1)[disc], last[disc]) for a in angles
        ]
        best = int(np.argmax(correlations))
        assert abs(angles[best]) <= rotation * frames + 0.05, angles[best]  # up to `rotation` radians a frame
        fits.append(correlations[best])
        turned.append((abs(angles[best]), correlations[best] - _correlation(first[disc], last[disc])))
    assert len(fits) >= 3
    # Turned back by its angle, the last frame is the first, but for the blur of ten bilinear steps and of
    # the rotation here: on 20 seeds the mean correlation measured 0.935-0.98 (0.79 at worst for one
    # sequence); a strain instead of a vortex (du/dx = -dv/dy, no vorticity) fits no rotation: 0.87 at best.
    assert np.mean(fits) > 0.9, fits
    # And some turned far (0.4 rad and more measured), so that the rotation is seen, not only allowed.
    assert max(angle for angle, gain in turned if gain > 0.05) >= 0.25, turned


def test_synthetic_radar_is_the_same_made_by_several_threads():
    one = synthetic_radar(37, 4, size=16, seed=2)  # three chunks of 16, the last one short
    np.testing.assert_array_equal(synthetic_radar(37, 4, size=16, seed=2, workers=3), one)
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        synthetic_radar(2, 4, size=16, workers=0)


def test_negative_rain_rates_are_refused():
    with pytest.raises(ValueError, match=r"rain rates must be >= 0 mm/h, got -1\.0 \(of shape \(3,\)\)"):
        rain_to_dbz(np.array([0.5, -1.0, 2.0]))
    with pytest.raises(ValueError, match="rain rates must be >= 0 mm/h"):
        rain_to_pixels([[-0.1]])
    assert np.isnan(rain_to_dbz(np.array([np.nan]))).all()
