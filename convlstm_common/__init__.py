"""Hyperparameters shared by `convlstm_torch` and `convlstm_jax`.

Pure Python, no framework: both packages declare their options here (`convlstm_common.options`)
and resolve and check their constructor arguments here, so a configuration means the same thing,
and fails with the same message, in either framework.
"""

from ._hparams import PEEPHOLES as PEEPHOLES
from ._hparams import SPATIAL_DIMS as SPATIAL_DIMS
from ._hparams import LayerSpec as LayerSpec
from ._hparams import NetworkSpec as NetworkSpec
from ._hparams import check_frame as check_frame
from ._hparams import check_int as check_int
from ._hparams import check_peephole as check_peephole
from ._hparams import check_rate as check_rate
from ._hparams import check_spatial_dims as check_spatial_dims
from ._hparams import parse_network as parse_network
from ._hparams import resolve_cell as resolve_cell
from ._hparams import resolve_encoder_forecaster as resolve_encoder_forecaster
from ._hparams import resolve_kernel as resolve_kernel
from ._hparams import resolve_layers as resolve_layers
from ._hparams import spatial_axes as spatial_axes
from .options import CellOptions as CellOptions
from .options import StackOptions as StackOptions

__all__ = [
    "PEEPHOLES",
    "SPATIAL_DIMS",
    "CellOptions",
    "LayerSpec",
    "NetworkSpec",
    "StackOptions",
    "check_frame",
    "check_int",
    "check_peephole",
    "check_rate",
    "check_spatial_dims",
    "parse_network",
    "resolve_cell",
    "resolve_encoder_forecaster",
    "resolve_kernel",
    "resolve_layers",
    "spatial_axes",
]
