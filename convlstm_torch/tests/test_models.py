import pytest
import torch

from convlstm_torch.models import EncoderForecaster


def test_shapes_and_keys():
    model = EncoderForecaster.from_spec("ConvLSTM(5x5)-3x3-8-1x1-4", in_channels=2, output_frames=3)
    assert tuple(model(torch.zeros(2, 4, 2, 8, 12)).shape) == (2, 3, 2, 8, 12)
    keys = set(model.state_dict())
    assert {"output.weight", "output.bias", "forecaster.cell_list.0.conv_h.bias"} <= keys
    assert not any(k.startswith("forecaster.cell_list.0.conv_x") for k in keys)  # the forecaster has no input
    assert model.output.weight.shape == (32, 12, 1, 1)


def test_the_forecaster_starts_from_the_encoders_states():
    torch.manual_seed(0)
    model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4", patch_size=2, output_frames=2)
    frames = torch.rand(1, 3, 1, 4, 4)
    patches = torch.nn.functional.pixel_unshuffle(frames[0], 2)[None]
    _, states = model.encoder(patches)
    outputs, _ = model.forecaster(torch.zeros(1, 2, 0, 2, 2), states)
    expected = torch.nn.functional.pixel_shuffle(model.output(outputs[0][0]), 2)[None]
    torch.testing.assert_close(model(frames), expected)


def test_bad_frames_are_explained():
    model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4")
    with pytest.raises(ValueError, match=r"frames of 16x18 do not cut into 4x4 patches"):
        model(torch.zeros(1, 2, 1, 16, 18))
    with pytest.raises(ValueError, match=r"frames must have shape \(B, T, 1, H, W\)"):
        model(torch.zeros(1, 2, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 2, 1, 16, 16, dtype=torch.int64))
