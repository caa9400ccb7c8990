import pytest
import torch

from convlstm_torch import Bidirectional, ConvLSTM
from convlstm_torch._convlstm import flip_sequences


def _model(**kwargs):
    torch.manual_seed(0)
    return ConvLSTM(2, [4, 3], 3, 2, True, True, True, **kwargs)


X = torch.randn(3, 5, 2, 6, 4)


def test_flip_sequences_reverses_within_each_length():
    x = torch.arange(12).reshape(3, 4)
    flipped = flip_sequences(x, torch.tensor([4, 2, 0]))
    assert flipped.tolist() == [[3, 2, 1, 0], [5, 4, 6, 7], [8, 9, 10, 11]]


def test_reverse_is_the_forward_model_on_the_reversed_sequence():
    outputs, states = _model(reverse=True)(X)
    expected_outputs, expected_states = _model()(X.flip(1))
    torch.testing.assert_close(outputs, [y.flip(1) for y in expected_outputs])
    torch.testing.assert_close(states, expected_states)


@pytest.mark.parametrize("reverse", [False, True])
def test_each_sequence_stops_at_its_length(reverse):
    model = _model(reverse=reverse)
    outputs, states = model(X, seq_lengths=torch.tensor([5, 2, 0]))
    alone_outputs, alone_states = model(X[1:2, :2])
    torch.testing.assert_close(outputs[1][1, :2], alone_outputs[1][0])
    assert outputs[1][1, 2:].abs().max() == 0 and outputs[1][2].abs().max() == 0
    torch.testing.assert_close(states[1][0][1], alone_states[1][0][0])
    assert states[1][0][2].abs().max() == 0


def test_bad_seq_lengths_are_explained():
    for lengths, error, match in [
        (torch.tensor([5.0, 5.0, 5.0]), TypeError, r"seq_lengths must be an int tensor of shape \(3,\)"),
        (torch.tensor([5, 5]), ValueError, r"seq_lengths must have shape \(B,\) = \(3,\)"),
        (torch.tensor([6, 5, 5]), ValueError, r"seq_lengths must lie in \[0, T\] = \[0, 5\]"),
    ]:
        with pytest.raises(error, match=match):
            _model()(X, seq_lengths=lengths)


def test_dropout_draws_one_mask_per_sequence_in_training_mode_only(monkeypatch):
    model = _model(dropout=0.4, recurrent_dropout=0.3)
    calls = []
    bernoulli = torch.bernoulli
    monkeypatch.setattr(torch, "bernoulli", lambda p: calls.append(tuple(p.shape)) or bernoulli(p))
    model(X)
    assert calls == [(3, 2, 6, 4), (3, 4, 6, 4), (3, 4, 6, 4), (3, 3, 6, 4)]  # per layer and path, not per step
    calls.clear()
    model.eval()
    torch.testing.assert_close(model(X), _model().eval()(X))
    assert calls == []


def test_explicit_masks_multiply_the_input_and_the_state():
    model = _model()
    ones = [(torch.ones(3, 2, 6, 4), torch.ones(3, 4, 6, 4)), (torch.ones(3, 4, 6, 4), torch.ones(3, 3, 6, 4))]
    torch.testing.assert_close(model(X, dropout_masks=ones), model(X))
    zero_input = [(torch.zeros(3, 2, 6, 4), None), (None, None)]
    torch.testing.assert_close(model(X, dropout_masks=zero_input), model(torch.zeros_like(X)))
    with pytest.raises(ValueError, match=r"dropout_masks\[0\] input_mask must have shape \(3, 2, 6, 4\)"):
        model(X, dropout_masks=[(torch.ones(3, 3, 6, 4), None), (None, None)])


@pytest.mark.parametrize(("merge", "channels"), [("concat", 6), ("sum", 3)])
def test_bidirectional(merge, channels):
    torch.manual_seed(0)
    model = Bidirectional(ConvLSTM(2, 3, 3, 1, True), merge)
    assert {k.split(".")[0] for k in model.state_dict()} == {"forward_layer", "backward_layer"}
    assert not torch.equal(model.forward_layer.cell_list[0].conv.weight, model.backward_layer.cell_list[0].conv.weight)
    outputs, (forward_states, backward_states) = model(X)
    assert tuple(outputs[0].shape) == (3, 5, channels, 6, 4)
    backward_outputs, expected_backward_states = model.backward_layer(X)
    forward_outputs, expected_forward_states = model.forward_layer(X)
    torch.testing.assert_close((forward_states, backward_states), (expected_forward_states, expected_backward_states))
    expected = (
        torch.cat([forward_outputs[0], backward_outputs[0]], 2)
        if merge == "concat"
        else forward_outputs[0] + backward_outputs[0]
    )
    torch.testing.assert_close(outputs[0], expected)
    with pytest.raises(ValueError, match="merge must be one of"):
        Bidirectional(ConvLSTM(2, 3, 3, 1), "mean")


def test_stride_padding_and_dilation_shape_the_state():
    torch.manual_seed(0)
    model = ConvLSTM(2, [4, 3], 3, 2, True, True, True, padding=["valid", "same"], stride=[1, 2], dilation=[2, 1])
    assert model.state_sizes((9, 8)) == [(5, 4), (3, 2)]
    outputs, states = model(torch.randn(2, 3, 2, 9, 8))
    assert [tuple(y.shape) for y in outputs] == [(2, 3, 4, 5, 4), (2, 3, 3, 3, 2)]
    keys = set(model.state_dict())
    assert {"cell_list.0.conv_x.weight", "cell_list.0.conv_h.weight", "cell_list.1.conv_x.weight"} <= keys
    assert model.cell_list[1].conv_x.stride == (2, 2) and model.cell_list[0].conv_x.dilation == (2, 2)
    with pytest.raises(ValueError, match=r"Frames of 4x8 are too small for the input-to-state convolution"):
        model(torch.randn(2, 3, 2, 4, 8))
    with pytest.raises(
        ValueError, match=r"hidden_state\[1\] h must have shape \(B, hidden_dim, H, W\) = \(2, 3, 3, 2\)"
    ):
        model(torch.randn(2, 3, 2, 9, 8), [states[0], (torch.zeros(2, 3, 5, 4), torch.zeros(2, 3, 5, 4))])
