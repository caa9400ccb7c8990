"""Synthetic radar echoes for Shi et al. 2015's second experiment (Section 4.2), made offline.

`synthetic_radar` makes sequences of rain rates in mm/h, moved by winds that turn and rotate,
growing and decaying; `convlstm_jax.nowcasting.rain_to_pixels` turns them into HKO-7's frames.
Only NumPy is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convlstm_common import check_int as _check_int


def _check_real(name: str, value: Any, low: float, high: float = math.inf) -> float:
    """Returns `value` as a float; TypeError unless it is a real number, ValueError unless finite and in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not low <= value <= high:
        bounds = f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return float(value)


def _wavenumbers(domain: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angular wavenumbers (ky, kx) of the real FFT (`np.fft.rfft2`) of a periodic domain of `domain`
    pixels, and |k| in cycles per domain."""
    ky = 2 * np.pi * np.fft.fftfreq(domain)[:, np.newaxis]
    kx = 2 * np.pi * np.fft.rfftfreq(domain)[np.newaxis, :]
    return ky, kx, np.hypot(ky, kx) * domain / (2 * np.pi)


def _power_law_noise(rngs: list[np.random.Generator], amplitude: np.ndarray) -> np.ndarray:
    """Real FFTs (B, D, D // 2 + 1) of zero-mean, unit-variance Gaussian fields of spectrum amplitude^2,
    one from each generator."""
    domain = amplitude.shape[0]
    white = np.stack([rng.standard_normal((domain, domain), dtype=np.float32) for rng in rngs])
    return np.fft.rfft2(white) * amplitude


def _smooth_noise(rngs: list[np.random.Generator], amplitude: np.ndarray, reach: int = 16) -> np.ndarray:
    """Real FFTs (B, D, D // 2 + 1) of zero-mean Gaussian fields of spectrum amplitude^2 up to `reach` cycles
    per domain (for a smooth spectrum, with next to no power beyond it), one from each generator: as
    `_power_law_noise`, but drawn in Fourier space directly, a fraction of the cost."""
    domain = amplitude.shape[0]
    reach = min(reach, domain // 2 - 1)
    rows = np.r_[0 : reach + 1, domain - reach : domain]
    parts = np.stack([rng.standard_normal((2, len(rows), reach + 1), dtype=np.float32) for rng in rngs])
    # The FFT of unit white noise has E|X|^2 = domain^2 per coefficient; irfft2 keeps only the real part
    # of the column of kx = 0 (whose coefficients would pair up in a real field's FFT): sqrt(2) more there.
    block = (parts[:, 0] + 1j * parts[:, 1]) * np.float32(domain / math.sqrt(2))
    block[:, :, 0] *= np.float32(math.sqrt(2))
    out = np.zeros((len(rngs), domain, amplitude.shape[1]), np.complex64)
    out[:, rows, : reach + 1] = block * amplitude[rows, : reach + 1]
    return out


def _advect(fields: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Fields (B, C, D, D) sampled at the points (rows, columns) (B, D, D), bilinearly, on a periodic domain."""
    batch, channels, domain, _ = fields.shape
    flat = fields.reshape(batch, channels, domain * domain)
    r0, c0 = np.floor(rows), np.floor(columns)
    wr = (rows - r0).reshape(batch, 1, -1).astype(fields.dtype)
    wc = (columns - c0).reshape(batch, 1, -1).astype(fields.dtype)
    r0, c0 = r0.astype(np.intp) % domain, c0.astype(np.intp) % domain
    r1, c1 = (r0 + 1) % domain, (c0 + 1) % domain

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.take_along_axis(flat, (r * domain + c).reshape(batch, 1, -1), axis=2)

    top = at(r0, c0) * (1 - wc) + at(r0, c1) * wc
    bottom = at(r1, c0) * (1 - wc) + at(r1, c1) * wc
    return (top * (1 - wr) + bottom * wr).reshape(fields.shape)


# Frames the generator runs before the first one it returns, so that the sequences start in the statistical
# steady state of advection (whose interpolation smooths the finest scales) and renewal.
SPIN_UP = 6


def synthetic_radar(
    num_sequences: int,
    num_frames: int = 20,
    *,
    size: int = 64,
    speed: tuple[float, float] = (1.0, 3.0),
    rotation: float = 0.02,
    turning: float = 0.02,
    wind_variability: float = 0.3,
    growth: float = 0.05,
    growth_lifetime: float = 10.0,
    lifetime: float = 40.0,
    wet_fraction: float = 0.35,
    spectral_slope: float = 3.0,
    seed: int = 0,
    workers: int = 1,
) -> np.ndarray:
    """Sequences of synthetic radar rain fields in mm/h, moved by winds, growing and decaying.

    The physics, frame to frame (every `RADAR_INTERVAL_MINUTES`):

    - Rain is a threshold of a Gaussian field z with a power-law spectrum, |k|^-spectral_slope in
      2-D, as radar rain fields have (Seed 2003, pysteps' STEPS): where z exceeds its (1 -
      wet_fraction) quantile it rains, R = 0.1 mm/h * 10^(z - quantile) (10 dB per standard
      deviation: cores of 10-50 mm/h), elsewhere it is dry (intermittency).
    - The wind at each point is a mean wind of `speed` pixels a frame (uniform in the range, in a
      uniform direction) that turns at up to `turning` radians a frame, plus a divergence-free
      field: a vortex turning at up to `rotation` radians a frame at the frame's centre, and a
      smooth random flow of `wind_variability` times the mean speed. Rain moves with it,
      semi-Lagrangian (the value at a point comes from where the wind brought it from, bilinearly);
      the power the interpolation takes from the finest scales is given back to each ring of
      wavenumbers every frame, so the spectrum stays the power law.
    - Each scale evolves while it moves, in the wind's frame, by a second-order process (its
      change is itself an AR(1) field, as pysteps' STEPS uses AR(2)): the memory of a scale of L
      pixels is exp(-size / (lifetime L)) a frame, so small cells live shortly and large
      systems long (measured at lifetime 8 and size 32: patterns of 32, 16 and 8 pixels last
      about 10, 6 and 4 frames).
    - Rain grows and decays, which no extrapolation of motion can see: a smooth growth field g
      (standard deviation 1), moving with the rain, adds `growth` g a frame to a growth term h,
      h <- a h + `growth` g with a = exp(-1 / `growth_lifetime`), so rain grows where g > 0 and
      decays where g < 0 (10 `growth` dB a frame where g is one standard deviation, before the
      scaling below), and what it has grown fades over `growth_lifetime` frames. g is itself an
      AR(1) field of the same memory a, renewed while it moves, so that growth cells come and go
      over `growth_lifetime` frames too. Both are stationary processes, started in their steady
      state (h's standard deviation is s = `growth` sqrt(1 + a^2) / (1 - a^2)), and the rain
      thresholds (z + h) / sqrt(1 + s^2): the wet area keeps `wet_fraction` and the intensities
      10 dB per standard deviation at every frame. Nothing drifts along a sequence: any frame's
      statistics are those of any other, as in a long record cut at random times.

    The sequences start after `SPIN_UP` frames of this evolution. The fields are made on a periodic
    domain twice the frame's side and cut from its centre, so rain enters and leaves through the
    edges. With 2 km pixels, the default speeds of 1-3 pixels a frame
    are 20-60 km/h. Easier for optical flow: `turning=rotation=wind_variability=growth=0` and a long
    `lifetime` (pure translation of a frozen pattern); harder: the opposite.

    Args:
      num_sequences: N, how many sequences.
      num_frames: T, frames per sequence.
      size: the side of the square frames, in pixels.
      speed: (low, high), the range of the mean wind's speed, in pixels a frame.
      rotation: the largest angular speed of the vortex, in radians a frame (drawn in +-rotation).
      turning: the largest rate at which the mean wind turns, in radians a frame (drawn in +-turning).
      wind_variability: the smooth random flow's typical speed, as a fraction of the mean speed.
      growth: the growth field's rate, in standard deviations of z a frame.
      growth_lifetime: frames over which growth and decay fade and the growth field renews itself.
      lifetime: frames over which the largest scale (the frame's side) decorrelates.
      wet_fraction: the fraction of the area with rain, in (0, 1).
      spectral_slope: the 2-D power spectrum's exponent (the field's roughness: larger is smoother).
      seed: seeds the sequences; sequence n depends on (seed, n) alone, so the first k of N
        sequences are those of k.
      workers: threads that make the sequences, 16 at a time; the result is the same for any
        number.

    Returns:
      Rain rates in mm/h, float32 (N, T, size, size); `rain_to_pixels` makes training frames of them.

    Raises:
      TypeError: if an argument is not of its type.
      ValueError: if an argument is out of its range.

    Examples:
      >>> from convlstm_jax.nowcasting import rain_to_pixels, synthetic_radar
      >>> rain = synthetic_radar(2, 6, size=32, seed=1)
      >>> rain.shape, rain.dtype
      ((2, 6, 32, 32), dtype('float32'))
      >>> bool((rain == synthetic_radar(3, 6, size=32, seed=1)[:2]).all())
      True
      >>> rain_to_pixels(rain)[..., None].shape  # uint8 frames (N, T, H, W, 1), as training takes them
      (2, 6, 32, 32, 1)
    """
    num_sequences = _check_int("num_sequences", num_sequences, 1)
    num_frames = _check_int("num_frames", num_frames, 1)
    size = _check_int("size", size, 2)
    seed = _check_int("seed", seed, 0)
    workers = _check_int("workers", workers, 1)
    if not isinstance(speed, (tuple, list)) or len(speed) != 2:
        raise TypeError(f"speed must be a (low, high) pair of pixels a frame, got {speed!r}.")
    low = _check_real("speed[0]", speed[0], 0.0)
    high = _check_real("speed[1]", speed[1], low)
    rotation = _check_real("rotation", rotation, 0.0)
    turning = _check_real("turning", turning, 0.0)
    wind_variability = _check_real("wind_variability", wind_variability, 0.0)
    growth = _check_real("growth", growth, 0.0)
    growth_lifetime = _check_real("growth_lifetime", growth_lifetime, 0.0)
    if growth_lifetime == 0:
        raise ValueError("growth_lifetime must be positive, got 0.")
    lifetime = _check_real("lifetime", lifetime, 0.0)
    if lifetime == 0:
        raise ValueError("lifetime must be positive, got 0.")
    wet_fraction = _check_real("wet_fraction", wet_fraction, 0.0, 1.0)
    if wet_fraction in (0.0, 1.0):
        raise ValueError(f"wet_fraction must be strictly between 0 and 1, got {wet_fraction}.")
    spectral_slope = _check_real("spectral_slope", spectral_slope, 0.0)

    knobs = dict(
        num_frames=num_frames,
        size=size,
        speed=(low, high),
        rotation=rotation,
        turning=turning,
        wind_variability=wind_variability,
        growth=growth,
        growth_lifetime=growth_lifetime,
        lifetime=lifetime,
        wet_fraction=wet_fraction,
        spectral_slope=spectral_slope,
        seed=seed,
    )
    starts = list(range(0, num_sequences, _RADAR_CHUNK))
    counts = [min(_RADAR_CHUNK, num_sequences - start) for start in starts]
    if workers == 1 or len(starts) == 1:
        return np.concatenate([_radar_chunk(knobs, start, count) for start, count in zip(starts, counts)])
    import concurrent.futures

    # Threads: NumPy's FFTs and array arithmetic release the GIL.
    with concurrent.futures.ThreadPoolExecutor(min(workers, len(starts))) as pool:
        return np.concatenate(list(pool.map(_radar_chunk, [knobs] * len(starts), starts, counts)))


# Sequences made together, as one batch of arrays (and one task of a worker).
_RADAR_CHUNK = 16


def _radar_chunk(knobs: dict[str, Any], first: int, count: int) -> np.ndarray:
    """Sequences first, ..., first + count - 1 of `synthetic_radar` with the checked `knobs`."""
    from statistics import NormalDist

    num_frames, size, seed = knobs["num_frames"], knobs["size"], knobs["seed"]
    (low, high), rotation, turning = knobs["speed"], knobs["rotation"], knobs["turning"]
    wind_variability, growth, lifetime = knobs["wind_variability"], knobs["growth"], knobs["lifetime"]
    wet_fraction, spectral_slope = knobs["wet_fraction"], knobs["spectral_slope"]
    # Growth and decay: h <- a h + growth g, g <- a g + sqrt(1 - a^2) (new smooth field), both stationary.
    growth_memory = math.exp(-1 / knobs["growth_lifetime"])
    growth_spread = growth * math.sqrt(1 + growth_memory**2) / (1 - growth_memory**2)  # h's standard deviation
    growth_scale = np.float32(1 / math.sqrt(1 + growth_spread**2))  # (z + h) back to unit standard deviation
    domain = 2 * size
    ky, kx, cycles = _wavenumbers(domain)
    scale = np.maximum(cycles, 1.0)  # the mean (k = 0) is set apart below

    def amplitude(slope: float) -> np.ndarray:
        a = scale ** (-slope / 2)
        a[0, 0] = 0.0
        full = np.concatenate([a, a[:, 1 : domain - a.shape[1] + 1]], axis=1)  # the other half of the spectrum
        return (a / np.sqrt((full**2).sum() / domain**2)).astype(np.float32)  # unit variance in real space

    rain_amplitude, smooth_amplitude = amplitude(spectral_slope), amplitude(spectral_slope + 4)
    # AR(1) per scale: a wave of `cycles` per domain (2 per frame side) keeps its pattern ~ lifetime * 2 / cycles.
    memory = np.exp(-scale / (2 * lifetime)).astype(np.float32)
    renewal = np.sqrt(1 - memory**2)
    threshold = NormalDist().inv_cdf(1 - wet_fraction)
    # Rings of whole wavenumbers (cycles per domain) and the power a unit-variance field of the spectrum
    # rain_amplitude^2 has in each: the real FFT of unit white noise has E|X|^2 = domain^2 per coefficient.
    rings = np.rint(cycles).astype(np.intp)
    ring_count = int(rings.max()) + 1
    ring_power = np.bincount(rings.ravel(), (domain**2 * rain_amplitude.astype(np.float64) ** 2).ravel(), ring_count)
    ring_offsets = np.arange(count)[:, np.newaxis, np.newaxis] * ring_count
    grid = np.arange(domain, dtype=np.float32)
    rows, columns = np.meshgrid(grid, grid, indexing="ij")
    centre = domain / 2 - 0.5
    # A vortex of angular speed 1 at the centre, periodic: streamfunction cos(k y) cos(k x) / k^2.
    k1 = 2 * np.pi / domain
    # u = d(psi)/dy along the columns, v = -d(psi)/dx down the rows: near the centre u = -dy, v = dx.
    y, x = k1 * (rows - centre + domain / 2), k1 * (columns - centre + domain / 2)
    vortex_u = (-np.sin(y) * np.cos(x) / k1).astype(np.float32)
    vortex_v = (np.cos(y) * np.sin(x) / k1).astype(np.float32)

    crop = slice(size // 2, size // 2 + size)
    out = np.empty((count, num_frames, size, size), np.float32)
    rngs = [np.random.default_rng([seed, n]) for n in range(first, first + count)]
    draws = np.array(
        [
            [
                rng.uniform(low, high),
                rng.uniform(0, 2 * np.pi),
                rng.uniform(-turning, turning),
                rng.uniform(-rotation, rotation),
            ]
            for rng in rngs
        ]
    )
    mean_speed, direction, turn, spin = (draws[:, i, np.newaxis, np.newaxis].astype(np.float32) for i in range(4))
    # A smooth divergence-free flow of typical speed 1, from a random streamfunction.
    stream = _power_law_noise(rngs, smooth_amplitude)
    flow_v = np.fft.irfft2(1j * kx * stream, s=(domain, domain))  # down the rows: d(psi)/dx
    flow_u = np.fft.irfft2(-1j * ky * stream, s=(domain, domain))  # along the columns: -d(psi)/dy
    typical = np.sqrt(np.mean(flow_u**2 + flow_v**2, axis=(1, 2), keepdims=True))
    flow_v, flow_u = flow_v / typical, flow_u / typical
    z = np.fft.irfft2(_power_law_noise(rngs, rain_amplitude), s=(domain, domain))
    z = (z - z.mean(axis=(1, 2), keepdims=True)) / z.std(axis=(1, 2), keepdims=True)
    g = np.fft.irfft2(_power_law_noise(rngs, smooth_amplitude), s=(domain, domain))
    # Growth draws from generators of its own, so that the rest of a sequence is the same at any growth.
    growth_rngs = [np.random.default_rng([seed, n, 1]) for n in range(first, first + count)]
    if growth > 0:
        # h in its steady state given g: E[h | g] = growth g / (1 - a^2), and the rest, growth a / (1 - a^2)
        # times a field of g's spectrum independent of g, makes up h's variance growth^2 (1 + a^2) / (1 - a^2)^2.
        rest = np.fft.irfft2(_smooth_noise(growth_rngs, smooth_amplitude), s=(domain, domain))
        h = growth / (1 - growth_memory**2) * (g + growth_memory * rest)
    else:
        h = np.zeros_like(g)
    # The change of z, itself an AR(1) process of the same memory moving with the rain: z evolves
    # smoothly in time (second order, as the AR(2) of pysteps' STEPS) instead of jittering.
    change = np.fft.irfft2(_power_law_noise(rngs, rain_amplitude), s=(domain, domain))
    for t in range(-SPIN_UP, num_frames):
        if t > -SPIN_UP:
            heading = direction + turn * t
            v = mean_speed * (np.sin(heading) + wind_variability * flow_v) + spin * vortex_v
            u = mean_speed * (np.cos(heading) + wind_variability * flow_u) + spin * vortex_u
            # Growth, when there is any, moves with the rain too: z, its change, then g and h.
            moved = _advect(np.stack([z, change, g, h] if growth > 0 else [z, change], axis=1), rows - v, columns - u)
            if growth > 0:
                renewed = np.fft.irfft2(_smooth_noise(growth_rngs, smooth_amplitude), s=(domain, domain))
                g = growth_memory * moved[:, 2] + math.sqrt(1 - growth_memory**2) * renewed
                h = growth_memory * moved[:, 3] + growth * g
            change_spectrum = memory * np.fft.rfft2(moved[:, 1]) + renewal * _power_law_noise(rngs, rain_amplitude)
            change = np.fft.irfft2(change_spectrum, s=(domain, domain))
            mixed = memory * np.fft.rfft2(moved[:, 0]) + renewal * change_spectrum
            # Interpolation damps the finest scales a little at every frame: each ring of wavenumbers
            # gets its power back, so the spectrum stays the power law frame after frame.
            power = np.bincount(
                (ring_offsets + rings).ravel(),
                (np.abs(mixed) ** 2).ravel(),
                minlength=len(rngs) * ring_count,
            ).reshape(len(rngs), ring_count)
            gain = np.sqrt(ring_power / np.maximum(power, 1e-30))
            mixed = mixed * gain[np.arange(len(rngs))[:, np.newaxis, np.newaxis], rings].astype(np.float32)
            z = np.fft.irfft2(mixed, s=(domain, domain))
            z = (z - z.mean(axis=(1, 2), keepdims=True)) / z.std(axis=(1, 2), keepdims=True)
        if t >= 0:
            # z + h scaled to the unit standard deviation of z, so that the wet area stays `wet_fraction`.
            rain_z = (z[:, crop, crop] + h[:, crop, crop]) * growth_scale - np.float32(threshold)
            out[:, t] = np.where(rain_z > 0, 0.1 * 10**rain_z, 0.0)
    return out


__all__ = [
    "SPIN_UP",
    "synthetic_radar",
]
