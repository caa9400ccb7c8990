"""`convlstm_jax.torch_module`: a Linen model's torch twin computes what the model computes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_common.tolerance import tolerance_for
from convlstm_jax import Bidirectional, ConvLSTM, torch_module

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.needs_torch

CASES = {
    "fused": lambda: ConvLSTM(None, [4, 3], 3, 2, batch_first=True, return_all_layers=True),
    "hadamard_valid_stride": lambda: ConvLSTM(
        2, 4, 3, 1, batch_first=True, peephole="hadamard", padding="valid", stride=2
    ),
    "signals_no_bias_reverse": lambda: ConvLSTM(
        None, 3, 5, 1, batch_first=False, bias=False, peephole=None, spatial_dims=1, reverse=True, keep_order=False
    ),
    "layer_norm_frames_from_input": lambda: ConvLSTM(  # frame_size from the norms: 9x7, then 5x4
        None, [3, 4], 3, 2, batch_first=True, layer_norm=True, stride=[1, 2]
    ),
    "layer_norm_one_layer": lambda: ConvLSTM(None, 3, 3, 1, batch_first=True, layer_norm=True),
    "bidirectional_sum": lambda: Bidirectional(ConvLSTM(None, 3, (3, 1), 1, batch_first=True), merge="sum"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_twin_computes_what_the_linen_model_computes(name):
    model = CASES[name]()
    layer = model.layer if isinstance(model, Bidirectional) else model
    frames = (9,) if layer.spatial_dims == 1 else (9, 7)
    shape = (2, 4, *frames, 2) if layer.batch_first else (4, 2, *frames, 2)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    variables = model.init(jax.random.key(1), jnp.asarray(x))
    # Hadamard peepholes start at zero: give them values, so that a lost one would show.
    variables = jax.tree.map(lambda v: v + 0.1 if v.ndim == 1 else v, variables)
    with jax.default_matmul_precision("highest"):
        outputs, _ = model.apply(variables, x)
    twin = torch_module(model, variables)
    channels_first = np.moveaxis(x, -1, 2)
    with torch.no_grad():
        expected, _ = twin(torch.from_numpy(channels_first))
    for actual, wanted in zip(outputs, expected, strict=True):
        score = tolerance_for("float32").score(np.moveaxis(np.asarray(actual), -1, 2), wanted.numpy())
        assert score <= 1, f"{name}: {score:.3g} x the float32 tolerance"


def test_a_model_of_another_kind_is_refused():
    with pytest.raises(TypeError, match=r"Linen convlstm_jax\.ConvLSTM or Bidirectional"):
        torch_module(object(), {"params": {}})


def test_float64_variables_make_a_float64_twin_that_computes_what_the_model_computes():
    model = ConvLSTM(None, [4, 3], 3, 2, batch_first=True, layer_norm=True, param_dtype=jnp.float64)
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 5, 2))
    with jax.enable_x64(True):
        variables = model.init(jax.random.key(1), jnp.asarray(x))
        assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype("float64")}
        outputs, states = model.apply(variables, x)
    twin = torch_module(model, variables)
    assert {p.dtype for p in twin.parameters()} == {torch.float64}
    with torch.no_grad():
        expected, expected_states = twin(torch.from_numpy(np.moveaxis(x, -1, 2)))
    tolerance = tolerance_for("float64")
    pairs = [(np.moveaxis(np.asarray(a), -1, 2), w) for a, w in zip(outputs, expected, strict=True)]
    pairs += [(np.moveaxis(np.asarray(a), -1, 1), w) for a, w in zip(states[-1], expected_states[-1], strict=True)]
    for actual, wanted in pairs:
        score = tolerance.score(actual, wanted.numpy())
        assert score <= 1, f"{score:.3g} x the float64 tolerance"


def test_variables_of_mixed_float_dtypes_make_a_float32_twin():
    model = ConvLSTM(None, 4, 3, 1, batch_first=True)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2, 6, 5, 3)))
    params = jax.tree.map(lambda v: np.asarray(v, np.float64), variables["params"])
    conv = params["cell_0"]["input_to_state"]
    conv["bias"] = conv["bias"].astype(np.float16)
    twin = torch_module(model, {"params": params})
    assert {p.dtype for p in twin.parameters()} == {torch.float32}
    np.testing.assert_array_equal(twin.cell_list[0].conv.bias.detach().numpy(), conv["bias"].astype(np.float32))
