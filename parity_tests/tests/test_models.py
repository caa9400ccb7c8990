"""The encoder-forecaster of Shi et al. 2015: the JAX model against the torch reference in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch

from convlstm_common.tolerance import tolerance_for
from convlstm_jax.models import EncoderForecaster as JaxModel
from convlstm_jax.models import flax_to_torch_encoder_forecaster, torch_to_flax_encoder_forecaster
from convlstm_torch.models import EncoderForecaster as TorchModel

SETTINGS = [
    # spec, in_channels, patch, output frames, peephole, frames (B, T, C, H, W)
    ("ConvLSTM(5x5)-3x3-6-1x1-4", 2, 2, 3, "hadamard", (2, 3, 2, 6, 8)),
    ("ConvLSTM(3x3)-3x3-5", 1, 4, 2, "conv", (1, 2, 1, 8, 12)),
]


def _reference(spec, in_channels, patch, output_frames, peephole, shape):
    """The torch model in float64, with every weight drawn, its logits and gradients."""
    torch.manual_seed(0)
    model = TorchModel.from_spec(
        spec, in_channels=in_channels, patch_size=patch, output_frames=output_frames, peephole=peephole
    ).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("w_c"):  # zero at init: draw them
                p.uniform_(-0.5, 0.5)
    frames = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    logits = model(frames)
    weight = torch.randn(logits.shape, dtype=torch.float64)
    grads = torch.autograd.grad((logits * weight).sum(), [frames, *model.parameters()])
    names = ["frames", *(n for n, _ in model.named_parameters())]
    expected = {"logits": logits.detach().numpy(), **{f"grad/{n}": g.numpy() for n, g in zip(names, grads)}}
    return model, frames.detach().numpy(), weight.numpy(), expected


def _jax(model, state_dict, frames, weight, dtype):
    variables = torch_to_flax_encoder_forecaster(state_dict, model, dtype=dtype)
    to_last = (0, 1, 3, 4, 2)

    def loss(frames, params):
        logits = model.apply({"params": params}, frames)
        return jnp.sum(logits * jnp.asarray(weight.transpose(to_last), dtype)), logits

    frames = jnp.asarray(frames.transpose(to_last), dtype)
    with jax.default_matmul_precision("highest"):
        (grad_frames, grad_params), logits = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(
            frames, variables["params"]
        )
    to_first = (0, 1, 4, 2, 3)
    results = {"logits": np.asarray(logits).transpose(to_first), "grad/frames": np.asarray(grad_frames)}
    results["grad/frames"] = results["grad/frames"].transpose(to_first)
    grads = flax_to_torch_encoder_forecaster({"params": grad_params})
    results.update({f"grad/{key}": value for key, value in grads.items()})
    return results


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("setting", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_the_jax_model_matches_the_torch_reference(setting, dtype):
    spec, in_channels, patch, output_frames, peephole, _ = setting
    reference, frames, weight, expected = _reference(*setting)
    model = JaxModel.from_spec(
        spec,
        in_channels=in_channels,
        patch_size=patch,
        output_frames=output_frames,
        peephole=peephole,
        param_dtype=dtype,
    )
    state_dict = {k: v.numpy() for k, v in reference.state_dict().items()}
    with jax.enable_x64(dtype == "float64"):
        results = _jax(model, state_dict, frames, weight, dtype)
    assert results.keys() == expected.keys()
    tolerance = tolerance_for(dtype)
    scores = {name: tolerance.score(results[name], expected[name]) for name in expected}
    worst = max(scores, key=scores.get)
    assert scores[worst] <= 1.0, f"{worst}: {scores[worst]:.3g} of the {dtype} tolerance"
