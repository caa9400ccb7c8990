import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_common.tolerance import tolerance_for
from convlstm_jax import ConvLSTM, ConvLSTMCell
from convlstm_jax._cell import normalize

KEY = jax.random.key(0)


def _model(**kwargs):
    options = {"input_dim": None, "hidden_dim": [4, 3], "kernel_size": [(3, 3), (1, 5)], "num_layers": 2}
    return ConvLSTM(**(options | kwargs))


@functools.cache
def _variables(peephole="conv"):
    """Params of `_model(peephole=...)`; they do not depend on the input's B, T, H, W or layout."""
    return _model(peephole=peephole).init(KEY, jnp.ones((1, 1, 5, 4, 2)))


def _init_apply(model, x, hidden_state=None):
    variables = _variables(model.peephole)
    return variables, model.apply(variables, x, hidden_state)


@pytest.mark.parametrize("batch_first", [True, False])
def test_outputs_are_batch_first_channels_last(batch_first):
    x = jnp.ones((5, 7, 6, 4, 2))
    _, (outputs, states) = _init_apply(_model(batch_first=batch_first, return_all_layers=True), x)
    b = 5 if batch_first else 7
    t = 12 - b
    assert [o.shape for o in outputs] == [(b, t, 6, 4, 4), (b, t, 6, 4, 3)]
    assert [s.shape for h_c in states for s in h_c] == [(b, 6, 4, 4)] * 2 + [(b, 6, 4, 3)] * 2
    chex.assert_trees_all_equal(outputs[-1][:, -1], states[-1][0])


def test_channels_first_matches_channels_last():
    x = jax.random.normal(KEY, (2, 3, 5, 4, 2))
    variables, (outputs, states) = _init_apply(_model(return_all_layers=True), x)
    torch_layout = _model(return_all_layers=True, channels_last=False)
    hidden = [(jnp.moveaxis(h, -1, 1), jnp.moveaxis(c, -1, 1)) for h, c in states]
    outputs_cf, states_cf = torch_layout.apply(variables, jnp.moveaxis(x, -1, 2))
    chex.assert_trees_all_close([jnp.moveaxis(o, 2, -1) for o in outputs_cf], outputs, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(states_cf, hidden, rtol=1e-6, atol=1e-6)


def test_param_names_say_what_they_are():
    for peephole, names in [
        ("conv", {"input_to_state", "state_to_state", "peephole_conv_if", "peephole_conv_o"}),
        ("hadamard", {"input_to_state", "state_to_state", "peephole_i", "peephole_f", "peephole_o"}),
        (None, {"input_to_state", "state_to_state"}),
    ]:
        variables = jax.eval_shape(_model(peephole=peephole).init, KEY, jnp.ones((2, 1, 5, 5, 2)))
        assert set(variables["params"]) == {"cell_0", "cell_1"}
        assert set(variables["params"]["cell_0"]) == names
        assert "bias" not in variables["params"]["cell_0"]["state_to_state"]


def test_init_draws_from_torchs_conv2d_distribution():
    variables = ConvLSTM(2, 16, 3, 1, peephole=None).init(KEY, jnp.ones((1, 1, 5, 5, 2)))
    bound = 1 / np.sqrt((2 + 16) * 9)
    for leaf in jax.tree.leaves(variables["params"]["cell_0"]["input_to_state"]):
        assert np.abs(leaf).max() <= bound and np.abs(leaf).max() > 0.9 * bound


def test_the_initial_state_continues_a_sequence():
    model = _model(batch_first=True, return_all_layers=True)
    x = jax.random.normal(KEY, (2, 6, 5, 4, 2))
    variables, (full_outputs, full_states) = _init_apply(model, x)
    head_outputs, head_states = model.apply(variables, x[:, :4])
    tail_outputs, tail_states = model.apply(variables, x[:, 4:], head_states)
    joined = [jnp.concatenate([a, b], axis=1) for a, b in zip(head_outputs, tail_outputs)]
    chex.assert_trees_all_close(joined, full_outputs, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(tail_states, full_states, rtol=1e-5, atol=1e-6)


def test_initialize_carry_is_the_default_state():
    model = _model()
    x = jax.random.normal(KEY, (3, 2, 5, 4, 2))
    variables, expected = _init_apply(model, x)
    carry = model.initialize_carry(KEY, x.shape)
    assert [h.shape for h, _ in carry] == [(2, 5, 4, 4), (2, 5, 4, 3)]
    chex.assert_trees_all_equal(model.apply(variables, x, carry), expected)


def test_jit_grad_and_vmap():
    model = _model(peephole="hadamard")
    x = jax.random.normal(KEY, (3, 2, 5, 4, 2))
    variables = _variables("hadamard")

    def loss(params, x):
        outputs, states = model.apply({"params": params}, x)
        return jnp.sum(outputs[0] ** 2) + jnp.sum(states[0][1])

    grads = jax.jit(jax.grad(loss))(variables["params"], x)
    chex.assert_trees_all_equal_shapes(grads, variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) and bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))

    # vmap over an extra leading axis of independent sequences gives each its own run.
    xs = jnp.stack([x, 2 * x])
    batched = jax.vmap(lambda x: model.apply(variables, x)[0][0])(xs)
    chex.assert_trees_all_close(batched[1], model.apply(variables, 2 * x)[0][0], rtol=1e-5, atol=1e-6)


def test_the_compiled_program_does_not_grow_with_sequence_length():
    model = _model()
    variables = _variables()

    def hlo(steps):
        text = jax.jit(model.apply).lower(variables, jnp.ones((steps, 1, 5, 4, 2))).as_text()
        return text.count("convolution("), text.count("while(") + text.count("stablehlo.while")

    assert hlo(3) == hlo(40)
    assert hlo(3)[1] >= 2  # one while loop per layer


def test_bfloat16_compute_with_float32_params():
    model = _model(dtype=jnp.bfloat16)
    x = jax.random.normal(KEY, (3, 2, 5, 4, 2))
    variables, (outputs, states) = _init_apply(model, x)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
    assert outputs[0].dtype == states[0][0].dtype == jnp.bfloat16
    reference, reference_states = _model().apply(variables, x)
    # The policy's bfloat16 bound, against the float32 run (whose own error is far below it).
    tolerance = tolerance_for("bfloat16")
    for name, ours, theirs in [("output", outputs[0], reference[0]), *zip("hc", states[0], reference_states[0])]:
        assert tolerance.score(np.asarray(ours, np.float32), np.asarray(theirs)) <= 1, name


def test_param_dtype():
    model = _model(param_dtype=jnp.bfloat16, dtype=jnp.bfloat16)
    variables = jax.eval_shape(model.init, KEY, jnp.ones((2, 1, 5, 4, 2), jnp.bfloat16))
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype("bfloat16")}


def test_the_cell_works_in_flax_rnn():
    cell = ConvLSTMCell(hidden_dim=4, kernel_size=3)
    x = jax.random.normal(KEY, (2, 3, 5, 5, 2))  # (B, T, H, W, C)
    rnn = nn.RNN(cell, return_carry=True)
    variables = rnn.init(KEY, x)
    (h, c), outputs = rnn.apply(variables, x)
    stack = ConvLSTM(2, 4, 3, 1, batch_first=True)
    stack_outputs, stack_states = stack.apply({"params": {"cell_0": variables["params"]["cell"]}}, x)
    chex.assert_trees_all_close(outputs, stack_outputs[0], rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close((h, c), stack_states[0], rtol=1e-6, atol=1e-6)


X = jnp.ones((3, 2, 5, 4, 2))
WRONG_STATES = [(jnp.zeros((2, 5, 4, 4)),) * 2, (jnp.zeros((2, 5, 4, 4)),) * 2]


@pytest.mark.parametrize(
    ("model", "x", "hidden_state", "error", "match"),
    [
        (
            _model(),
            jnp.ones((2, 5, 4, 2)),
            None,
            ValueError,
            r"x must be 5-D \(T, B, H, W, C\), got shape \(2, 5, 4, 2\)",
        ),
        (_model(input_dim=3), X, None, ValueError, r"x has 2 channels .*; input_dim is 3"),
        (_model(input_dim=3, channels_last=False), X, None, ValueError, r"x has 5 channels \(\(T, B, C, H, W\)"),
        (
            _model(),
            jnp.ones((3, 2, 5, 4, 2), jnp.int32),
            None,
            TypeError,
            "x must have a floating-point dtype, got int32",
        ),
        (
            _model(),
            np.ones((0, 2, 5, 4, 2), np.float32),
            None,
            ValueError,
            "must not have an empty dimension but channels",
        ),
        (_model(), [[1.0]], None, TypeError, "x must be an array, got list"),
        (_model(), X, WRONG_STATES[:1], ValueError, r"list of 2 \(h, c\) pairs, one per layer; got 1"),
        (
            _model(),
            X,
            WRONG_STATES,
            ValueError,
            r"hidden_state\[1\] h must have shape \(B, H, W, hidden_dim\) = \(2, 5, 4, 3\), got \(2, 5, 4, 4\)",
        ),
        (
            _model(channels_last=False),
            jnp.ones((3, 2, 2, 5, 4)),
            WRONG_STATES,
            ValueError,
            r"hidden_state\[0\] h must have shape \(B, hidden_dim, H, W\) = \(2, 4, 5, 4\), got \(2, 5, 4, 4\)",
        ),
    ],
)
def test_bad_input_is_explained(model, x, hidden_state, error, match):
    with pytest.raises(error, match=match):
        model.init(KEY, x, hidden_state)


@pytest.mark.parametrize(
    ("options", "x", "match"),
    [
        ({}, jnp.ones((3, 2, 5, 4, 3)), r"x has 3 channels \(\(T, B, H, W, C\) \(3, 2, 5, 4, 3\)\); the params"),
        ({}, jnp.ones((3, 2, 2, 5, 4)), r"x has 4 channels \(\(T, B, H, W, C\) \(3, 2, 2, 5, 4\)\); the params"),
        (
            {"channels_last": False},
            jnp.ones((3, 2, 5, 4, 2)),
            r"x has 5 channels \(\(T, B, C, H, W\) \(3, 2, 5, 4, 2\)\); the params",
        ),
        ({"input_kernel_size": 1, "peephole": None}, jnp.ones((3, 2, 5, 4, 1)), r"x has 1 channels .*; the params"),
    ],
    ids=["more-channels", "channels-first-frames", "channels-last-frames", "input-kernels"],
)
def test_channels_read_from_x_at_init_are_held_to_the_params_after(options, x, match):
    """input_dim None: the params hold the channels x had at init (2 here); x with others is refused
    by name, as against an input_dim, eagerly and under jit, not by Flax's error about a parameter's
    shape. (x with the init's channels runs: the other tests apply these params.)"""
    model = _model(**options)
    variables = _variables() if "input_kernel_size" not in options else model.init(KEY, jnp.ones((1, 1, 5, 4, 2)))
    for apply in (model.apply, jax.jit(model.apply)):
        with pytest.raises(ValueError, match=match + r" were made for 2 \(input_dim None: read from x at init\)\."):
            apply(variables, x)


@pytest.mark.parametrize("channels_last", [True, False])
def test_a_normalised_stack_takes_frames_of_its_frame_size_and_names_any_other(channels_last):
    """The frame is checked in either layout before the state is: a state made for frame_size
    does not hide that x's frames are another size."""
    model = _model(layer_norm=True, frame_size=(5, 4), channels_last=channels_last)

    def frames(h, w):
        return jnp.ones((3, 2, h, w, 2) if channels_last else (3, 2, 2, h, w))

    def states(h, w):
        layout = (lambda n: (2, h, w, n)) if channels_last else (lambda n: (2, n, h, w))
        return [(jnp.zeros(layout(4)),) * 2, (jnp.zeros(layout(3)),) * 2]

    variables = model.init(KEY, frames(5, 4))
    outputs, _ = model.apply(variables, frames(5, 4), states(5, 4))
    assert outputs[-1].shape == ((2, 3, 5, 4, 3) if channels_last else (2, 3, 3, 5, 4))
    for hidden_state in (None, states(5, 4)):
        with pytest.raises(ValueError, match=r"frames of 5x4 \(frame_size\), got frames of 6x4"):
            model.apply(variables, frames(6, 4), hidden_state)


def _layer_norm_in_float64(z, scale, bias):
    z = np.asarray(z, np.float64)
    axes = tuple(range(1, z.ndim))
    centred = z - z.mean(axes, keepdims=True)
    return centred / np.sqrt(np.square(centred).mean(axes, keepdims=True) + 1e-5) * scale + bias


@pytest.mark.parametrize("offset", [0.0, 3.0])
def test_the_layer_norm_is_exact_in_float64_and_rounded_once_in_bfloat16(offset):
    """The norm's mean and variance are never computed below float32 nor cast down to it."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 6, 5, 12)) + offset
    norm = {"scale": rng.normal(size=(6, 5, 12)), "bias": rng.normal(size=(6, 5, 12))}
    with jax.enable_x64(True):
        actual = np.asarray(normalize(jnp.asarray(z), norm, jnp.float64))
    score = tolerance_for("float64").score(actual, _layer_norm_in_float64(z, norm["scale"], norm["bias"]))
    assert score <= 1, f"float64: {score:.3g} x the float64 tolerance"

    # bfloat16 in and out, no scale or shift: rounded once from the exact norm of the bfloat16
    # inputs (measured: within half an ulp); statistics in bfloat16 are off by tens of ulps or more.
    narrow = jnp.asarray(z, jnp.bfloat16)
    ones = {"scale": np.ones(z.shape[1:], np.float32), "bias": np.zeros(z.shape[1:], np.float32)}
    actual = np.asarray(normalize(narrow, ones, jnp.bfloat16), np.float64)
    exact = _layer_norm_in_float64(narrow.astype(jnp.float32), 1.0, 0.0)
    ulp = np.spacing(np.abs(exact).astype(np.float32)) * 2.0**16  # bfloat16 keeps 16 fewer bits
    assert np.max(np.abs(actual - exact) / ulp) <= 1, "bfloat16 statistics lose more than an ulp"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"peephole": "paper"}, ValueError, "peephole must be one of"),
        ({"kernel_size": (2, 3)}, ValueError, "must be odd"),
        ({"hidden_dim": [4, 4, 4]}, ValueError, "hidden_dim must have one entry per layer: num_layers is 2, got 3"),
        ({"num_layers": 0}, ValueError, "num_layers must be a positive int, got 0"),
    ],
)
def test_bad_hyperparameters_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        _model(**kwargs)


def test_cell_checks_its_step():
    cell = ConvLSTMCell(hidden_dim=4, input_dim=2)
    carry = cell.initialize_carry(KEY, (2, 5, 5, 2))
    with pytest.raises(ValueError, match=r"inputs must have shape \(B, H, W, 2\), got \(2, 5, 5, 3\)"):
        cell.init(KEY, carry, jnp.ones((2, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"carry c must have shape \(2, 5, 5, 4\), got \(2, 5, 5, 3\)"):
        cell.init(KEY, (carry[0], jnp.zeros((2, 5, 5, 3))), jnp.ones((2, 5, 5, 2)))


def test_a_list_of_kernels_is_one_per_layer_even_after_flax_freezes_it():
    # Flax turns list fields into tuples; [3, 1] must stay "3x3, then 1x1", not one 3x1 kernel.
    model = ConvLSTM(1, [4, 3], [3, 1], 2, input_kernel_size=[5, 1])
    params = jax.eval_shape(model.init, KEY, jnp.ones((1, 1, 5, 5, 1)))["params"]
    assert params["cell_0"]["state_to_state"]["kernel"].shape == (3, 3, 4, 16)
    assert params["cell_0"]["input_to_state"]["kernel"].shape == (5, 5, 1, 16)
    assert params["cell_1"]["state_to_state"]["kernel"].shape == (1, 1, 3, 12)
    assert params["cell_1"]["input_to_state"]["kernel"].shape == (1, 1, 4, 12)


def test_other_input_kernels_add_two_convolutions():
    cell = ConvLSTMCell(hidden_dim=4, kernel_size=1, input_kernel_size=(5, 3), peephole=None)
    x = jax.random.normal(KEY, (2, 6, 5, 3))
    carry = cell.initialize_carry(KEY, x.shape)
    params = cell.init(KEY, carry, x)["params"]
    (h, c), _ = cell.apply({"params": params}, carry, x)
    kx, b = params["input_to_state"]["kernel"], params["input_to_state"]["bias"]
    z = jax.lax.conv_general_dilated(x, kx, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b.reshape(
        1, 1, 1, -1
    )
    z_i, _, z_o, z_g = jnp.split(z, 4, axis=-1)  # zero state: the state-to-state part adds nothing
    c_expected = nn.sigmoid(z_i) * jnp.tanh(z_g)
    chex.assert_trees_all_close((h, c), (nn.sigmoid(z_o) * jnp.tanh(c_expected), c_expected), atol=1e-6)


def test_a_stack_without_input_runs_on_its_states():
    model = ConvLSTM(0, [4, 3], 3, 2, batch_first=True, peephole="hadamard")
    x = jnp.zeros((2, 5, 6, 4, 0))
    variables = model.init(KEY, x)
    assert "input_to_state" not in variables["params"]["cell_0"]
    assert set(variables["params"]["cell_0"]["state_to_state"]) == {"kernel", "bias"}
    state = [(jnp.ones((2, 6, 4, h)), jnp.ones((2, 6, 4, h))) for h in (4, 3)]
    outputs, _ = model.apply(variables, x, state)
    assert outputs[0].shape == (2, 5, 6, 4, 3)
    with pytest.raises(ValueError, match="x has 1 channels"):
        model.apply(variables, jnp.zeros((2, 5, 6, 4, 1)))
