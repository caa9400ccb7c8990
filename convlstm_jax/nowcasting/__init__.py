"""Precipitation nowcasting, the application of Shi et al. 2015 (Section 4.2), one module per stage:

- `units`: rain rate, reflectivity and HKO-7's pixels, each from the others (`rain_to_dbz`,
  `rain_to_pixels`, ..., the Z-R relation's `ZR_A` and `ZR_B`, `DBZ_RANGE`);
- `synthetic`: `synthetic_radar`, radar echoes made offline;
- `readers`: radar PNGs in HKO-7's layout (`load_radar_pngs`, `save_radar_pngs`, `radar_png_times`),
  and as rain rates by HKO-7's Z-R (`HKO7_ZR_A`, `HKO7_ZR_B`) with its masks (`load_hko7_rain`,
  `read_hko7_mask`);
- `sources`: radar archives in pysteps' layout read through `pysteps.io` (`RadarSource`,
  `load_source`, which returns `RadarSequences`, and `archive_times`, `archive_runs`);
- `baselines`: pysteps' `persistence`, `optical_flow`, `sprog`, `anvil` and `steps` (an ensemble),
  and `baselines` by name;
- `ensemble`: an ensemble's CRPS, rank histogram and reliability per lead time
  (`EnsembleVerification`, `verify_ensemble`);
- `verification`: pysteps' scores per lead time (`Verification`, `verify`, `score_by_lead_time`)
  and `skill_table`;
- `losses`: `balanced_loss`, HKO-7's loss for radar frames;
- `plots`: `plot_skill` and `plot_radar_forecasts`.

This package's names are those of its modules. pysteps and OpenCV are the `nowcast` extra
(`pip install "convlstm-jax[nowcast]"`): importing the package needs neither. Training on radar is
`convlstm-train --data radar` or `--data pysteps:NAME` (`convlstm_jax.training`).
"""

from .baselines import ALL_BASELINES as ALL_BASELINES
from .baselines import ANVIL_WINDOW_RADIUS as ANVIL_WINDOW_RADIUS
from .baselines import AR_ORDER as AR_ORDER
from .baselines import BASELINES as BASELINES
from .baselines import CASCADE_LEVELS as CASCADE_LEVELS
from .baselines import DB_THRESHOLD as DB_THRESHOLD
from .baselines import DB_ZERO_VALUE as DB_ZERO_VALUE
from .baselines import DEFAULT_TIMESTEP as DEFAULT_TIMESTEP
from .baselines import ENSEMBLE_BASELINES as ENSEMBLE_BASELINES
from .baselines import ENSEMBLE_MEMBERS as ENSEMBLE_MEMBERS
from .baselines import INSTALL as INSTALL
from .baselines import KM_PER_PIXEL as KM_PER_PIXEL
from .baselines import MOTION_METHODS as MOTION_METHODS
from .baselines import anvil as anvil
from .baselines import baselines as baselines
from .baselines import optical_flow as optical_flow
from .baselines import persistence as persistence
from .baselines import sprog as sprog
from .baselines import steps as steps
from .ensemble import RELIABILITY_BINS as RELIABILITY_BINS
from .ensemble import RELIABILITY_MIN_COUNT as RELIABILITY_MIN_COUNT
from .ensemble import EnsembleVerification as EnsembleVerification
from .ensemble import verify_ensemble as verify_ensemble
from .losses import BALANCED_THRESHOLDS_MM_H as BALANCED_THRESHOLDS_MM_H
from .losses import BALANCED_WEIGHTS as BALANCED_WEIGHTS
from .losses import balanced_loss as balanced_loss
from .plots import plot_radar_forecasts as plot_radar_forecasts
from .plots import plot_skill as plot_skill
from .readers import HKO7_FILENAME_FORMAT as HKO7_FILENAME_FORMAT
from .readers import RADAR_INTERVAL_MINUTES as RADAR_INTERVAL_MINUTES
from .readers import load_hko7_rain as load_hko7_rain
from .readers import load_radar_pngs as load_radar_pngs
from .readers import radar_png_times as radar_png_times
from .readers import read_hko7_mask as read_hko7_mask
from .readers import save_radar_pngs as save_radar_pngs
from .sources import GRIDS as GRIDS
from .sources import SOURCE_KEYS as SOURCE_KEYS
from .sources import RadarSequences as RadarSequences
from .sources import RadarSource as RadarSource
from .sources import archive_runs as archive_runs
from .sources import archive_times as archive_times
from .sources import block_mean as block_mean
from .sources import load_source as load_source
from .synthetic import SPIN_UP as SPIN_UP
from .synthetic import synthetic_radar as synthetic_radar
from .units import DBZ_RANGE as DBZ_RANGE
from .units import HKO7_ZR_A as HKO7_ZR_A
from .units import HKO7_ZR_B as HKO7_ZR_B
from .units import ZR_A as ZR_A
from .units import ZR_B as ZR_B
from .units import dbz_to_pixels as dbz_to_pixels
from .units import dbz_to_rain as dbz_to_rain
from .units import pixels_to_dbz as pixels_to_dbz
from .units import pixels_to_rain as pixels_to_rain
from .units import rain_to_dbz as rain_to_dbz
from .units import rain_to_pixel_values as rain_to_pixel_values
from .units import rain_to_pixels as rain_to_pixels
from .verification import FSS_SCALES as FSS_SCALES
from .verification import REGIONS as REGIONS
from .verification import SCORES as SCORES
from .verification import THRESHOLDS as THRESHOLDS
from .verification import Verification as Verification
from .verification import bootstrap_differences as bootstrap_differences
from .verification import reachable as reachable
from .verification import score_by_lead_time as score_by_lead_time
from .verification import skill_table as skill_table
from .verification import threshold_key as threshold_key
from .verification import verify as verify

__all__ = [
    "ALL_BASELINES",
    "ANVIL_WINDOW_RADIUS",
    "AR_ORDER",
    "BALANCED_THRESHOLDS_MM_H",
    "BALANCED_WEIGHTS",
    "BASELINES",
    "CASCADE_LEVELS",
    "DBZ_RANGE",
    "DB_THRESHOLD",
    "DB_ZERO_VALUE",
    "DEFAULT_TIMESTEP",
    "ENSEMBLE_BASELINES",
    "ENSEMBLE_MEMBERS",
    "FSS_SCALES",
    "GRIDS",
    "HKO7_FILENAME_FORMAT",
    "HKO7_ZR_A",
    "HKO7_ZR_B",
    "INSTALL",
    "KM_PER_PIXEL",
    "MOTION_METHODS",
    "RADAR_INTERVAL_MINUTES",
    "REGIONS",
    "RELIABILITY_BINS",
    "RELIABILITY_MIN_COUNT",
    "SCORES",
    "SOURCE_KEYS",
    "SPIN_UP",
    "THRESHOLDS",
    "ZR_A",
    "ZR_B",
    "EnsembleVerification",
    "RadarSequences",
    "RadarSource",
    "Verification",
    "anvil",
    "archive_runs",
    "archive_times",
    "balanced_loss",
    "baselines",
    "block_mean",
    "bootstrap_differences",
    "dbz_to_pixels",
    "dbz_to_rain",
    "load_hko7_rain",
    "load_radar_pngs",
    "load_source",
    "optical_flow",
    "persistence",
    "pixels_to_dbz",
    "pixels_to_rain",
    "plot_radar_forecasts",
    "plot_skill",
    "radar_png_times",
    "rain_to_dbz",
    "rain_to_pixel_values",
    "rain_to_pixels",
    "reachable",
    "read_hko7_mask",
    "save_radar_pngs",
    "score_by_lead_time",
    "skill_table",
    "sprog",
    "steps",
    "synthetic_radar",
    "threshold_key",
    "verify",
    "verify_ensemble",
]
