"""`convlstm_jax.from_flax`: Flax's own `nn.ConvLSTMCell` parameters, held to Flax's module."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_jax import from_flax
from parity_tests.tolerance import tolerance_for

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
        ({"a": _cell_params(4, (3, 3), 2), "b": _cell_params(3, (3, 3), 5)}, "reads 5 channels"),
        ({"a": _cell_params(4, (3, 3), 2), "b": _cell_params(3, (3, 3), 4, use_bias=False)}, "cells with biases"),
        ({"dense": {"kernel": np.zeros((3, 4))}}, "hold no flax.linen.ConvLSTMCell"),
    ],
)  # fmt: skip
def test_what_cannot_be_represented_is_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        from_flax(params)


def test_params_must_be_a_mapping():
    with pytest.raises(TypeError, match="params must be a mapping"):
        from_flax([np.zeros(3)])
