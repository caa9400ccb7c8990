"""Signals (1-D frames) and volumes (3-D): the same cell and stack, parameterised by `spatial_dims`."""

import pytest
import torch
from torch import nn

from convlstm_torch import Bidirectional, ConvLSTM, ConvLSTMCell

FRAMES = {1: (9,), 2: (6, 5), 3: (3, 4, 5)}


def _model(rank, **kwargs):
    torch.manual_seed(0)
    options = {"input_dim": 2, "hidden_dim": [4, 3], "kernel_size": [3, 1], "num_layers": 2, "spatial_dims": rank}
    return ConvLSTM(**(options | kwargs))


@pytest.mark.parametrize(("rank", "convolution"), [(1, nn.Conv1d), (2, nn.Conv2d), (3, nn.Conv3d)])
def test_each_rank_has_its_convolution(rank, convolution):
    model = _model(rank, peephole="conv", input_kernel_size=[5, 1])
    assert {type(m) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)} == {convolution}
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes["cell_list.0.conv_x.weight"] == (16, 2, *(5,) * rank)
    assert shapes["cell_list.1.conv.weight"] == (12, 7, *(1,) * rank)
    assert shapes["cell_list.0.conv_c.weight"] == (8, 4, *(3,) * rank)


@pytest.mark.parametrize("rank", [1, 3])
def test_hadamard_peepholes_broadcast_over_the_frame(rank):
    model = _model(rank, peephole="hadamard")
    assert tuple(model.cell_list[0].w_ci.shape) == (4, *(1,) * rank)


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("batch_first", [True, False])
def test_the_stack_takes_frames_of_its_rank(rank, batch_first):
    frame = FRAMES[rank]
    model = _model(rank, batch_first=batch_first, return_all_layers=True)
    x = torch.randn(5, 7, 2, *frame) if batch_first else torch.randn(7, 5, 2, *frame)
    outputs, states = model(x)
    assert [tuple(o.shape) for o in outputs] == [(5, 7, 4, *frame), (5, 7, 3, *frame)]
    assert [tuple(t.shape) for h_c in states for t in h_c] == [(5, 4, *frame)] * 2 + [(5, 3, *frame)] * 2
    assert torch.equal(outputs[-1][:, -1], states[-1][0])


def test_the_cell_is_the_stacks_step_for_volumes():
    model = _model(3, num_layers=1, hidden_dim=4, kernel_size=3, stride=(1, 2, 2))
    x = torch.randn(2, 3, 2, 4, 9, 8)  # (T, B, C, D, H, W)
    _, [(h, c)] = model(x)
    cell = model.cell_list[0]
    state = cell.init_hidden(3, (4, 9, 8))
    assert tuple(state[0].shape) == (3, 4, 4, 5, 4) == tuple(h.shape)
    for x_t in x:
        state = cell(x_t, state)
    assert torch.allclose(state[0], h) and torch.allclose(state[1], c)


def test_options_and_bidirectional_run_on_signals():
    model = _model(1, reverse=True, padding="valid", dilation=[2, 1], dropout=0.3, recurrent_dropout=0.2)
    model.train()
    x = torch.randn(4, 3, 2, 13, requires_grad=True)
    outputs, [(h, _)] = model(x, seq_lengths=torch.tensor([4, 0, 2]))
    assert tuple(outputs[0].shape) == (3, 4, 3, 9) and tuple(h.shape) == (3, 3, 9)
    outputs[0].sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    both = Bidirectional(_model(1, batch_first=True), merge="concat")
    outputs, _ = both(torch.randn(3, 4, 2, 13))
    assert tuple(outputs[0].shape) == (3, 4, 6, 13)


@pytest.mark.parametrize(
    ("rank", "shape", "match"),
    [
        (
            1,
            (3, 2, 2, 5, 4),
            r"input_tensor must be 4-D \(T, B, C, L\), got shape \(3, 2, 2, 5, 4\) \(spatial_dims=1\)",
        ),
        (3, (3, 2, 2, 5, 4), r"input_tensor must be 6-D \(T, B, C, D, H, W\)"),
    ],
)
def test_frames_of_another_rank_are_explained(rank, shape, match):
    with pytest.raises(ValueError, match=match):
        _model(rank)(torch.randn(shape))


def test_bad_ranks_fail_at_construction():
    with pytest.raises(ValueError, match=r"spatial_dims must be 1 \(signals\), 2 \(images\) or 3 \(volumes\), got 4"):
        _model(4)
    with pytest.raises(TypeError, match=r"kernel_size must be an int or a triple \(kd, kh, kw\)"):
        ConvLSTMCell(2, 4, [3, 3], spatial_dims=3)
    with pytest.raises(ValueError, match=r"input_tensor must have shape \(B, 2, L\), got \(2, 2, 5, 5\)"):
        cell = ConvLSTMCell(2, 4, 3, spatial_dims=1)
        cell(torch.randn(2, 2, 5, 5), cell.init_hidden(2, (5,)))
