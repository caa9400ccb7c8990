"""The backward copy of `Bidirectional` has weights of its own, in every spatial rank."""

import pytest
import torch

from convlstm_torch import Bidirectional, ConvLSTM


def _directions(model):
    state = model.state_dict()
    forward = {k.removeprefix("forward_layer."): v for k, v in state.items() if k.startswith("forward_layer.")}
    backward = {k.removeprefix("backward_layer."): v for k, v in state.items() if k.startswith("backward_layer.")}
    assert forward and forward.keys() == backward.keys() and len(state) == 2 * len(forward), sorted(state)
    return forward, backward


@pytest.mark.parametrize("input_kernel_size", [None, 5], ids=["one-convolution", "input-kernels"])
@pytest.mark.parametrize("peephole", ["conv", None])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_the_backward_copy_draws_every_weight_again(spatial_dims, peephole, input_kernel_size):
    torch.manual_seed(0)
    layer = ConvLSTM(2, [3, 4], 3, 2, peephole=peephole, input_kernel_size=input_kernel_size, spatial_dims=spatial_dims)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    forward, backward = _directions(Bidirectional(layer))
    assert forward.keys() == before.keys()
    assert all(torch.equal(forward[k], before[k]) for k in before)  # the layer keeps its own weights
    shared = [k for k in forward if torch.equal(forward[k], backward[k])]
    assert not shared, f"spatial_dims={spatial_dims}: the directions share {shared}"


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_the_backward_copy_starts_its_hadamard_peepholes_at_zero(spatial_dims):
    torch.manual_seed(0)
    layer = ConvLSTM(2, 3, 3, 1, peephole="hadamard", spatial_dims=spatial_dims)
    with torch.no_grad():  # as trained or loaded weights would be
        for name in ("w_ci", "w_cf", "w_co"):
            getattr(layer.cell_list[0], name).uniform_(-1, 1)
    forward, backward = _directions(Bidirectional(layer))
    for name in ("w_ci", "w_cf", "w_co"):
        key = f"cell_list.0.{name}"
        assert not torch.equal(forward[key], torch.zeros_like(forward[key])), key
        assert torch.equal(backward[key], torch.zeros_like(backward[key])), key
    assert not torch.equal(forward["cell_list.0.conv.weight"], backward["cell_list.0.conv.weight"])
