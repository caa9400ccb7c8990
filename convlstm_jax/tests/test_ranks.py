"""Signals (1-D frames) and volumes (3-D): the same cell and stack, parameterised by `spatial_dims`.

The tapwise gradients of every rank are tested with the others, in `test_conv.py`."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from convlstm_jax import ConvLSTM, ConvLSTMCell, flax_to_torch, torch_to_flax
from convlstm_jax import nnx as convlstm_nnx

KEY = jax.random.key(0)
FRAMES = {1: (9,), 2: (6, 5), 3: (3, 4, 5)}


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_stack_takes_frames_of_its_rank(rank, channels_last):
    frame = FRAMES[rank]
    model = ConvLSTM(2, [4, 3], 3, 2, spatial_dims=rank, channels_last=channels_last, return_all_layers=True)
    x = jnp.ones((5, 2, *frame, 2) if channels_last else (5, 2, 2, *frame))  # (T, B, ...)
    variables = model.init(KEY, x)
    kernel = variables["params"]["cell_0"]["input_to_state"]["kernel"]
    assert kernel.shape == (*(3,) * rank, 2, 16)
    outputs, states = model.apply(variables, x)
    expected = [(2, 5, *frame, h) if channels_last else (2, 5, h, *frame) for h in (4, 3)]
    assert [y.shape for y in outputs] == expected
    assert [s[0].shape for s in states] == [(y[0], *y[2:]) for y in expected]
    assert jax.tree.map(jnp.shape, model.initialize_carry(KEY, x.shape)) == jax.tree.map(jnp.shape, states)


def test_strides_shrink_each_axis_of_a_volume():
    model = ConvLSTM(1, 4, 3, 2, spatial_dims=3, stride=[(1, 2, 2), 1], batch_first=True)
    assert model.state_sizes((4, 9, 8)) == [(4, 5, 4), (4, 5, 4)]
    x = jnp.ones((2, 3, 4, 9, 8, 1))
    outputs, [(h, _)] = model.apply(model.init(KEY, x), x)
    assert outputs[0].shape == (2, 3, 4, 5, 4, 4) and h.shape == (2, 4, 5, 4, 4)


@pytest.mark.parametrize("rank", [1, 3])
def test_the_cell_works_in_flax_rnn_in_every_rank(rank):
    x = jax.random.normal(KEY, (2, 3, *FRAMES[rank], 2))  # (B, T, *frame, C)
    rnn = nn.RNN(ConvLSTMCell(hidden_dim=4, kernel_size=3, spatial_dims=rank), return_carry=True)
    variables = rnn.init(KEY, x)
    (h, c), outputs = rnn.apply(variables, x)
    stack = ConvLSTM(2, 4, 3, 1, batch_first=True, spatial_dims=rank)
    stack_outputs, stack_states = stack.apply({"params": {"cell_0": variables["params"]["cell"]}}, x)
    chex.assert_trees_all_close(outputs, stack_outputs[0], rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close((h, c), stack_states[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "shape", "error", "match"),
    [
        (ConvLSTM(2, 4, 3, 1, spatial_dims=1), (3, 2, 5, 4, 2), ValueError, r"x must be 4-D \(T, B, L, C\), got shape"),
        (
            ConvLSTM(2, 4, 3, 1, spatial_dims=3),
            (3, 2, 5, 4, 2),
            ValueError,
            r"6-D \(T, B, D, H, W, C\).*spatial_dims=3",
        ),
        (ConvLSTM(2, 4, 3, 1), (3, 2, 5, 2), ValueError, r"x must be 5-D \(T, B, H, W, C\).*\(spatial_dims=2\)"),
        (
            ConvLSTM(2, 4, 5, 1, spatial_dims=3, padding="valid"),
            (3, 2, 5, 4, 6, 2),
            ValueError,
            r"Frames of 5x4x6 are too small .* \(5x5x5 kernel, .* would be 1x0x2",
        ),
    ],
)
def test_frames_of_another_rank_are_explained(model, shape, error, match):
    with pytest.raises(error, match=match):
        model.init(KEY, jnp.ones(shape))


def test_bad_ranks_fail_at_construction():
    with pytest.raises(ValueError, match=r"spatial_dims must be 1 \(signals\), 2 \(images\) or 3 \(volumes\), got 0"):
        ConvLSTM(2, 4, 3, 1, spatial_dims=0)
    with pytest.raises(TypeError, match=r"kernel_size must be an int or a 1-tuple \(k,\)"):
        ConvLSTM(2, 4, [(3, 3)], 1, spatial_dims=1)
    with pytest.raises(TypeError, match=r"stride must be an int or a triple"):
        ConvLSTMCell(hidden_dim=4, stride=(1, 2), spatial_dims=3)


@pytest.mark.parametrize("peephole", ["conv", "hadamard", None])
@pytest.mark.parametrize("rank", [1, 3])
def test_conversion_reads_the_rank_and_round_trips(rank, peephole):
    model = ConvLSTM(2, [4, 3], [3, 1], 2, spatial_dims=rank, peephole=peephole, input_kernel_size=[5, 1])
    variables = model.init(KEY, jnp.ones((1, 1, *FRAMES[rank], 2)))
    state_dict = flax_to_torch(variables, model)
    assert state_dict["cell_list.0.conv_x.weight"].shape == (16, 2, *(5,) * rank)
    assert state_dict["cell_list.1.conv.weight"].shape == (12, 7, *(1,) * rank)
    if peephole == "hadamard":
        assert state_dict["cell_list.0.w_ci"].shape == (4, *(1,) * rank)
    back = torch_to_flax(state_dict)  # the rank and architecture read from the shapes alone
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, variables), back)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, variables), torch_to_flax(state_dict, model))


def test_a_state_dict_of_another_rank_is_listed():
    volumes = ConvLSTM(2, 4, 3, 1, spatial_dims=3)
    state_dict = flax_to_torch(volumes.init(KEY, jnp.ones((1, 1, 3, 3, 3, 2))), volumes)
    with pytest.raises(ValueError, match=r"key 'cell_list.0.conv.weight' has shape \(16, 6, 3, 3, 3\), expected "):
        torch_to_flax(state_dict, ConvLSTM(2, 4, 3, 1))


@pytest.mark.parametrize("rank", [1, 3])
def test_nnx_equals_linen_in_every_rank(rank):
    kwargs = {"input_dim": 2, "hidden_dim": [3, 2], "kernel_size": 3, "num_layers": 2, "spatial_dims": rank}
    model = convlstm_nnx.ConvLSTM(**kwargs, peephole="hadamard", stride=[2, 1], rngs=nnx.Rngs(0))
    x = jax.random.normal(KEY, (4, 2, *FRAMES[rank], 2))
    outputs, states = model(x)
    linen = ConvLSTM(**kwargs, peephole="hadamard", stride=[2, 1])
    chex.assert_trees_all_equal((outputs, states), linen.apply(convlstm_nnx.to_linen(model), x))
    assert model.cell_0.num_feature_axes == rank + 1
