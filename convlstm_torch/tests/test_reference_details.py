"""Details of the reference the shared vectors do not reach: each direction's own initial state,
the layouts and lengths of the stack, and its cell taken apart (`python -m tools.mutation` found
each one unguarded)."""

import pytest
import torch

from convlstm_torch import Bidirectional, ConvLSTM, ConvLSTMCell
from convlstm_torch.models import EncoderForecaster

X = torch.randn(2, 4, 2, 5, 6, generator=torch.Generator().manual_seed(0))


def _states(seed, hidden=(3, 4), frame=(5, 6)):
    generator = torch.Generator().manual_seed(seed)
    return [tuple(torch.randn(2, h, *frame, generator=generator) for _ in "hc") for h in hidden]


def _flat(states):
    return [tensor for pair in states for tensor in pair]


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_each_direction_starts_from_its_own_initial_state(merge):
    torch.manual_seed(0)
    model = Bidirectional(ConvLSTM(2, [3, 4], 3, 2, batch_first=True, return_all_layers=True), merge)
    initial_f, initial_b = _states(1), _states(2)
    outputs, (states_f, states_b) = model(X, (initial_f, initial_b), torch.tensor([4, 3]))
    alone_f = model.forward_layer(X, initial_f, torch.tensor([4, 3]))
    alone_b = model.backward_layer(X, initial_b, torch.tensor([4, 3]))
    assert all(torch.equal(a, b) for a, b in zip(_flat(states_f), _flat(alone_f[1])))
    assert all(torch.equal(a, b) for a, b in zip(_flat(states_b), _flat(alone_b[1])))
    for ours, f, b in zip(outputs, alone_f[0], alone_b[0]):
        assert torch.equal(ours, torch.cat([f, b], dim=2) if merge == "concat" else f + b)


def test_the_cells_defaults_and_the_seeds_padding_attribute():
    cell = ConvLSTMCell(3, 8, (3, 5))
    assert cell.bias and cell.conv.bias is not None and cell.peephole == "conv"
    assert cell.padding == (1, 2)  # the seed's attribute: k // 2 per axis


def test_nan_and_inf_propagate_by_default_and_initial_states_are_checked_on_request():
    x = torch.ones(3, 2, 2, 5, 5)
    x[1, 0, 1, 2, 2] = float("nan")
    outputs, _ = ConvLSTM(2, 4, 3, 1)(x)
    assert torch.isnan(outputs[0][0, 1:]).any() and not torch.isnan(outputs[0][0, 0]).any()
    state = [(torch.zeros(2, 4, 5, 5), torch.full((2, 4, 5, 5), float("inf")))]
    with pytest.raises(ValueError, match=r"hidden_state\[0\] c holds 200 NaN or inf value\(s\)"):
        ConvLSTM(2, 4, 3, 1, check_finite=True)(torch.ones(3, 2, 2, 5, 5), state)


def test_drawn_masks_keep_each_value_with_probability_one_minus_the_rate_and_scale_it_up():
    model = ConvLSTM(6, 8, 3, 1, dropout=0.25, recurrent_dropout=0.5)
    x = torch.zeros(64, 1, 6, 16, 16)
    torch.manual_seed(0)
    [(mask_x, mask_h)] = model._dropout_masks(None, x, 64, [(16, 16)], [(16, 16)])
    for mask, depth, rate in [(mask_x, 6, 0.25), (mask_h, 8, 0.5)]:
        assert mask.shape == (64, depth, 16, 16) and mask.dtype == torch.float32
        assert mask.unique().tolist() == [0.0, torch.tensor(1 / (1 - rate)).item()]
        assert abs((mask == 0).float().mean().item() - rate) < 0.01  # 1e5 draws: a standard deviation of 0.002
    # No mask where a rate is zero or a layer has no input.
    only_input = ConvLSTM(6, 8, 3, 1, dropout=0.25)
    assert only_input._dropout_masks(None, x, 64, [(16, 16)], [(16, 16)])[0][1] is None
    no_input = ConvLSTM(0, 8, 3, 1, dropout=0.25, recurrent_dropout=0.5)
    assert no_input._dropout_masks(None, x[:, :, :0], 64, [(16, 16)], [(16, 16)])[0][0] is None


def test_explicit_masks_must_be_floating_point():
    model = ConvLSTM(2, 4, 3, 1)
    with pytest.raises(TypeError, match=r"dropout_masks\[0\] input_mask must have a floating-point dtype"):
        model(X[:, :, :, :4, :4].transpose(0, 1), dropout_masks=[(torch.ones(2, 2, 4, 4, dtype=torch.int32), None)])


def test_the_encoder_forecasters_defaults_notation_and_argument_names():
    model = EncoderForecaster([8, 4], [3, (1, 1)], 5)
    assert (model.in_channels, model.patch_size, model.output_frames, model.peephole) == (1, 4, 10, "hadamard")
    assert model.spec == "ConvLSTM(5x5)-3x3-8-1x1-4"
    assert EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4").output_frames == 10
    for name in ("in_channels", "patch_size", "output_frames"):
        with pytest.raises(ValueError, match=rf"^{name} must be a positive int, got 0"):
            EncoderForecaster([8], [3], 3, **{name: 0})
