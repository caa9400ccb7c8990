"""Rain rate, radar reflectivity and HKO-7's pixels, each from the others.

Rain rate R in mm/h and reflectivity Z in dBZ by a Z-R relation Z = a R^b: by default that of Marshall
and Palmer (1948), pysteps' default (`ZR_A`, `ZR_B`), which every pixel inside this library is encoded
with; HKO-7's own (`HKO7_ZR_A`, `HKO7_ZR_B`) for the pixels of HKO-7's PNGs. Pixels as HKO-7 stores radar
frames, uint8 `255 (dBZ + 10) / 70` over `DBZ_RANGE` (or float32 pixels, where NaN marks a missing one).
NaN, missing data as in pysteps, stays NaN. Only NumPy is needed.
"""

from __future__ import annotations

import numpy as np

# The Z-R relation Z = a R^b of Marshall and Palmer (1948), pysteps' default: Z in mm^6 m^-3, R in mm/h.
ZR_A, ZR_B = 200.0, 1.6
# HKO-7's Z-R relation, Z = 58.53 R^1.56 (Shi et al. 2017, the HKO-7 benchmark's rainfall thresholds): the
# one its PNGs' pixels are read with.
HKO7_ZR_A, HKO7_ZR_B = 58.53, 1.56
# Pixels as HKO-7 stores radar frames: pixel = 255 (dBZ + 10) / 70, so 0..255 spans -10..60 dBZ.
DBZ_RANGE = (-10.0, 60.0)


def rain_to_dbz(rain: np.ndarray, a: float = ZR_A, b: float = ZR_B) -> np.ndarray:
    """Reflectivity in dBZ of a rain rate in mm/h, by Z = a R^b: 10 log10(a R^b); -inf where it is dry.

    Raises:
      ValueError: if a rate is negative (NaN stays NaN).

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import rain_to_dbz
      >>> np.round(rain_to_dbz(np.array([0.5, 1.0, 10.0])), 2)
      array([18.19, 23.01, 39.01])
    """
    rain = np.asarray(rain)
    rain = rain.astype(np.result_type(rain.dtype, np.float32))
    if (rain < 0).any():
        raise ValueError(f"rain rates must be >= 0 mm/h, got {rain[rain < 0].min()} (of shape {rain.shape}).")
    with np.errstate(divide="ignore"):
        return 10 * np.log10(a * rain**b)


def dbz_to_rain(dbz: np.ndarray, a: float = ZR_A, b: float = ZR_B) -> np.ndarray:
    """Rain rate in mm/h of a reflectivity in dBZ, by Z = a R^b: (10^(dBZ/10) / a)^(1/b).

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import dbz_to_rain
      >>> np.round(dbz_to_rain(np.array([23.0103, -np.inf])), 4)
      array([1., 0.])
    """
    dbz = np.asarray(dbz)
    dbz = dbz.astype(np.result_type(dbz.dtype, np.float32))
    return (10 ** (dbz / 10) / a) ** (1 / b)


def dbz_to_pixels(dbz: np.ndarray) -> np.ndarray:
    """uint8 pixels of reflectivities in dBZ, as HKO-7 stores them: 255 (dBZ + 10) / 70, rounded and
    clipped to 0..255 (-10 to 60 dBZ; a dry -inf is 0)."""
    low, high = DBZ_RANGE
    scaled = (np.asarray(dbz, np.float64) - low) * (255 / (high - low))
    return np.clip(np.rint(np.nan_to_num(scaled, neginf=0.0)), 0, 255).astype(np.uint8)


def pixels_to_dbz(pixels: np.ndarray) -> np.ndarray:
    """Reflectivities in dBZ of pixels 0..255 (uint8, or a float forecast of them): -10 + 70 p / 255."""
    low, high = DBZ_RANGE
    return (low + np.asarray(pixels, np.float32) * np.float32((high - low) / 255)).astype(np.float32)


def rain_to_pixels(rain: np.ndarray) -> np.ndarray:
    """uint8 pixels (HKO-7's encoding) of rain rates in mm/h: `dbz_to_pixels(rain_to_dbz(rain))`.

    Rates below 0.0086 mm/h (-10 dBZ) become 0, those above 205 mm/h (60 dBZ) 255.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting import pixels_to_rain, rain_to_pixels
      >>> pixels = rain_to_pixels(np.array([0.0, 0.5, 2.0, 10.0]))
      >>> pixels
      array([  0, 103, 138, 179], dtype=uint8)
      >>> np.round(pixels_to_rain(pixels), 2)  # a pixel is 0.27 dBZ: rates within 4 %
      array([ 0.  ,  0.51,  2.02, 10.18], dtype=float32)
    """
    return dbz_to_pixels(rain_to_dbz(rain))


def pixels_to_rain(pixels: np.ndarray, a: float = ZR_A, b: float = ZR_B) -> np.ndarray:
    """Rain rates in mm/h of pixels (HKO-7's encoding), float32, by Z = a R^b; pixel 0 (-10 dBZ and below)
    is dry, a NaN pixel (missing) NaN.

    A float forecast in [0, 255] maps the same way, continuously, with values of 0 and below dry. HKO-7's
    PNGs are read with HKO-7's relation: `pixels_to_rain(pixels, HKO7_ZR_A, HKO7_ZR_B)`.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting.units import HKO7_ZR_A, HKO7_ZR_B, pixels_to_rain
      >>> np.round(pixels_to_rain(np.array([0.0, 103.0, np.nan]), HKO7_ZR_A, HKO7_ZR_B), 2)
      array([0.  , 1.09,  nan], dtype=float32)
    """
    pixels = np.asarray(pixels, np.float32)
    rain = np.where(pixels > 0, dbz_to_rain(pixels_to_dbz(pixels), a, b), np.float32(0))
    return np.where(np.isnan(pixels), np.float32(np.nan), rain).astype(np.float32)


def rain_to_pixel_values(rain: np.ndarray, a: float = ZR_A, b: float = ZR_B) -> np.ndarray:
    """float32 pixels (HKO-7's encoding, not rounded) of rain rates in mm/h, by Z = a R^b: 255 (dBZ + 10) / 70
    clipped to [0, 255]; a missing (NaN) rate is a NaN pixel, which `pixels_to_rain` reads back as NaN.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.nowcasting.units import rain_to_pixel_values
      >>> np.round(rain_to_pixel_values(np.array([0.0, 1.0, np.nan, 1e4])), 2)
      array([  0.  , 120.25,    nan, 255.  ], dtype=float32)
    """
    low, high = DBZ_RANGE
    scaled = (rain_to_dbz(rain, a, b).astype(np.float64) - low) * (255 / (high - low))
    return np.clip(np.nan_to_num(scaled, nan=np.nan, neginf=0.0), 0, 255).astype(np.float32)


__all__ = [
    "DBZ_RANGE",
    "HKO7_ZR_A",
    "HKO7_ZR_B",
    "ZR_A",
    "ZR_B",
    "dbz_to_pixels",
    "dbz_to_rain",
    "pixels_to_dbz",
    "pixels_to_rain",
    "rain_to_dbz",
    "rain_to_pixel_values",
    "rain_to_pixels",
]
