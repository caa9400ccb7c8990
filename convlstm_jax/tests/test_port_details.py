"""Details of the port the shared vectors do not reach: how fresh weights are drawn, what the cell
checks, layouts, lengths and dropout of the stack, the conversion's corners and the wrappers
(`python -m tools.mutation` found each one unguarded)."""

import dataclasses
import math
import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch

import convlstm_torch
from convlstm_common.tolerance import tolerance_for
from convlstm_jax import Bidirectional, ConvLSTM, ConvLSTMCell, flax_to_torch, load_checkpoint, torch_to_flax
from convlstm_jax._convlstm import draw_dropout_masks
from convlstm_jax.models import EncoderForecaster, torch_to_flax_encoder_forecaster
from convlstm_torch.models import EncoderForecaster as TorchEncoderForecaster

KEY = jax.random.key(0)
FLOAT32 = tolerance_for("float32")
NHWC = ("NHWC", "HWIO", "NHWC")

TORCH_CONVOLUTIONS = {
    "input_to_state": ("conv", "conv_x"),
    "state_to_state": ("conv", "conv_h"),
    "peephole_conv_if": ("conv_c",),
    "peephole_conv_o": ("conv_cnext",),
}
"""The reference's convolution that holds each Flax param's weights (`conv` where one convolution
over [X, H] computes both paths)."""


@pytest.mark.parametrize(
    "options",
    [
        {"input_dim": 2},
        {"input_dim": 2, "input_kernel_size": 5},
        {"input_dim": 2, "stride": 2},
        {"input_dim": 0},
        {"input_dim": 2, "spatial_dims": 1, "kernel_size": 5, "input_kernel_size": 3},
    ],
    ids=["one-convolution", "input-kernels", "stride", "no-input", "signals"],
)
def test_fresh_weights_are_drawn_with_the_fan_in_of_the_torch_twins_convolution(options):
    # torch.nn.ConvNd draws weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in the
    # weight's elements per output channel; a fresh port must start from the same distribution.
    hparams = {"hidden_dim": 16, "kernel_size": 3, "num_layers": 1, "peephole": "conv"} | options
    rank = hparams.get("spatial_dims", 2)
    x = jnp.ones((1, 1, *(9,) * rank, hparams["input_dim"]))
    params = ConvLSTM(**hparams).init(KEY, x)["params"]["cell_0"]
    twin = convlstm_torch.ConvLSTM(**hparams).cell_list[0]
    for name, candidates in TORCH_CONVOLUTIONS.items():
        if name not in params:
            continue
        weight = next(getattr(twin, c).weight for c in candidates if hasattr(twin, c))
        bound = 1 / math.sqrt(math.prod(weight.shape[1:]))
        for leaf_name, leaf in params[name].items():
            largest = float(np.abs(leaf).max())
            assert 0.8 * bound < largest <= bound * (1 + 1e-6), (name, leaf_name, largest, bound)


def test_the_cell_checks_its_hyperparameters_and_the_dtypes_of_a_step():
    with pytest.raises(ValueError, match=r"peephole must be one of"):
        ConvLSTMCell(hidden_dim=4, peephole="diagonal")
    with pytest.raises(ValueError, match=r"conv_gradient must be one of"):
        ConvLSTMCell(hidden_dim=4, conv_gradient="fast")
    cell = ConvLSTMCell(hidden_dim=4, input_dim=2)
    h, c = cell.initialize_carry(KEY, (2, 5, 5, 2))
    with pytest.raises(TypeError, match=r"inputs must have a floating-point dtype, got int32"):
        cell.init(KEY, (h, c), jnp.ones((2, 5, 5, 2), jnp.int32))
    with pytest.raises(TypeError, match=r"carry c must have a floating-point dtype, got int32"):
        cell.init(KEY, (h, c.astype(jnp.int32)), jnp.ones((2, 5, 5, 2)))


def test_a_cells_initial_carry_takes_the_states_size_and_dtype():
    cell = ConvLSTMCell(hidden_dim=4, stride=2)  # input_dim None: read from the input's shape
    assert jax.tree.map(jnp.shape, cell.initialize_carry(KEY, (2, 9, 8, 3))) == ((2, 5, 4, 4),) * 2
    assert jax.tree.map(jnp.shape, cell.initialize_carry(KEY, (2, 9, 8, 0))) == ((2, 9, 8, 4),) * 2  # no input
    for options, dtype in [({}, jnp.float32), ({"param_dtype": jnp.bfloat16}, jnp.bfloat16)]:
        carry = ConvLSTMCell(hidden_dim=4, **options).initialize_carry(KEY, (2, 5, 5, 3))
        assert [s.dtype for s in carry] == [dtype, dtype]
    carry = ConvLSTMCell(hidden_dim=4, dtype=jnp.bfloat16).initialize_carry(KEY, (2, 5, 5, 3))
    assert [s.dtype for s in carry] == [jnp.bfloat16, jnp.bfloat16]


def test_a_cell_without_input_runs_on_its_state():
    cell = ConvLSTMCell(hidden_dim=4, input_dim=0, peephole=None)
    x = jnp.zeros((2, 5, 5, 0))
    carry = tuple(jax.random.normal(k, (2, 5, 5, 4)) for k in jax.random.split(KEY))
    variables = cell.init(KEY, carry, x)
    (h, c), y = cell.apply(variables, carry, x)
    weights = variables["params"]["state_to_state"]  # without input, the bias is here
    z = lax.conv_general_dilated(carry[0], weights["kernel"], (1, 1), "SAME", dimension_numbers=NHWC)
    z = z + weights["bias"].reshape(1, 1, 1, -1)
    z_i, z_f, z_o, z_g = jnp.split(z, 4, axis=-1)
    c_expected = nn.sigmoid(z_f) * carry[1] + nn.sigmoid(z_i) * jnp.tanh(z_g)
    h_expected = nn.sigmoid(z_o) * jnp.tanh(c_expected)
    assert FLOAT32.score(c, c_expected) <= 1 and FLOAT32.score(h, h_expected) <= 1
    assert bool(jnp.all(y == h))


@pytest.mark.parametrize("channels_last", [True, False])
def test_a_stacks_initial_states_take_each_layers_size_and_dtype(channels_last):
    model = ConvLSTM(None, [4, 3], 3, 2, stride=[2, 1], channels_last=channels_last)

    def shapes(channels):  # of a (T, B, ...) sequence of 9x8 frames
        shape = (3, 2, 9, 8, channels) if channels_last else (3, 2, channels, 9, 8)
        return [tuple(s.shape) for pair in model.initialize_carry(KEY, shape) for s in pair]

    def layout(hidden, frame):
        return (2, *frame, hidden) if channels_last else (2, hidden, *frame)

    assert model.state_sizes((9, 8)) == [(5, 4), (5, 4)]
    assert shapes(3) == [layout(4, (5, 4))] * 2 + [layout(3, (5, 4))] * 2
    assert shapes(0) == [layout(4, (9, 8))] * 2 + [layout(3, (9, 8))] * 2  # a stack without input
    for options, dtype in [
        ({}, jnp.float32),
        ({"param_dtype": jnp.bfloat16}, jnp.bfloat16),
        ({"dtype": jnp.bfloat16}, jnp.bfloat16),
    ]:
        states = ConvLSTM(None, 4, 3, 1, **options).initialize_carry(KEY, (3, 2, 9, 8, 3))
        assert [s.dtype for s in states[0]] == [dtype, dtype]


@pytest.mark.parametrize("rates", [{"dropout": 0.5}, {"recurrent_dropout": 0.5}], ids=["input", "recurrent"])
def test_either_dropout_rate_alone_turns_dropout_on(rates):
    model = ConvLSTM(None, [4, 3], 3, 2, batch_first=True, **rates)
    x = jax.random.normal(KEY, (2, 3, 6, 5, 2))
    variables = model.init(KEY, x, deterministic=True)
    evaluated, _ = model.apply(variables, x, deterministic=True)
    trained, _ = model.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    assert FLOAT32.score(trained[0], evaluated[0]) > 1  # they differ by more than rounding


def test_drawn_masks_keep_each_value_with_probability_one_minus_the_rate_and_scale_it_up():
    model = ConvLSTM(None, 8, 3, 1, dropout=0.25, recurrent_dropout=0.5)
    specs = (dataclasses.replace(model.layer_specs()[0], input_dim=6),)
    keys = iter(jax.random.split(KEY))
    [(mask_x, mask_h)] = draw_dropout_masks(model, specs, 64, (16, 16), [(16, 16)], jnp.float32, lambda: next(keys))
    for mask, depth, rate in [(mask_x, 6, 0.25), (mask_h, 8, 0.5)]:
        assert mask.shape == (64, 16, 16, depth) and mask.dtype == jnp.float32
        np.testing.assert_array_equal(np.unique(mask), np.array([0, 1 / (1 - rate)], np.float32))
        assert abs(float(jnp.mean(mask == 0)) - rate) < 0.01  # 1e5 draws: a standard deviation of 0.002
    # No mask where a rate is zero or a layer has no input.
    only_input = ConvLSTM(None, 8, 3, 1, dropout=0.25)
    assert draw_dropout_masks(only_input, specs, 2, (4, 4), [(4, 4)], jnp.float32, lambda: KEY)[0][1] is None
    no_input = (dataclasses.replace(specs[0], input_dim=0),)
    assert draw_dropout_masks(model, no_input, 2, (4, 4), [(4, 4)], jnp.float32, lambda: KEY)[0][0] is None


def test_explicit_masks_may_leave_out_either_path_in_every_layer():
    model = ConvLSTM(None, [4, 3, 2], 3, 3, batch_first=True, return_all_layers=True, stride=[2, 1, 2])
    x = jax.random.normal(KEY, (2, 3, 9, 8, 2))
    variables = model.init(KEY, x)
    ones = [
        (jnp.ones((2, *frame, depth)), jnp.ones((2, *size, hidden)))
        for frame, depth, size, hidden in [((9, 8), 2, (5, 4), 4), ((5, 4), 4, (5, 4), 3), ((5, 4), 3, (3, 2), 2)]
    ]
    plain = model.apply(variables, x)
    for masks in ([(a, None) for a, _ in ones], [(None, b) for _, b in ones], ones):
        result = model.apply(variables, x, dropout_masks=masks)
        assert all(bool(jnp.all(a == b)) for a, b in zip(jax.tree.leaves(result), jax.tree.leaves(plain)))
    with pytest.raises(TypeError, match=r"dropout_masks\[0\] input_mask must have a floating-point dtype"):
        model.apply(variables, x, dropout_masks=[(ones[0][0].astype(jnp.int32), None), *ones[1:]])


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_each_direction_starts_from_its_own_initial_state(merge):
    layer = ConvLSTM(None, [4, 3], 3, 2, batch_first=True, return_all_layers=True)
    model = Bidirectional(layer, merge)
    x = jax.random.normal(KEY, (2, 4, 5, 6, 2))
    variables = model.init(KEY, x)

    def initial(seed):
        keys = iter(jax.random.split(jax.random.key(seed), 4))
        return [tuple(jax.random.normal(next(keys), (2, 5, 6, h)) for _ in "hc") for h in (4, 3)]

    lengths = jnp.array([4, 3])
    outputs, states = model.apply(variables, x, (initial(1), initial(2)), seq_lengths=lengths)
    params = variables["params"]
    alone_f = layer.apply({"params": params["forward_layer"]}, x, initial(1), seq_lengths=lengths)
    alone_b = layer.clone(reverse=True).apply({"params": params["backward_layer"]}, x, initial(2), seq_lengths=lengths)
    assert _equal(states, (alone_f[1], alone_b[1]))
    merged = [jnp.concatenate([f, b], -1) if merge == "concat" else f + b for f, b in zip(alone_f[0], alone_b[0])]
    assert _equal(outputs, merged)


def _equal(a, b) -> bool:
    """Whether two trees of arrays are equal bit for bit (the same computation, run twice)."""
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        bool(jnp.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def test_seq_lengths_may_be_a_list():
    model = ConvLSTM(None, 4, 3, 1, batch_first=True)
    x = jax.random.normal(KEY, (3, 4, 5, 5, 2))
    variables = model.init(KEY, x)
    assert _equal(
        model.apply(variables, x, seq_lengths=[4, 2, 0]), model.apply(variables, x, seq_lengths=jnp.array([4, 2, 0]))
    )


def test_hyperparameters_keep_the_values_given_and_lists_become_per_layer_tuples():
    assert ConvLSTM(None, 4, 3, 2).hidden_dim == 4
    model = ConvLSTM(None, [4, 3], [3, 1], 2, stride=[2, 1])
    assert (model.hidden_dim, model.kernel_size, model.stride) == ((4, 3), ((3, 3), (1, 1)), ((2, 2), (1, 1)))


def _state_dict(input_dim, hidden_dim, num_layers=1, **options):
    torch.manual_seed(0)
    model = convlstm_torch.ConvLSTM(input_dim, hidden_dim, 3, num_layers, **options)
    return {k: v.numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("input_dim", "hidden_dim", "num_layers"), [(1, 4, 1), (1, [4, 3], 2), (5, [2, 3], 2)])
def test_a_state_dict_converts_alike_with_and_without_a_model(input_dim, hidden_dim, num_layers):
    state_dict = _state_dict(input_dim, hidden_dim, num_layers)  # one convolution over [X, H] per layer
    read = torch_to_flax(state_dict)  # the architecture read from the shapes alone
    first_hidden = hidden_dim if isinstance(hidden_dim, int) else hidden_dim[0]
    assert read["params"]["cell_0"]["input_to_state"]["kernel"].shape == (3, 3, input_dim, 4 * first_hidden)
    for model in (ConvLSTM(input_dim, hidden_dim, 3, num_layers), ConvLSTM(None, hidden_dim, 3, num_layers)):
        assert _equal(torch_to_flax(state_dict, model), read)
    assert all(np.array_equal(v, flax_to_torch(read)[k]) for k, v in state_dict.items())


def test_a_state_dict_without_any_convolution_is_refused_with_a_value_error():
    with pytest.raises(ValueError, match=r"missing key 'cell_list.0.conv.weight' \(expected shape \(4, 2, 1, 1\)\)"):
        torch_to_flax({"cell_list.0.w_ci": np.zeros((4, 1, 1), np.float32)})


@pytest.mark.parametrize("in_channels", [4, 2])
def test_a_convolution_over_x_and_h_without_input_channels_is_refused_with_a_value_error(in_channels):
    state_dict = {"cell_list.0.conv.weight": np.zeros((16, in_channels, 3, 3), np.float32)}  # hidden 4: no X
    with pytest.raises(ValueError, match=r"The state_dict does not match a ConvLSTM"):
        torch_to_flax(state_dict)


def test_reference_checkpoints_load_without_running_pickled_code(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({**_state_dict(2, 4), "optimizer": _Pickled()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(path)


class _Pickled:
    """An object torch.load(weights_only=True) refuses to rebuild: only tensors and plain containers load."""


def test_the_encoder_forecasters_defaults_and_normalised_hyperparameters():
    model = EncoderForecaster(hidden_dim=[8, 4], kernel_size=[3, (1, 1)], input_kernel_size=5)
    assert (model.in_channels, model.patch_size, model.output_frames, model.peephole) == (1, 4, 10, "hadamard")
    assert (model.hidden_dim, model.kernel_size, model.input_kernel_size) == ((8, 4), ((3, 3), (1, 1)), (5, 5))
    assert model.spec == "ConvLSTM(5x5)-3x3-8-1x1-4"
    with pytest.raises(ValueError, match=r"conv_gradient must be one of"):
        EncoderForecaster(hidden_dim=[8], kernel_size=[3], input_kernel_size=3, conv_gradient="fast")


def test_encoder_forecaster_weights_keep_their_dtype_or_take_the_one_asked_for():
    torch.manual_seed(0)
    state_dict = {k: v.numpy() for k, v in TorchEncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4").state_dict().items()}
    model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4")
    for dtype, expected in [(None, np.float32), (np.float16, np.float16)]:
        params = torch_to_flax_encoder_forecaster(state_dict, model, dtype=dtype)["params"]
        assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {np.dtype(expected)}, dtype
