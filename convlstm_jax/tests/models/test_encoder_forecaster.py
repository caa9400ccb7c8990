import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch
import torch.nn.functional as F

from convlstm_jax.models import (
    EncoderForecaster,
    depth_to_space,
    flax_to_torch_encoder_forecaster,
    space_to_depth,
    torch_to_flax_encoder_forecaster,
)
from convlstm_torch.models import EncoderForecaster as TorchModel

KEY = jax.random.key(0)


def test_patches_are_torchs_pixel_unshuffle():
    frames = np.random.default_rng(0).standard_normal((2, 3, 8, 12, 2)).astype(np.float32)
    patches = space_to_depth(jnp.asarray(frames), 4)
    expected = F.pixel_unshuffle(torch.from_numpy(frames).permute(0, 1, 4, 2, 3).flatten(0, 1), 4)
    assert patches.shape == (2, 3, 2, 3, 32)
    np.testing.assert_array_equal(patches, expected.reshape(2, 3, 32, 2, 3).permute(0, 1, 3, 4, 2).numpy())
    np.testing.assert_array_equal(depth_to_space(patches, 4), frames)


def test_from_spec_reads_the_papers_notation():
    model = EncoderForecaster.from_spec("ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64")
    assert model.hidden_dim == (128, 64, 64) and model.kernel_size == ((5, 5),) * 3
    assert model.input_kernel_size == (5, 5)
    assert (model.in_channels, model.patch_size, model.output_frames, model.peephole) == (1, 4, 10, "hadamard")
    assert model.spec == "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64"


def test_the_forecaster_has_no_input_and_the_output_reads_every_layer():
    model = EncoderForecaster.from_spec("ConvLSTM(5x5)-3x3-8-1x1-4", in_channels=2, output_frames=3)
    frames = jnp.zeros((2, 4, 8, 12, 2))
    params = jax.eval_shape(model.init, KEY, frames)["params"]
    assert set(params) == {"encoder", "forecaster", "output"}
    assert "input_to_state" not in params["forecaster"]["cell_0"]
    assert params["forecaster"]["cell_1"]["input_to_state"]["kernel"].shape == (5, 5, 8, 16)
    assert params["encoder"]["cell_0"]["input_to_state"]["kernel"].shape == (5, 5, 32, 32)
    assert params["output"]["kernel"].shape == (1, 1, 8 + 4, 32)
    assert jax.eval_shape(model.apply, {"params": params}, frames).shape == (2, 3, 8, 12, 2)


def test_the_prediction_starts_from_the_encoders_states():
    model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4", patch_size=2, output_frames=2)
    frames = jax.random.uniform(KEY, (1, 3, 4, 4, 1))
    variables = model.init(KEY, frames)
    logits = model.apply(variables, frames)
    assert not np.allclose(logits, model.apply(variables, frames[:, ::-1]))  # the input matters


def test_conversion_round_trips_bit_exactly():
    torch.manual_seed(0)
    reference = TorchModel.from_spec("ConvLSTM(5x5)-3x3-6-1x1-4", in_channels=2, patch_size=2, peephole="conv")
    state_dict = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = EncoderForecaster.from_spec("ConvLSTM(5x5)-3x3-6-1x1-4", in_channels=2, patch_size=2, peephole="conv")
    variables = torch_to_flax_encoder_forecaster(state_dict, model)
    shapes = jax.eval_shape(model.init, KEY, jnp.zeros((1, 1, 4, 4, 2)))
    assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, shapes)
    back = flax_to_torch_encoder_forecaster(variables)
    assert back.keys() == state_dict.keys()
    assert all(np.array_equal(back[k], v) for k, v in state_dict.items())
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)


def test_a_state_dict_of_another_model_is_explained():
    torch.manual_seed(0)
    state_dict = TorchModel.from_spec("ConvLSTM(3x3)-3x3-6").state_dict()
    with pytest.raises(ValueError, match=r"(?s)does not match a ConvLSTM with 1 layer.*8.*shape"):
        torch_to_flax_encoder_forecaster(state_dict, EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-8"))
    del state_dict["output.bias"]
    with pytest.raises(ValueError, match=r"key 'output.bias' is missing"):
        torch_to_flax_encoder_forecaster(state_dict, EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-6"))


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (jnp.zeros((2, 3, 16, 16)), r"frames must have shape \(B, T, H, W, 1\), got \(2, 3, 16, 16\)"),
        (jnp.zeros((2, 3, 16, 16, 3)), r"frames must have shape \(B, T, H, W, 1\)"),
        (jnp.zeros((2, 3, 16, 18, 1)), r"frames of 16x18 do not cut into 4x4 patches"),
        (jnp.zeros((2, 0, 16, 16, 1)), r"frames must have shape"),
    ],
)
def test_bad_frames_are_explained(frames, match):
    model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4")
    with pytest.raises(ValueError, match=match):
        model.init(KEY, frames)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spec": "ConvLSTM(3x3)-3x3"}, ValueError, "notation of Shi et al. 2015"),
        ({"spec": "ConvLSTM(3x3)-3x3-4", "patch_size": 0}, ValueError, "patch_size must be a positive int, got 0"),
        ({"spec": "ConvLSTM(3x3)-3x3-4", "peephole": "paper"}, ValueError, "peephole must be one of"),
        ({"spec": "ConvLSTM(3x3)-3x3-4", "output_frames": 2.0}, ValueError, "output_frames must be a positive int"),
    ],
)
def test_bad_hyperparameters_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        EncoderForecaster.from_spec(**kwargs)
    with pytest.raises(error, match=match):
        TorchModel.from_spec(**kwargs)
