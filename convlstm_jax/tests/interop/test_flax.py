"""`convlstm_jax.from_flax`: Flax's own `nn.ConvLSTMCell` parameters, held to Flax's module."""

from __future__ import annotations

from collections.abc import Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization
from hypothesis import given
from hypothesis import strategies as st

from convlstm_common.tolerance import tolerance_for
from convlstm_jax import Bidirectional, from_flax

FLOAT32 = tolerance_for("float32")


class _FlaxStack(nn.Module):
    """Stacked `nn.RNN(nn.ConvLSTMCell)` layers, returning the last layer's outputs and each carry."""

    features: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        carries = []
        for features, kernel in zip(self.features, self.kernels):
            carry, x = nn.RNN(nn.ConvLSTMCell(features, kernel, use_bias=self.use_bias), return_carry=True)(x)
            carries.append(carry)
        return x, carries


def _randomise(variables, seed=1):
    # Flax draws biases at zero: give every param its own values, so that a lost bias or a gate
    # in the wrong place shows.
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)])


CASES = {
    "one layer": ((8,), ((3, 3),), (2, 4, 7, 6, 3), True),
    "two layers": ((5, 3), ((3, 3), (1, 1)), (2, 3, 6, 5, 2), True),
    "no bias": ((4,), ((5, 3),), (1, 3, 7, 6, 2), False),
    "signals": ((4, 3), ((3,), (5,)), (2, 4, 9, 2), True),
    "volumes": ((3,), ((3, 1, 3),), (1, 2, 3, 4, 5, 2), True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_model_computes_what_flaxs_stack_computes(name):
    features, kernels, shape, use_bias = CASES[name]
    flax_model = _FlaxStack(features, kernels, use_bias)
    x = jax.random.normal(jax.random.key(0), shape)
    flax_variables = _randomise(flax_model.init(jax.random.key(2), x))
    model, variables = from_flax(flax_variables)
    with jax.default_matmul_precision("highest"):
        expected, carries = flax_model.apply(flax_variables, x)
        [outputs], [last] = model.apply(variables, x)
        every_output, states = model.clone(return_all_layers=True).apply(variables, x)
    assert FLOAT32.score(outputs, expected) <= 1
    assert last is states[-1] or all(np.array_equal(a, b) for a, b in zip(last, states[-1]))
    assert len(states) == len(carries) == len(every_output)
    for (h, c), (flax_c, flax_h) in zip(states, carries, strict=True):  # Flax's carry is (c, h)
        assert FLOAT32.score(h, flax_h) <= 1 and FLOAT32.score(c, flax_c) <= 1


def test_one_cell_step_by_step():
    cell = nn.ConvLSTMCell(4, (3, 3))
    x = jax.random.normal(jax.random.key(0), (2, 3, 6, 5, 2))
    carry = cell.initialize_carry(jax.random.key(1), x[:, 0].shape)
    params = _randomise(cell.init(jax.random.key(2), carry, x[:, 0]))["params"]
    model, variables = from_flax(params)  # the cell's params themselves: {"ih": ..., "hh": ...}
    with jax.default_matmul_precision("highest"):
        for t in range(x.shape[1]):
            carry, _ = cell.apply({"params": params}, carry, x[:, t])
        _, [(h, c)] = model.apply(variables, x)
    assert FLOAT32.score(h, carry[1]) <= 1 and FLOAT32.score(c, carry[0]) <= 1


def test_the_model_keeps_flaxs_options_and_a_dtype_is_applied():
    model, variables = from_flax(_cell_params(4, (3, 3), 2), dtype=jnp.bfloat16)
    assert (model.forget_bias, model.peephole, model.batch_first, model.channels_last) == (1.0, None, True, True)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {np.dtype(jnp.bfloat16)}


def _cell_params(features, kernel, channels, **options):
    cell = nn.ConvLSTMCell(features, kernel, **options)
    shape = (1, *(7,) * len(kernel), channels)
    return cell.init(jax.random.key(0), cell.initialize_carry(jax.random.key(1), shape), jnp.ones(shape))["params"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ih": {"kernel": np.zeros((2, 2, 1, 8))}, "hh": {"kernel": np.zeros((2, 2, 2, 8))}}, "even kernel"),
        ({"ih": {"kernel": np.zeros((3, 3, 1, 8))}, "hh": {"kernel": np.zeros((1, 1, 2, 8))}}, "not one kernel size"),
        ({"ih": {"kernel": np.zeros((3, 3, 1, 8)), "bias": np.zeros(8)}, "hh": {"kernel": np.zeros((3, 3, 2, 8))}},
         "a bias on one of ih and hh only"),
        ({"RNN_0": _cell_params(4, (3, 3), 2), "RNN_1": _cell_params(3, (3, 3), 5)}, "reads 5 channels"),
        ({"RNN_0": _cell_params(4, (3, 3), 2), "RNN_1": _cell_params(3, (3, 3), 4, use_bias=False)},
         "cells with biases"),
        ({"dense": {"kernel": np.zeros((3, 4))}}, "hold no flax.linen.ConvLSTMCell"),
    ],
)  # fmt: skip
def test_what_cannot_be_represented_is_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        from_flax(params)


def test_params_must_be_a_mapping():
    with pytest.raises(TypeError, match="params must be a mapping"):
        from_flax([np.zeros(3)])


# The trees users build. Each module returns its outputs, as Flax's `nn.RNN` does.


class _Named(nn.Module):
    """Cells named by the user, in a compact module: their params are `{name: cell}`."""

    names: tuple[str, ...]
    features: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for name, features in zip(self.names, self.features):
            x = nn.RNN(nn.ConvLSTMCell(features, (3, 3), name=name))(x)
        return x


class _Block(nn.Module):
    features: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for features in self.features:
            x = nn.RNN(nn.ConvLSTMCell(features, (3, 3)))(x)
        return x


class _Nested(nn.Module):
    """Blocks named so that their alphabetical order is not their call order."""

    @nn.compact
    def __call__(self, x):
        return _Block((3, 5), name="alpha")(_Block((4,), name="zeta")(x))


class _Scanned(nn.Module):
    """Cells lifted by `nn.scan` over time (params broadcast), as before `nn.RNN`."""

    features: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for features in self.features:
            scan = nn.scan(
                nn.ConvLSTMCell, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1
            )
            carry = nn.ConvLSTMCell(features, (3, 3), parent=None).initialize_carry(jax.random.key(0), x[:, 0].shape)
            _, x = scan(features, (3, 3))(carry, x)
        return x


class _InSetup(nn.Module):
    """An `nn.Bidirectional` made in `setup`: its params are `bi/forward_rnn/cell`, `bi/backward_rnn/cell`."""

    features: int

    def setup(self):
        self.bi = _flax_bidirectional(self.features)

    def __call__(self, x):
        return self.bi(x)


def _flax_bidirectional(features, kernel=(3, 3)):
    return nn.Bidirectional(nn.RNN(nn.ConvLSTMCell(features, kernel)), nn.RNN(nn.ConvLSTMCell(features, kernel)))


TREES = {
    "named cells": (_Named(("encoder", "decoder"), (4, 4)), 4),
    "named cells of other sizes": (_Named(("zulu", "alpha", "mike"), (3, 5, 2)), 2),
    "nn.Sequential": (nn.Sequential([nn.RNN(nn.ConvLSTMCell(f, (3, 3))) for f in (4, 3, 2)]), 2),
    "nested modules": (_Nested(), 2),
    "nn.scan-lifted cells": (_Scanned((4, 3)), 2),
    "nn.Bidirectional": (_flax_bidirectional(4), 3),
    "nn.Bidirectional in setup": (_InSetup(3), 2),
}


def _in_the_order_of(original, randomised):
    """`randomised` (whose dicts JAX has sorted) with the keys in `original`'s order, as `init` made them."""
    if isinstance(original, Mapping):
        return {key: _in_the_order_of(value, randomised[key]) for key, value in original.items()}
    return randomised


def _flax_and_ours(flax_model, channels, transform=lambda variables: variables, **options):
    """Flax's outputs, and those of `from_flax`'s model on Flax's (transformed) variables."""
    x = jax.random.normal(jax.random.key(0), (2, 3, 5, 4, channels))
    flax_variables = flax_model.init(jax.random.key(2), x)
    flax_variables = _in_the_order_of(flax_variables, _randomise(flax_variables))
    model, variables = from_flax(transform(flax_variables), **options)
    expected = flax_model.apply(flax_variables, x)
    outputs, _ = model.apply(variables, x)
    return expected, outputs[-1], model


@pytest.mark.parametrize("name", sorted(TREES))
def test_the_trees_users_build_compute_what_flax_computes(name):
    expected, outputs, _ = _flax_and_ours(*TREES[name])
    assert outputs.shape == expected.shape
    assert FLOAT32.score(outputs, expected) <= 1


def test_a_flax_bidirectional_is_this_librarys_bidirectional_with_flaxs_carries():
    flax_model = _flax_bidirectional(3)
    x = jax.random.normal(jax.random.key(0), (2, 4, 6, 5, 2))
    flax_variables = flax_model.init(jax.random.key(2), x)
    flax_variables = _randomise(flax_variables)
    model, variables = from_flax(flax_variables)
    assert isinstance(model, Bidirectional) and model.merge == "concat"
    (flax_forward, flax_backward), expected = flax_model.apply(flax_variables, x, return_carry=True)
    outputs, ([forward], [backward]) = model.apply(variables, x)
    assert FLOAT32.score(outputs[0], expected) <= 1
    for (h, c), (flax_c, flax_h) in ((forward, flax_forward), (backward, flax_backward)):
        assert FLOAT32.score(h, flax_h) <= 1 and FLOAT32.score(c, flax_c) <= 1


def _sorted_by_jax(variables):
    return jax.tree.map(lambda leaf: leaf, variables)  # JAX rebuilds dicts with their keys sorted


def _msgpack_round_trip(variables):
    return serialization.msgpack_restore(serialization.msgpack_serialize(variables))


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        ("named cells", flax.core.freeze),
        ("named cells", serialization.to_state_dict),
        ("nn.Sequential", _sorted_by_jax),
        ("nn.scan-lifted cells", _msgpack_round_trip),
        ("nn.Bidirectional", _sorted_by_jax),
        ("nn.Bidirectional in setup", _msgpack_round_trip),
    ],
)
def test_trees_whose_order_survives_freezing_serialisation_or_sorting_are_read(name, transform):
    expected, outputs, _ = _flax_and_ours(*TREES[name], transform=transform)
    assert FLOAT32.score(outputs, expected) <= 1


@pytest.mark.parametrize("transform", [_sorted_by_jax, _msgpack_round_trip])
def test_flaxs_numbered_names_give_the_order_of_sorted_keys(transform):
    # nn.Sequential's layers_0, ..., layers_10, sorted as strings: layers_10 comes before layers_2.
    hidden = range(1, 12)
    params = {
        f"layers_{index}": {
            "cell": {
                "ih": {"kernel": np.zeros((1, 1, h - 1 or 2, 4 * h))},
                "hh": {"kernel": np.zeros((1, 1, h, 4 * h))},
            }
        }
        for index, h in enumerate(hidden)
    }
    model, _ = from_flax(transform({"params": params}))
    assert list(model.hidden_dim) == list(hidden)


@pytest.mark.parametrize("transform", [_sorted_by_jax, _msgpack_round_trip])
@pytest.mark.parametrize("name", ["named cells", "nested modules"])
def test_named_cells_whose_keys_were_sorted_are_refused_unless_the_order_is_given(name, transform):
    flax_model, channels = TREES[name]
    with pytest.raises(ValueError, match=r"cannot tell in which order .* pass order="):
        _flax_and_ours(flax_model, channels, transform=transform)
    order = {
        "named cells": ["encoder", "decoder"],
        "nested modules": ["zeta/ConvLSTMCell_0", "alpha/ConvLSTMCell_0", "alpha/ConvLSTMCell_1"],
    }[name]
    expected, outputs, _ = _flax_and_ours(flax_model, channels, transform=transform, order=order)
    assert FLOAT32.score(outputs, expected) <= 1


def _params_of(flax_model, channels):
    return flax_model.init(jax.random.key(0), jnp.ones((1, 2, 5, 4, channels)))["params"]


def _refusals():
    cell = _cell_params(4, (3, 3), 2)
    bidirectional = _params_of(_flax_bidirectional(4), 2)
    return {
        "a head after the stack": ({"RNN_0": {"cell": cell}, "Dense_0": {"kernel": np.zeros((4, 1))}}, "Dense_0:"),
        "a param beside a cell's": ({"cell": cell | {"scale": np.ones(4)}}, "cell/scale:"),
        "another collection": (
            {"params": {"ConvLSTMCell_0": cell}, "batch_stats": {"mean": np.zeros(4)}},
            "batch_stats:",
        ),
        "a Bidirectional among layers": (
            {"Bidirectional_0": bidirectional, "RNN_0": {"cell": _cell_params(3, (3, 3), 8)}},
            "Bidirectional_0: a Bidirectional among other layers",
        ),
        "a stack of Bidirectionals": (
            {"layers_0": bidirectional, "layers_1": _params_of(_flax_bidirectional(3), 8)},
            "layers_0: a Bidirectional among other layers",
        ),
        "directions of other sizes": (
            bidirectional | {"backward_rnn": {"cell": _cell_params(3, (3, 3), 2)}},
            "backward_rnn/cell: 3 hidden channels, 2 input channels and kernel",
        ),
        "two cells a direction": (
            bidirectional | {"forward_rnn": {"a": cell, "b": _cell_params(4, (3, 3), 4)}},
            "forward_rnn: 2 cells",
        ),
        "order naming other cells": (({"encoder": cell, "decoder": cell}, ["encoder", "middle"]), "order names"),
        "order given for a Bidirectional": ((bidirectional, ["forward_rnn/cell"]), "order="),
    }


@pytest.mark.parametrize("name", sorted(_refusals()))
def test_trees_that_are_not_a_chain_of_cells_are_refused_by_path(name):
    params, message = _refusals()[name]
    params, order = params if isinstance(params, tuple) else (params, None)
    with pytest.raises(ValueError, match=message):
        from_flax(params, order=order)


_NAMES = ("encoder", "decoder", "alpha", "zeta", "b", "a")


@st.composite
def _flax_trees(draw):
    channels = draw(st.integers(1, 3))
    if draw(st.booleans()):
        return _flax_bidirectional(draw(st.integers(1, 3)), draw(st.sampled_from([(1, 1), (3, 3), (3, 1)]))), channels
    features = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=len(features), max_size=len(features), unique=True))
    if draw(st.booleans()):
        return _Named(tuple(names), features), channels
    return nn.Sequential([nn.RNN(nn.ConvLSTMCell(f, (3, 3)), name=n) for f, n in zip(features, names)]), channels


@pytest.mark.slow
@given(_flax_trees(), st.sampled_from([lambda v: v, flax.core.freeze, _sorted_by_jax, _msgpack_round_trip]))
def test_every_accepted_import_computes_what_flax_computes(tree, transform):
    try:
        expected, outputs, _ = _flax_and_ours(*tree, transform=transform)
    except ValueError as error:  # only keys whose order sorting has hidden are refused
        assert transform in (_sorted_by_jax, _msgpack_round_trip) and "cannot tell in which order" in str(error)
        return
    assert outputs.shape == expected.shape
    assert FLOAT32.score(outputs, expected) <= 1
