"""`convlstm_jax.torch_module`: a Linen model's torch twin computes what the model computes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_jax import Bidirectional, ConvLSTM, torch_module
from parity_tests.tolerance import tolerance_for

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
