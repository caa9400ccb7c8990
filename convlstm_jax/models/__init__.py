"""Models built from ConvLSTM stacks: the paper's encoder-forecaster (`EncoderForecaster`, Shi et
al. 2015, Sec. 3.2) and OpenSTL's frame model (`FramePredictor`), with the patches both cut frames
into."""

from .encoder_forecaster import EncoderForecaster as EncoderForecaster
from .encoder_forecaster import flax_to_torch_encoder_forecaster as flax_to_torch_encoder_forecaster
from .encoder_forecaster import torch_to_flax_encoder_forecaster as torch_to_flax_encoder_forecaster
from .frame_predictor import FramePredictor as FramePredictor
from .patches import depth_to_space as depth_to_space
from .patches import openstl_patch_order as openstl_patch_order
from .patches import openstl_patches as openstl_patches
from .patches import openstl_unpatch as openstl_unpatch
from .patches import space_to_depth as space_to_depth

__all__ = [
    "EncoderForecaster",
    "FramePredictor",
    "depth_to_space",
    "flax_to_torch_encoder_forecaster",
    "openstl_patch_order",
    "openstl_patches",
    "openstl_unpatch",
    "space_to_depth",
    "torch_to_flax_encoder_forecaster",
]
