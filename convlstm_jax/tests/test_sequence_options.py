"""Direction, variable lengths, dropout and the bidirectional wrapper (the shared vectors hold the
numbers against the torch reference; these tests hold the semantics)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_jax import Bidirectional, ConvLSTM
from convlstm_jax._convlstm import flip_sequences
from convlstm_jax.tests._masks import recorded_masks

KEY = jax.random.key(0)
X = jax.random.normal(KEY, (3, 5, 6, 4, 2))


def _model(**kwargs):
    options = {"input_dim": None, "hidden_dim": [4, 3], "kernel_size": 3, "num_layers": 2, "batch_first": True}
    return ConvLSTM(**(options | {"return_all_layers": True} | kwargs))


VARIABLES = _model().init(KEY, X[:1, :1])


def test_flip_sequences_reverses_within_each_length_and_is_an_involution():
    x = jnp.arange(12).reshape(3, 4)
    lengths = jnp.array([4, 2, 0])
    np.testing.assert_array_equal(flip_sequences(x, lengths, 1), [[3, 2, 1, 0], [5, 4, 6, 7], [8, 9, 10, 11]])
    np.testing.assert_array_equal(flip_sequences(flip_sequences(x, lengths, 1), lengths, 1), x)
    np.testing.assert_array_equal(flip_sequences(x.T, lengths, 0), flip_sequences(x, lengths, 1).T)


def test_reverse_is_the_forward_model_on_the_reversed_sequence():
    outputs, states = _model(reverse=True).apply(VARIABLES, X)
    expected_outputs, expected_states = _model().apply(VARIABLES, X[:, ::-1])
    chex.assert_trees_all_close(outputs, [y[:, ::-1] for y in expected_outputs])
    chex.assert_trees_all_close(states, expected_states)
    computed_order, _ = _model(reverse=True, keep_order=False).apply(VARIABLES, X)
    chex.assert_trees_all_close(computed_order, expected_outputs)


@pytest.mark.parametrize("reverse", [False, True])
def test_each_sequence_stops_at_its_length(reverse):
    lengths = [5, 2, 0]
    model = _model(reverse=reverse)
    outputs, states = model.apply(VARIABLES, X, seq_lengths=jnp.array(lengths))
    for b, length in enumerate(lengths):
        ours = jax.tree.map(lambda s, b=b: s[b], states)
        if length == 0:  # outputs zero, the initial (zero) state untouched
            chex.assert_trees_all_equal(ours, jax.tree.map(jnp.zeros_like, ours))
            chex.assert_trees_all_equal([y[b] for y in outputs], [jnp.zeros_like(y[b]) for y in outputs])
            continue
        alone_outputs, alone_states = model.apply(VARIABLES, X[b : b + 1, :length])
        chex.assert_trees_all_close(ours, jax.tree.map(lambda s: s[0], alone_states), atol=1e-6)
        for y, alone in zip(outputs, alone_outputs):
            np.testing.assert_array_equal(y[b, length:], 0.0)
            chex.assert_trees_all_close(y[b, :length], alone[0], atol=1e-6)


def test_seq_lengths_work_under_jit_and_are_checked():
    model = _model()
    run = jax.jit(lambda v, x, n: model.apply(v, x, seq_lengths=n))
    chex.assert_trees_all_close(run(VARIABLES, X, jnp.array([5, 5, 5])), model.apply(VARIABLES, X))
    for lengths, error, match in [
        (jnp.array([5.0, 5.0, 5.0]), TypeError, r"seq_lengths must be an int array of shape \(3,\)"),
        (jnp.array([5, 5]), ValueError, r"seq_lengths must have shape \(B,\) = \(3,\), got \(2,\)"),
        (jnp.array([6, 5, 5]), ValueError, r"seq_lengths must lie in \[0, T\] = \[0, 5\], got values in \[5, 6\]"),
        (jnp.array([-1, 5, 5]), ValueError, r"must lie in \[0, T\]"),
    ]:
        with pytest.raises(error, match=match):
            model.apply(VARIABLES, X, seq_lengths=lengths)


def test_dropout_is_off_when_deterministic_and_needs_to_be_told():
    model = _model(dropout=0.4, recurrent_dropout=0.3)
    chex.assert_trees_all_close(model.apply(VARIABLES, X, deterministic=True), _model().apply(VARIABLES, X))
    with pytest.raises(ValueError, match='"deterministic" must be passed'):
        model.apply(VARIABLES, X)
    drawn = model.apply(VARIABLES, X, deterministic=False, rngs={"dropout": KEY})
    assert not np.allclose(drawn[0][-1], _model().apply(VARIABLES, X)[0][-1])


def test_drawn_masks_are_one_per_sequence_like_explicit_ones():
    model = _model(dropout=0.4, recurrent_dropout=0.3)
    with recorded_masks() as masks:
        drawn = model.apply(VARIABLES, X, deterministic=False, rngs={"dropout": KEY})
    # One (B, H, W, C) mask per layer and path, the same for every step.
    assert [m.shape for m in masks] == [(3, 6, 4, 2), (3, 6, 4, 4), (3, 6, 4, 4), (3, 6, 4, 3)]
    explicit = _model().apply(VARIABLES, X, dropout_masks=[masks[0:2], masks[2:4]])
    chex.assert_trees_all_close(drawn, explicit)


def test_dropout_hyperparameters_and_masks_are_checked():
    with pytest.raises(ValueError, match=r"dropout must be a rate in \[0, 1\), got 1.0"):
        _model(dropout=1.0)
    with pytest.raises(ValueError, match="recurrent_dropout must be a rate"):
        _model(recurrent_dropout=-0.1)
    model = _model()
    with pytest.raises(ValueError, match=r"dropout_masks must be a list of 2 \(input_mask, state_mask\) pairs"):
        model.apply(VARIABLES, X, dropout_masks=[(None, None)])
    with pytest.raises(ValueError, match=r"dropout_masks\[1\] state_mask must have shape \(3, 6, 4, 3\)"):
        model.apply(VARIABLES, X, dropout_masks=[(None, None), (None, jnp.ones((3, 6, 4, 4)))])


@pytest.mark.parametrize(("merge", "channels"), [("concat", 6), ("sum", 3)])
def test_bidirectional_merges_a_forward_and_a_reversed_copy(merge, channels):
    layer = ConvLSTM(None, 3, 3, 1, batch_first=True)
    model = Bidirectional(layer, merge)
    variables = model.init(KEY, X)
    assert set(variables["params"]) == {"forward_layer", "backward_layer"}
    outputs, (forward_states, backward_states) = model.apply(variables, X)
    assert outputs[0].shape == (3, 5, 6, 4, channels)
    forward = layer.apply({"params": variables["params"]["forward_layer"]}, X)
    backward = layer.clone(reverse=True).apply({"params": variables["params"]["backward_layer"]}, X)
    merged = (
        jnp.concatenate([forward[0][0], backward[0][0]], -1) if merge == "concat" else forward[0][0] + backward[0][0]
    )
    chex.assert_trees_all_close(outputs[0], merged)
    chex.assert_trees_all_close((forward_states, backward_states), (forward[1], backward[1]))


def test_bidirectional_checks_its_arguments():
    with pytest.raises(ValueError, match=r"merge must be one of \('concat', 'sum'\), got 'mean'"):
        Bidirectional(ConvLSTM(None, 3, 3, 1), "mean")
    with pytest.raises(TypeError, match=r"layer must be a convlstm_jax\.ConvLSTM"):
        Bidirectional("ConvLSTM")


def test_stride_padding_and_dilation_shape_the_state():
    model = _model(padding=["valid", "same"], stride=[1, 2], dilation=[2, 1], return_all_layers=True)
    x = jax.random.normal(KEY, (2, 3, 9, 8, 2))
    variables = model.init(KEY, x)
    outputs, states = model.apply(variables, x)
    assert model.state_sizes((9, 8)) == [(5, 4), (3, 2)]
    assert [y.shape for y in outputs] == [(2, 3, 5, 4, 4), (2, 3, 3, 2, 3)]
    assert [s[0].shape for s in states] == [(2, 5, 4, 4), (2, 3, 2, 3)]
    assert jax.tree.map(jnp.shape, model.initialize_carry(KEY, x.shape)) == jax.tree.map(jnp.shape, states)
    # The state-to-state convolution keeps the state's size; the input-to-state one is run once
    # over every frame (its output is the first layer's W_x * X + b at every step).
    cell_params = variables["params"]["cell_0"]
    kernel, bias = cell_params["input_to_state"]["kernel"], cell_params["input_to_state"]["bias"]
    z = jax.lax.conv_general_dilated(
        x[:, 0], kernel, (1, 1), "VALID", rhs_dilation=(2, 2), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    assert z.shape == (2, 5, 4, 16) and bias.shape == (16,)
    with pytest.raises(ValueError, match=r"Frames of 4x8 are too small for the input-to-state convolution"):
        model.apply(variables, x[:, :, :4])
    with pytest.raises(ValueError, match=r"hidden_state\[1\] h must have shape .* = \(2, 3, 2, 3\)"):
        model.apply(variables, x, [states[0], (states[0][0], states[0][1])])
