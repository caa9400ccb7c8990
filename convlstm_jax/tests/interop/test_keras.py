"""`convlstm_jax.from_keras`: a Keras 3 ConvLSTM layer, Bidirectional or stack, read into this library,
computes what Keras computes (the Linen model and its torch twin), and what cannot be read is refused.

Keras runs on the JAX backend. Its own code mixes ranks and dtypes, which the test-wide JAX settings
forbid: every Keras call runs in `keras_jax()`, this library's code outside it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from convlstm_common.tolerance import tolerance_for

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras", reason="needs keras 3 (the interop extra)")
if keras.backend.backend() != "jax":
    pytest.skip(f"needs Keras on the JAX backend, got {keras.backend.backend()!r}", allow_module_level=True)

from convlstm_jax import Bidirectional, torch_module  # noqa: E402
from convlstm_jax.interop.keras import from_keras, keras_gates_to_library  # noqa: E402

TOLERANCE = tolerance_for("float32")
HAS_TORCH = importlib.util.find_spec("torch") is not None  # the sweep compares the torch twin where it can
# Keras's variables' __array__ takes no `copy` (NumPy 2 warns when Keras converts them, saving and loading).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


class _Layers:
    """`keras.layers`, its ConvLSTM layers made with zero kernels: Keras's orthogonal initialiser costs
    seconds a layer on the CPU, and every test gives the weights values of its own."""

    def __getattr__(self, name):
        layer = getattr(keras.layers, name)
        if name.startswith(("ConvLSTM", "LSTM")):
            return functools.partial(layer, kernel_initializer="zeros", recurrent_initializer="zeros")
        return layer


L = _Layers()


@contextlib.contextmanager
def keras_jax():
    """Keras's own JAX code broadcasts ranks and promotes dtypes: allow both while it runs."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def randomise(obj, seed: int) -> None:
    """Gives every weight of a Keras layer or model random values (Keras's orthogonal recurrent
    kernels, zero biases and forget-gate ones would hide a gate-order mistake)."""
    rng = np.random.default_rng(seed)
    with keras_jax():
        for variable in obj.weights:
            variable.assign(rng.normal(scale=0.4, size=variable.shape).astype(variable.dtype))


def weights_of(obj) -> list[np.ndarray]:
    with keras_jax():
        return [np.asarray(keras.ops.convert_to_numpy(variable.value)) for variable in obj.weights]


def keras_outputs(obj, x, **kwargs) -> list[np.ndarray]:
    """What the Keras layer or model returns for `x` (its inference call, compiled once as a whole)."""
    with keras_jax():
        trainable = [v.value for v in obj.trainable_variables]
        non_trainable = [v.value for v in obj.non_trainable_variables]
        outputs, _ = jax.jit(obj.stateless_call)(trainable, non_trainable, x, **kwargs)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(y) for y in outputs]


def last_recurrent(obj):
    """The layer whose settings say what Keras returns: the source, or a model's last layer."""
    return obj.layers[-1] if isinstance(obj, keras.Model) else obj


def ours_as_keras(model, outputs, states, keras_layer) -> list[np.ndarray]:
    """This library's outputs in Keras's structure, as `from_keras`'s docstring says they match."""
    outputs, states = [np.asarray(y) for y in outputs], jax.tree.map(np.asarray, states)
    if isinstance(model, Bidirectional):
        forward, backward = states
        if keras_layer.return_sequences:
            result = [outputs[0]]
        elif model.merge == "sum":
            result = [forward[0][0] + backward[0][0]]
        else:
            result = [np.concatenate([forward[0][0], backward[0][0]], axis=-1)]
        if keras_layer.return_state:
            result += [forward[0][0], forward[0][1], backward[0][0], backward[0][1]]
        return result
    result = [outputs[0] if keras_layer.return_sequences else states[0][0]]
    if keras_layer.return_state:
        result += list(states[0])
    return result


def run_linen(model, variables, x):
    with jax.default_matmul_precision("highest"):
        return jax.jit(model.apply)(variables, x)


def run_twin(model, variables, x):
    """The torch twin's outputs and states, in the Linen model's layout (the twin is channels-first)."""
    import torch

    layer = model.layer if isinstance(model, Bidirectional) else model
    twin = torch_module(model, variables)
    channels_first = np.moveaxis(x, -1, 2) if layer.channels_last else x
    with torch.no_grad():
        outputs, states = twin(torch.from_numpy(np.ascontiguousarray(channels_first)))
    outputs = [y.numpy() for y in outputs]
    states = jax.tree.map(lambda s: s.numpy(), states)
    if layer.channels_last:
        outputs = [np.moveaxis(y, 2, -1) for y in outputs]
        states = jax.tree.map(lambda s: np.moveaxis(s, 1, -1), states)
    return outputs, states


def scores(actual: list[np.ndarray], expected: list[np.ndarray]) -> list[float]:
    assert [a.shape for a in actual] == [e.shape for e in expected]
    return [TOLERANCE.score(a, e) for a, e in zip(actual, expected, strict=True)]


def seq(*layers, shape):
    return keras.Sequential([keras.Input(shape), *layers])


def functional_with_state(shape):
    x = keras.Input(shape)
    y = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(x)
    outputs = L.ConvLSTM2D(2, (1, 3), dilation_rate=2, return_sequences=False, return_state=True)(y)
    return keras.Model(x, outputs)


# name: (a builder of the Keras layer or model, the input's shape (B, T, ...))
CASES = {
    "1d_valid": (lambda: L.ConvLSTM1D(3, 3), (2, 4, 9, 2)),
    "1d_same_backwards_sequences_state": (
        lambda: L.ConvLSTM1D(3, 5, padding="same", go_backwards=True, return_sequences=True, return_state=True),
        (2, 4, 9, 2),
    ),
    "2d_same_dilation_state": (
        lambda: L.ConvLSTM2D(4, 3, padding="same", dilation_rate=2, return_sequences=True, return_state=True),
        (2, 3, 8, 7, 2),
    ),
    "2d_valid_stride_kernel_3x1_no_bias": (
        lambda: L.ConvLSTM2D(3, (3, 1), strides=2, use_bias=False, return_sequences=True),
        (2, 3, 9, 8, 2),
    ),
    "2d_same_stride_on_a_1_axis": (  # "same" with stride 2 where the kernel is 1: no padding either way
        lambda: L.ConvLSTM2D(3, (3, 1), strides=(1, 2), padding="same", return_sequences=True),
        (2, 3, 6, 8, 2),
    ),
    "2d_backwards_last_step": (lambda: L.ConvLSTM2D(3, 3, go_backwards=True, padding="same"), (2, 4, 6, 6, 2)),
    "2d_channels_first": (
        lambda: L.ConvLSTM2D(
            3, 3, padding="same", data_format="channels_first", return_sequences=True, return_state=True
        ),
        (2, 3, 2, 6, 5),
    ),
    "3d_same": (lambda: L.ConvLSTM3D(2, 3, padding="same"), (1, 3, 4, 5, 4, 2)),
    "3d_valid_stride_state": (
        lambda: L.ConvLSTM3D(2, (3, 1, 3), strides=(2, 1, 1), return_sequences=True, return_state=True),
        (1, 3, 5, 3, 4, 2),
    ),
    "bidirectional_concat_sequences_state": (
        lambda: L.Bidirectional(L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True)),
        (2, 3, 6, 5, 2),
    ),
    "bidirectional_sum_last_step": (
        lambda: L.Bidirectional(L.ConvLSTM1D(3, 3, strides=2), merge_mode="sum"),
        (2, 4, 9, 2),
    ),
    "bidirectional_concat_last_step_in_a_model": (
        lambda: seq(L.Bidirectional(L.ConvLSTM2D(2, (3, 5), padding="same")), shape=(None, 5, 6, 2)),
        (2, 3, 5, 6, 2),
    ),
    "bidirectional_sum_channels_first_state": (
        lambda: L.Bidirectional(
            L.ConvLSTM2D(2, 3, data_format="channels_first", return_sequences=True, return_state=True),
            merge_mode="sum",
        ),
        (2, 3, 2, 6, 5),
    ),
    "sequential_3_layers": (
        lambda: seq(
            L.ConvLSTM2D(4, 3, padding="same", go_backwards=True, return_sequences=True),
            L.ConvLSTM2D(3, (3, 1), use_bias=False, return_sequences=True),
            L.ConvLSTM2D(2, 3, padding="same", dilation_rate=2),
            shape=(None, 7, 6, 2),
        ),
        (2, 3, 7, 6, 2),
    ),
    "functional_2_layers_state": (lambda: functional_with_state((None, 6, 7, 2)), (2, 3, 6, 7, 2)),
}


@functools.cache
def keras_case(name: str, seed: int = 0):
    """The case's Keras object, built, with random weights, and its input."""
    builder, shape = CASES[name]
    x = np.random.default_rng(seed + 100).normal(size=shape).astype(np.float32)
    with keras_jax():
        obj = builder()
        if not obj.built:
            obj.build(x.shape)
    randomise(obj, seed)
    return obj, x


def imported(obj):
    with keras_jax():
        return from_keras(obj)


@functools.cache
def build_case(name: str, seed: int = 0):
    """The case's Keras object and input, what Keras returns, and the import."""
    obj, x = keras_case(name, seed)
    return (obj, x, keras_outputs(obj, x), *imported(obj))


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_linen_model_computes_what_keras_computes(name):
    obj, x, expected, model, variables = build_case(name)
    outputs, states = run_linen(model, variables, x)
    worst = scores(ours_as_keras(model, outputs, states, last_recurrent(obj)), expected)
    assert max(worst) <= 1, f"{name}: {worst} x the float32 tolerance"


@pytest.mark.needs_torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_torch_twin_computes_what_keras_computes(name):
    pytest.importorskip("torch")
    obj, x, expected, model, variables = build_case(name)
    outputs, states = run_twin(model, variables, x)
    worst = scores(ours_as_keras(model, outputs, states, last_recurrent(obj)), expected)
    assert max(worst) <= 1, f"{name}: {worst} x the float32 tolerance"


@pytest.mark.parametrize("name", ["1d_same_backwards_sequences_state", "bidirectional_sum_channels_first_state"])
def test_an_initial_state_is_kerass(name):
    obj, x = keras_case(name)
    model, variables = imported(obj)
    layer = model.layer if isinstance(model, Bidirectional) else model
    state_shape = last_recurrent(obj).compute_output_shape(x.shape)[1]
    rng = np.random.default_rng(5)
    initial = [rng.normal(size=state_shape).astype(np.float32) for _ in range(4 if model is not layer else 2)]
    expected = keras_outputs(obj, x, initial_state=initial)
    hidden = [tuple(initial[:2])]
    if isinstance(model, Bidirectional):
        hidden = (hidden, [tuple(initial[2:])])
    with jax.default_matmul_precision("highest"):
        outputs, states = jax.jit(model.apply)(variables, x, hidden)
    worst = scores(ours_as_keras(model, outputs, states, last_recurrent(obj)), expected)
    assert max(worst) <= 1, f"{name}: {worst} x the float32 tolerance"


def test_the_options_are_keras_settings():
    model, variables = imported(keras_case("sequential_3_layers")[0])
    assert model.hidden_dim == (4, 3, 2) and model.kernel_size == ((3, 3), (3, 1), (3, 3))
    assert model.padding == ("same", "valid", "same") and model.dilation == ((1, 1), (1, 1), (2, 2))
    assert model.reverse and not model.keep_order and model.peephole is None and model.batch_first
    assert model.bias and model.input_dim == 2 and model.channels_last
    assert not np.any(variables["params"]["cell_1"]["input_to_state"]["bias"])  # Keras has none there
    model, _ = imported(keras_case("2d_channels_first")[0])
    assert not model.channels_last
    model, _ = imported(keras_case("2d_valid_stride_kernel_3x1_no_bias")[0])
    assert not model.bias and model.stride == (2, 2) and model.padding == "valid"


def test_training_only_settings_are_not_carried():
    with keras_jax():
        layer = L.ConvLSTM1D(2, 3, dropout=0.3, recurrent_dropout=0.2, unroll=True, kernel_regularizer="l2")
        layer.build((1, 2, 5, 1))
        model, _ = from_keras(layer)
    assert model.dropout == 0 and model.recurrent_dropout == 0


def test_the_gates_move_from_keras_order_to_this_librarys():
    blocks = np.repeat(np.arange(4), 2)  # Keras's i, f, c, o, two channels each
    assert keras_gates_to_library(blocks).tolist() == [0, 0, 1, 1, 3, 3, 2, 2]  # i, f, o, g = c


def test_dtype_casts_the_variables_and_sets_param_dtype():
    with keras_jax():
        layer = L.ConvLSTM1D(2, 3)
        layer.build((1, 2, 5, 1))
        model, variables = from_keras(layer, dtype="float64")
    assert model.param_dtype == np.float64
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {np.dtype("float64")}


def test_a_mixed_precision_policy_sets_the_compute_dtype():
    with keras_jax():
        layer = L.ConvLSTM1D(2, 3, dtype="mixed_bfloat16")
        layer.build((1, 2, 5, 1))
        model, variables = from_keras(layer)
    assert model.dtype == jnp.bfloat16 and model.param_dtype == np.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {np.dtype("float32")}


# Files: the weights come from the file, not from the architecture's own.


def saved_stack():
    obj = keras_case("sequential_3_layers")[0]
    with keras_jax():
        other = keras.models.clone_model(obj)
    randomise(other, seed=7)  # the architecture's own weights differ from the file's
    return obj, other


def check_import(obj, source, **kwargs):
    """Importing `source` gives what importing the Keras object `obj` gives (which the cases above hold
    to Keras's outputs): the same module and the same bits."""
    with keras_jax():
        model, variables = from_keras(source, **kwargs)
        expected_model, expected_variables = from_keras(obj)
    assert repr(model) == repr(expected_model)
    assert jax.tree.structure(variables) == jax.tree.structure(expected_variables)
    for leaf, expected in zip(jax.tree.leaves(variables), jax.tree.leaves(expected_variables)):
        np.testing.assert_array_equal(leaf, expected)


def test_a_keras_file_round_trips(tmp_path):
    obj, _ = saved_stack()
    path = tmp_path / "stack.keras"
    with keras_jax():
        obj.save(path)
    check_import(obj, path)
    check_import(obj, str(path))


@pytest.mark.parametrize("form", ["model", "config", "serialized", "keras_file"])
def test_a_weights_file_round_trips_with_its_architecture(tmp_path, form):
    obj, other = saved_stack()
    path = tmp_path / "stack.weights.h5"
    with keras_jax():
        obj.save_weights(path)
        if form == "keras_file":
            architecture = tmp_path / "other.keras"
            other.save(architecture)
        else:
            architecture = {
                "model": other,
                "config": other.get_config(),
                "serialized": keras.saving.serialize_keras_object(other),
            }[form]
    before = weights_of(other)
    check_import(obj, path, architecture=architecture)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(other))), "the architecture was changed"


def test_a_layers_weights_file_is_a_one_layer_models(tmp_path):
    obj = keras_case("bidirectional_concat_sequences_state")[0]
    path = tmp_path / "layer.weights.h5"
    with keras_jax():
        keras.Sequential([keras.Input(obj.get_build_config()["input_shape"][1:]), obj]).save_weights(path)
        other = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    randomise(other, seed=7)
    check_import(obj, path, architecture=other)


def test_a_functional_models_weights_file(tmp_path):
    obj = keras_case("functional_2_layers_state")[0]
    path = tmp_path / "functional.weights.h5"
    with keras_jax():
        obj.save_weights(path)
    check_import(obj, path, architecture=obj.get_config())


# Refusals: each names the layer and the setting.


def built(layer, shape):
    with keras_jax():
        layer.build(shape)
    return layer


def functional(build):
    with keras_jax():
        x = keras.Input((None, 6, 6, 2))
        return keras.Model(x, build(x))


def intermediate_state(x):
    y, _, _ = L.ConvLSTM2D(2, 3, padding="same", return_sequences=True, return_state=True, name="first")(x)
    return L.ConvLSTM2D(2, 3)(y)


def two_inputs():
    with keras_jax():
        x, other = keras.Input((None, 6, 6, 2)), keras.Input((None, 6, 6, 2))
        return keras.Model([x, other], L.ConvLSTM2D(2, 3)(x), name="two")


REFUSED = {
    "two_inputs": (two_inputs, r"Functional 'two' has 2 inputs"),
    "outputs_not_the_last_layers": (
        lambda: functional(lambda x: [y := L.ConvLSTM2D(2, 3, return_sequences=True)(x), L.ConvLSTM2D(2, 3)(y)]),
        r"outputs are not its last layer's \(ConvLSTM2D '.*'\) outputs",
    ),
    "even_kernel": (
        lambda: built(L.ConvLSTM2D(2, (3, 2), name="even"), (1, 2, 6, 6, 1)),
        r"'even' has kernel_size=\(3, 2\).*odd kernels only",
    ),
    "activation": (
        lambda: built(L.ConvLSTM1D(2, 3, activation="relu", name="relu"), (1, 2, 6, 1)),
        r"'relu' has activation='relu'.*tanh only",
    ),
    "recurrent_activation": (
        lambda: built(L.ConvLSTM1D(2, 3, recurrent_activation="hard_sigmoid", name="hard"), (1, 2, 6, 1)),
        r"'hard' has recurrent_activation='hard_sigmoid'.*sigmoid only",
    ),
    "same_with_stride": (
        lambda: built(L.ConvLSTM2D(2, (1, 3), strides=(1, 2), padding="same", name="strided"), (1, 2, 6, 6, 1)),
        r"'strided' has padding=\"same\" with strides=\(1, 2\) and kernel_size=\(1, 3\)",
    ),
    "stateful": (
        lambda: built(L.ConvLSTM1D(2, 3, stateful=True, name="kept"), (1, 2, 6, 1)),
        r"'kept' has stateful=True",
    ),
    "not_built": (lambda: L.ConvLSTM1D(2, 3, name="fresh"), r"'fresh' is not built"),
    "another_layer": (lambda: built(L.LSTM(2, name="lstm"), (1, 2, 3)), r"LSTM 'lstm' is not a ConvLSTM layer"),
    "another_layer_in_a_stack": (
        lambda: seq(L.ConvLSTM2D(2, 3, return_sequences=True), L.Dense(2, name="dense"), shape=(None, 6, 6, 1)),
        r"Dense 'dense' is not a ConvLSTM layer",
    ),
    "bidirectional_of_another_layer": (
        lambda: built(L.Bidirectional(L.LSTM(2, name="lstm")), (1, 2, 3)),
        r"LSTM 'forward_lstm' is not a ConvLSTM layer",
    ),
    "intermediate_last_step": (
        lambda: seq(L.ConvLSTM2D(2, 3, name="first"), L.ConvLSTM1D(2, 3), shape=(None, 6, 6, 1)),
        r"'first' has return_sequences=False but another layer follows it",
    ),
    "intermediate_state": (
        lambda: functional(intermediate_state),
        r"'first' has return_state=True but another layer follows it",
    ),
    "later_go_backwards": (
        lambda: seq(
            L.ConvLSTM2D(2, 3, return_sequences=True),
            L.ConvLSTM2D(2, 3, go_backwards=True, name="later"),
            shape=(None, 8, 8, 1),
        ),
        r"'later' has go_backwards=True and is not the first layer",
    ),
    "mixed_data_formats": (
        lambda: seq(
            L.ConvLSTM2D(2, 3, return_sequences=True, data_format="channels_first"),
            L.ConvLSTM2D(2, 3, padding="same", name="last"),
            shape=(None, 1, 8, 8),
        ),
        r"'last' has another data_format",
    ),
    "bidirectional_among_layers": (
        lambda: seq(
            L.Bidirectional(L.ConvLSTM2D(2, 3, return_sequences=True), name="both"),
            L.ConvLSTM2D(2, 3),
            shape=(None, 8, 8, 1),
        ),
        r"holds Bidirectional 'both' among other layers",
    ),
    "merge_mul": (
        lambda: built(L.Bidirectional(L.ConvLSTM1D(2, 3), merge_mode="mul", name="mul"), (1, 2, 6, 1)),
        r"'mul' has merge_mode='mul'.*\('concat', 'sum'\) only",
    ),
    "merge_ave": (
        lambda: built(L.Bidirectional(L.ConvLSTM1D(2, 3), merge_mode="ave", name="ave"), (1, 2, 6, 1)),
        r"'ave' has merge_mode='ave'",
    ),
    "merge_none": (
        lambda: built(L.Bidirectional(L.ConvLSTM1D(2, 3), merge_mode=None, name="pair"), (1, 2, 6, 1)),
        r"'pair' has merge_mode=None",
    ),
    "concat_channels_first": (
        lambda: built(
            L.Bidirectional(L.ConvLSTM1D(2, 3, data_format="channels_first"), name="cf"),
            (1, 2, 1, 6),
        ),
        r"'cf' has merge_mode=\"concat\" with data_format=\"channels_first\"",
    ),
    "another_backward_layer": (
        lambda: built(
            L.Bidirectional(
                L.ConvLSTM1D(2, 3), backward_layer=L.ConvLSTM1D(2, 3, use_bias=False, go_backwards=True), name="odd"
            ),
            (1, 2, 6, 1),
        ),
        r"'odd''s backward layer differs from its forward layer in bias",
    ),
    "forward_go_backwards": (
        lambda: built(
            L.Bidirectional(L.ConvLSTM1D(2, 3, go_backwards=True), backward_layer=L.ConvLSTM1D(2, 3), name="swap"),
            (1, 2, 6, 1),
        ),
        r"'swap' has a forward layer with go_backwards=True",
    ),
    "not_a_chain": (
        lambda: functional(lambda x: [L.ConvLSTM2D(2, 3, name="a")(x), L.ConvLSTM2D(2, 3, name="b")(x)]),
        r"is not a chain: ConvLSTM2D 'b' does not take the previous layer's output",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_this_library_cannot_compute_is_refused(name):
    builder, message = REFUSED[name]
    with keras_jax():
        source = builder()
        with pytest.raises(ValueError, match=message):
            from_keras(source)


def test_a_weights_file_needs_its_architecture(tmp_path):
    model = seq(L.ConvLSTM1D(2, 3), shape=(None, 6, 1))
    path = tmp_path / "m.weights.h5"
    with keras_jax():
        model.save_weights(path)
        with pytest.raises(ValueError, match=r"holds weights only, no architecture: pass architecture="):
            from_keras(path)
        with pytest.raises(ValueError, match=r"architecture= goes with a \.weights\.h5 file only"):
            from_keras(model, architecture=model)
        unbuilt = keras.Sequential([L.ConvLSTM1D(2, 3)])
        with pytest.raises(ValueError, match=r"is not built, so its weights' shapes are unknown"):
            from_keras(path, architecture=unbuilt.get_config())
        with pytest.raises(ValueError, match=r"config of neither a Sequential nor a functional model"):
            from_keras(path, architecture={"filters": 2})
        with pytest.raises(TypeError, match=r"architecture must be a Keras model or layer"):
            from_keras(path, architecture=3)
        with pytest.raises(ValueError, match=r"do not fit the architecture"):
            from_keras(path, architecture=seq(L.ConvLSTM1D(3, 3), shape=(None, 6, 1)))


def test_other_sources_are_refused(tmp_path):
    with keras_jax():
        with pytest.raises(TypeError, match=r"source must be a Keras layer or model.*got int"):
            from_keras(3)
        with pytest.raises(ValueError, match=r"must be a \.keras or \.weights\.h5 file"):
            from_keras(tmp_path / "model.h5")
        with pytest.raises(FileNotFoundError, match=r"No such Keras file"):
            from_keras(tmp_path / "missing.keras")


# A wider sweep: random stacks of random layers.


@st.composite
def keras_stacks(draw):
    rank = draw(st.sampled_from([1, 2, 3]))
    channels_last = draw(st.booleans())
    depth = draw(st.integers(1, 3))
    frame = draw(st.lists(st.integers(5, 9), min_size=rank, max_size=rank))
    layers = []
    for index in range(depth):
        kernel = tuple(draw(st.lists(st.sampled_from([1, 3]), min_size=rank, max_size=rank)))
        padding = draw(st.sampled_from(["same", "valid"]))
        step = draw(st.sampled_from(["none", "stride", "dilation"]))
        strides = dilation = 1
        if step == "stride":
            # "same" with a stride only on axes whose kernel is 1 (elsewhere it is refused)
            strides = tuple(draw(st.sampled_from([1, 2])) if padding == "valid" or k == 1 else 1 for k in kernel)
        elif step == "dilation":
            dilation = draw(st.sampled_from([1, 2]))
        layers.append(
            {
                "filters": draw(st.integers(1, 3)),
                "kernel_size": kernel,
                "padding": padding,
                "strides": strides,
                "dilation_rate": dilation,
                "use_bias": draw(st.booleans()),
                "data_format": "channels_last" if channels_last else "channels_first",
                "go_backwards": index == 0 and draw(st.booleans()),
                "return_sequences": index < depth - 1 or draw(st.booleans()),
                "return_state": index == depth - 1 and draw(st.booleans()),
            }
        )
    bidirectional = depth == 1 and not layers[0]["go_backwards"] and draw(st.booleans())
    merge = draw(st.sampled_from(["concat", "sum"] if channels_last else ["sum"]))
    return rank, channels_last, frame, layers, bidirectional, merge


@pytest.mark.slow
@given(keras_stacks(), st.integers(0, 2**16))
def test_random_keras_stacks_compute_what_keras_computes(stack, seed):
    rank, channels_last, frame, configs, bidirectional, merge = stack
    shape = (2, 3, *frame, 2) if channels_last else (2, 3, 2, *frame)
    cls = {1: L.ConvLSTM1D, 2: L.ConvLSTM2D, 3: L.ConvLSTM3D}[rank]
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    try:
        with keras_jax():
            layers = [cls(**config) for config in configs]
            if bidirectional:
                obj = L.Bidirectional(layers[0], merge_mode=merge)
            elif len(layers) == 1:
                obj = layers[0]
            else:
                obj = keras.Sequential([keras.Input(shape[1:]), *layers])
            keras_outputs(obj, x)
    except ValueError:  # frames too small for the valid convolutions
        assume(False)
    randomise(obj, seed)
    expected = keras_outputs(obj, x)
    with keras_jax():
        model, variables = from_keras(obj)
    runs = {"linen": run_linen, "torch": run_twin} if HAS_TORCH else {"linen": run_linen}
    for side, run in runs.items():
        outputs, states = run(model, variables, x)
        worst = scores(ours_as_keras(model, outputs, states, last_recurrent(obj)), expected)
        assert max(worst) <= 1, f"{side}: {worst} x the float32 tolerance"


def worst_scores() -> dict[str, float]:
    """The worst tolerance score of each case, Linen and torch twin (for a report; not a test)."""
    result = {}
    for name in sorted(CASES):
        obj, x, expected, model, variables = build_case(name)
        for side, run in (("linen", run_linen), ("torch", run_twin)):
            outputs, states = run(model, variables, x)
            result[f"{name} {side}"] = max(scores(ours_as_keras(model, outputs, states, last_recurrent(obj)), expected))
    return result


def test_every_problem_of_a_model_is_listed_in_one_error():
    with keras_jax():
        stack = seq(
            L.ConvLSTM2D(2, 3, activation="relu", padding="same", strides=2, return_sequences=True, name="first"),
            L.ConvLSTM2D(2, (3, 2), go_backwards=True, return_sequences=True, name="even"),
            L.Dense(2, name="dense"),
            shape=(None, 8, 8, 1),
        )
        with pytest.raises(ValueError) as info:
            from_keras(stack)
    message = str(info.value)
    assert message.startswith("Sequential '") and "5 problem(s)" in message, message
    for phrase in (
        "ConvLSTM2D 'first' has activation='relu'",
        "ConvLSTM2D 'first' has padding=\"same\" with strides=(2, 2)",
        "ConvLSTM2D 'even' has kernel_size=(3, 2)",
        "ConvLSTM2D 'even' has go_backwards=True and is not the first layer",
        "Dense 'dense' is not a ConvLSTM layer",
    ):
        assert f"\n  - {phrase}" in message, (phrase, message)


def test_every_problem_of_a_bidirectional_is_listed_in_one_error():
    with keras_jax():
        wrapper = built(
            L.Bidirectional(L.ConvLSTM1D(2, 4, recurrent_activation="hard_sigmoid", name="r"), merge_mode="mul"),
            (1, 2, 6, 1),
        )
        with pytest.raises(ValueError) as info:
            from_keras(wrapper)
    message = str(info.value)
    assert "problem(s)" in message, message
    for phrase in ("has merge_mode='mul'", "'forward_r' has kernel_size=(4,)", "'backward_r' has recurrent_activation"):
        assert phrase in message, (phrase, message)


@pytest.mark.parametrize(
    "content", [b"", b"PK\x03\x04 the start of an archive, and no more"], ids=["empty", "truncated"]
)
def test_an_empty_or_truncated_keras_file_is_not_a_readable_archive(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with keras_jax():
        with pytest.raises(ValueError, match=r"'.*model\.keras' is not a readable Keras archive") as info:
            from_keras(path)
        assert "File not found" not in str(info.value)
        (tmp_path / "m.weights.h5").write_bytes(b"")
        with pytest.raises(ValueError, match=r"'.*model\.keras' is not a readable Keras archive"):
            from_keras(tmp_path / "m.weights.h5", architecture=path)
