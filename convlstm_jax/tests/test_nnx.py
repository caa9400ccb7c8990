"""The NNX front: the Linen modules' numbers on the same weights, their errors, and NNX's own ways
(eager params, `nnx.jit`/`nnx.grad`, `train()`/`eval()`). The shared vectors hold it to torch."""

import functools

import chex
import flax.core
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import convlstm_jax
from convlstm_jax import nnx as cnnx
from convlstm_jax.tests._masks import recorded_masks

KEY = jax.random.key(0)
OPTIONS = {"input_dim": 2, "hidden_dim": [4, 3], "kernel_size": [(3, 3), (1, 5)], "num_layers": 2}


def _nnx(**kwargs):
    return cnnx.ConvLSTM(**(OPTIONS | kwargs), rngs=nnx.Rngs(0))


def _linen(**kwargs):
    return convlstm_jax.ConvLSTM(**(OPTIONS | kwargs))


def _input(model, steps=3, batch=2, frame=(7, 6)):
    channels = model.input_dim
    shape = (steps, batch, *frame, channels) if model.channels_last else (steps, batch, channels, *frame)
    if model.batch_first:
        shape = (shape[1], shape[0], *shape[2:])
    return jax.random.normal(KEY, shape)


def _loss(outputs, states):
    return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves((outputs, states)))


CONFIGS = {
    # One convolution over [X, H] in each layer (with XLA's gradients; the others use "auto").
    "fused": ({"return_all_layers": True, "conv_gradient": "xla"}, {}),
    # The input-to-state convolution hoisted out of the loop; channels first, batch first.
    "hoisted": (
        {
            "peephole": "hadamard",
            "bias": False,
            "padding": "valid",
            "stride": [2, 1],
            "dilation": [1, 2],
            "input_kernel_size": [3, 1],
            "batch_first": True,
            "channels_last": False,
            "return_all_layers": True,
        },
        {},
    ),
    # No input; reversed within each length, in the computed order; remat and unroll.
    "no_input": (
        {"input_dim": 0, "peephole": None, "reverse": True, "keep_order": False, "remat": True, "unroll": 2},
        {"seq_lengths": jnp.array([3, 1])},
    ),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_nnx_equals_linen_forward_and_gradients(config):
    kwargs, call = CONFIGS[config]
    model, twin = _nnx(**kwargs), _linen(**kwargs)
    x = _input(model)
    # A stack without input runs on its states; give every config an initial state.
    state = jax.tree.map(lambda s: s + 0.5, model.initialize_carry(x.shape))

    def nnx_loss(model, x, state):
        results = model(x, state, **call)
        return _loss(*results), results

    def linen_loss(params, x, state):
        results = twin.apply({"params": params}, x, state, **call)
        return _loss(*results), results

    grad = functools.partial(nnx.grad, argnums=(0, 1, 2), has_aux=True)
    (grad_model, *grads), results = nnx.jit(grad(nnx_loss))(model, x, state)
    (grad_params, *expected_grads), expected = jax.jit(grad(linen_loss))(cnnx.to_linen(model)["params"], x, state)
    chex.assert_trees_all_close(results, expected, atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(nnx.to_pure_dict(grad_model), grad_params, atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(grads, expected_grads, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("peephole", ["conv", "hadamard", None])
@pytest.mark.parametrize("input_dim", [2, 0])
def test_the_params_mirror_linen(peephole, input_dim):
    model = nnx.eval_shape(lambda: _nnx(peephole=peephole, input_dim=input_dim, input_kernel_size=[5, 1]))
    x = jnp.ones((1, 1, 5, 5, input_dim))
    expected = jax.eval_shape(_linen(peephole=peephole, input_dim=input_dim, input_kernel_size=[5, 1]).init, KEY, x)
    chex.assert_trees_all_equal_shapes_and_dtypes(cnnx.to_linen(model), expected)
    assert set(nnx.to_pure_dict(nnx.state(model))) == {"cell_0", "cell_1"}  # no RNG state without dropout


def test_init_draws_from_torchs_conv2d_distribution():
    params = cnnx.to_linen(cnnx.ConvLSTM(2, 16, 3, 1, peephole=None, rngs=nnx.Rngs(0)))["params"]["cell_0"]
    bound = 1 / np.sqrt((2 + 16) * 9)  # torch's single convolution over [X, H]
    for leaf in jax.tree.leaves(params):
        assert np.abs(leaf).max() <= bound and np.abs(leaf).max() > 0.9 * bound


def test_weights_go_both_ways_bit_for_bit():
    model = _nnx(peephole="hadamard", input_kernel_size=[5, 1])
    variables = _linen(peephole="hadamard", input_kernel_size=[5, 1]).init(KEY, jnp.ones((1, 1, 5, 5, 2)))
    chex.assert_trees_all_equal(cnnx.to_linen(cnnx.from_linen(model, variables)), variables)
    frozen = cnnx.from_linen(_nnx(peephole="hadamard", input_kernel_size=[5, 1]), flax.core.freeze(variables))
    chex.assert_trees_all_equal(cnnx.to_linen(frozen), variables)
    state_dict = cnnx.to_torch(model)
    fresh = cnnx.from_torch(nnx.eval_shape(lambda: _nnx(peephole="hadamard", input_kernel_size=[5, 1])), state_dict)
    chex.assert_trees_all_equal(cnnx.to_linen(fresh), variables)
    chex.assert_trees_all_equal(cnnx.to_torch(fresh), convlstm_jax.flax_to_torch(variables))


def test_from_linen_lists_what_does_not_fit():
    model = nnx.eval_shape(_nnx)
    params = jax.tree.map(lambda p: np.zeros(p.shape, p.dtype), cnnx.to_linen(model)["params"])
    params["cell_1"]["state_to_state"]["kernel"] = np.zeros((3, 3, 3, 12), np.float32)
    params["cell_1"]["extra"] = np.zeros(3, np.float32)
    del params["cell_0"]["input_to_state"]["bias"]
    with pytest.raises(ValueError, match=r"\(3 problem\(s\)\)") as error:
        cnnx.from_linen(model, {"params": params})
    assert "missing cell_0/input_to_state/bias (shape (16,))" in str(error.value)
    assert "unexpected cell_1/extra (shape (3,))" in str(error.value)
    assert "cell_1/state_to_state/kernel has shape (3, 3, 3, 12), expected (1, 5, 3, 12)" in str(error.value)


def test_split_merge_under_jax_jit_and_the_program_does_not_grow_with_sequence_length():
    model = _nnx()
    graphdef, state = nnx.split(model)

    def run(state, x):
        return nnx.merge(graphdef, state)(x)

    x = _input(model)
    chex.assert_trees_all_close(jax.jit(run)(state, x), model(x), atol=1e-6, rtol=1e-6)

    def hlo(steps):
        text = jax.jit(run).lower(state, _input(model, steps, 1, (5, 4))).as_text()
        return text.count("convolution("), text.count("while(") + text.count("stablehlo.while")

    assert hlo(3) == hlo(40)
    assert hlo(3)[1] >= 2  # one while loop per layer


DROPOUT = {"dropout": 0.4, "recurrent_dropout": 0.3, "return_all_layers": True}


def test_dropout_follows_train_eval_and_the_call():
    model = _nnx(**DROPOUT)
    x = _input(model)
    plain = _nnx(return_all_layers=True)(x)
    with pytest.raises(ValueError, match='"deterministic" must be passed'):
        model(x)
    model.eval()
    chex.assert_trees_all_equal(model(x), plain)
    assert not np.allclose(model(x, deterministic=False)[0][-1], plain[0][-1])
    assert not np.allclose(nnx.view(model, deterministic=False)(x)[0][-1], plain[0][-1])
    model.train()
    first, second = model(x), model(x)
    assert not np.allclose(first[0][-1], second[0][-1])  # fresh masks at each call
    chex.assert_trees_all_equal(model(x, deterministic=True), plain)
    # Masks from the call's rngs: the same stream gives the same masks.
    chex.assert_trees_all_equal(model(x, rngs=nnx.Rngs(dropout=7)), model(x, rngs=nnx.Rngs(dropout=7)))


def test_drawn_masks_are_one_per_sequence_like_explicit_ones():
    model = _nnx(**DROPOUT, deterministic=False)
    x = _input(model, frame=(6, 4))
    with recorded_masks() as masks:
        drawn = model(x)
    # One (B, H, W, C) mask per layer and path, the same for every step.
    assert [m.shape for m in masks] == [(2, 6, 4, 2), (2, 6, 4, 4), (2, 6, 4, 4), (2, 6, 4, 3)]
    explicit = _nnx(return_all_layers=True)(x, dropout_masks=[masks[0:2], masks[2:4]])
    chex.assert_trees_all_equal(drawn, explicit)


X = jnp.ones((3, 2, 5, 4, 2))
WRONG_STATES = [(jnp.zeros((2, 5, 4, 4)),) * 2, (jnp.zeros((2, 5, 4, 4)),) * 2]


@pytest.mark.parametrize(
    ("kwargs", "x", "hidden_state", "call"),
    [
        ({}, jnp.ones((2, 5, 4, 2)), None, {}),
        ({}, jnp.ones((3, 2, 5, 4, 3)), None, {}),
        ({"channels_last": False}, X, None, {}),
        ({}, jnp.ones((3, 2, 5, 4, 2), jnp.int32), None, {}),
        ({}, np.ones((0, 2, 5, 4, 2), np.float32), None, {}),
        ({}, [[1.0]], None, {}),
        ({}, X, WRONG_STATES[:1], {}),
        ({}, X, WRONG_STATES, {}),
        ({}, X, None, {"seq_lengths": jnp.array([4, 1])}),
        ({}, X, None, {"seq_lengths": jnp.array([1.0, 2.0])}),
        ({}, X, None, {"dropout_masks": [(None, None)]}),
        ({}, X, None, {"dropout_masks": [(None, None), (None, jnp.ones((2, 5, 4, 4)))]}),
        ({"padding": "valid", "kernel_size": 5}, jnp.ones((3, 2, 3, 3, 2)), None, {}),
    ],
)
def test_bad_input_gives_the_linen_errors(kwargs, x, hidden_state, call):
    with pytest.raises((TypeError, ValueError)) as expected:
        _linen(**kwargs).init(KEY, x, hidden_state, **call)
    with pytest.raises(expected.type) as error:
        nnx.eval_shape(lambda: _nnx(**kwargs))(x, hidden_state, **call)
    assert str(error.value) == str(expected.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"peephole": "paper"},
        {"kernel_size": (2, 3)},
        {"hidden_dim": [4, 4, 4]},
        {"num_layers": 0},
        {"dropout": 1.0},
        {"unroll": 0},
        {"conv_gradient": "fast"},
        {"stride": [1, 2, 3]},
    ],
)
def test_bad_hyperparameters_give_the_linen_errors(kwargs):
    with pytest.raises((TypeError, ValueError)) as expected:
        _linen(**kwargs)
    with pytest.raises(expected.type) as error:
        _nnx(**kwargs)
    assert str(error.value) == str(expected.value)


def test_input_dim_is_required():
    with pytest.raises(TypeError, match="input_dim must be given"):
        cnnx.ConvLSTM(None, 4, 3, 1, rngs=nnx.Rngs(0))


def test_the_cell_runs_in_nnx_rnn_as_a_one_layer_stack():
    cell = cnnx.ConvLSTMCell(2, 4, 3, peephole="hadamard", rngs=nnx.Rngs(0))
    model = cnnx.ConvLSTM(2, 4, 3, 1, peephole="hadamard", batch_first=True, rngs=nnx.Rngs(1))
    cnnx.from_linen(model, {"params": {"cell_0": cnnx.to_linen(cell)["params"]}})
    x = jax.random.normal(KEY, (2, 3, 6, 5, 2))
    outputs, _ = model(x)
    chex.assert_trees_all_close(nnx.RNN(cell)(x), outputs[0], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"carry c must have shape \(2, 6, 5, 4\), got \(2, 6, 5, 3\)"):
        cell((jnp.zeros((2, 6, 5, 4)), jnp.zeros((2, 6, 5, 3))), x[:, 0])


@pytest.mark.parametrize("kwargs", [{}, {"input_kernel_size": 5, "stride": 2, "peephole": None}])
def test_the_cell_equals_the_linen_cell(kwargs):
    cell = cnnx.ConvLSTMCell(2, 4, 3, **kwargs, rngs=nnx.Rngs(0))
    twin = convlstm_jax.ConvLSTMCell(hidden_dim=4, kernel_size=3, **kwargs)  # input_dim from the input
    x = jax.random.normal(KEY, (2, 7, 6, 2))
    carry = cell.initialize_carry(x.shape)
    chex.assert_trees_all_equal_shapes(carry, twin.initialize_carry(KEY, x.shape))
    carry = jax.tree.map(lambda s: s + 0.5, carry)
    chex.assert_trees_all_close(cell(carry, x), twin.apply(cnnx.to_linen(cell), carry, x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_equals_linen_and_converts_to_torch(merge):
    forward = _nnx(batch_first=True, dropout=0.0)
    model = cnnx.Bidirectional(forward, merge, rngs=nnx.Rngs(1))
    assert model.backward_layer.reverse and model.backward_layer.hidden_dim == forward.hidden_dim
    assert model.backward_layer.kernel_size == forward.kernel_size
    x = jax.random.normal(KEY, (2, 4, 5, 5, 2))
    lengths = jnp.array([4, 2])
    twin = convlstm_jax.Bidirectional(_linen(batch_first=True), merge)
    variables = cnnx.to_linen(model)
    assert set(variables["params"]) == {"forward_layer", "backward_layer"}
    chex.assert_trees_all_equal(model(x, seq_lengths=lengths), twin.apply(variables, x, seq_lengths=lengths))
    state_dict = cnnx.to_torch(model)
    assert "backward_layer.cell_list.1.conv.weight" in state_dict
    fresh = nnx.eval_shape(lambda: cnnx.Bidirectional(_nnx(batch_first=True), merge, rngs=nnx.Rngs(2)))
    chex.assert_trees_all_equal(cnnx.to_linen(cnnx.from_torch(fresh, state_dict)), variables)


def test_bidirectional_checks_its_arguments():
    with pytest.raises(ValueError, match=r"merge must be one of \('concat', 'sum'\), got 'mean'"):
        cnnx.Bidirectional(_nnx(), "mean", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"layer must be a convlstm_jax\.nnx\.ConvLSTM, got ConvLSTM"):
        cnnx.Bidirectional(_linen(), rngs=nnx.Rngs(0))
