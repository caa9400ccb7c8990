"""Tiny cases whose results are worked out by hand, held against both frameworks.

One step, one channel, 1x1 kernels, x = h0 = c0 = 1, gate order (i, f, o, g). With ln3 = log 3 the
pre-activations are chosen so that σ(0) = 1/2, σ(ln3) = 3/4 and tanh(ln3 / 2) = 1/2 exactly:

- no peephole: z_i = 0, z_f = ln3 (bias), z_o = ln3 (bias), z_g = ln3/4·x + ln3/4·h = ln3/2, so
  i = 1/2, f = 3/4, g = 1/2, o = 3/4; c' = 3/4·1 + 1/2·1/2 = 1 and h' = 3/4·tanh(1).
- Hadamard peephole (w_ci = ln3, w_cf = -ln3, w_co = -8·ln3/7): z_i = ln3, z_f = ln3 - ln3 = 0, so
  i = 3/4, f = 1/2 and c' = 1/2 + 3/4·1/2 = 7/8; z_o = ln3 - 8·ln3/7·7/8 = 0, so o = 1/2 and
  h' = tanh(7/8)/2.
- conv peephole: the same numbers, with the f and o biases moved onto conv_c and conv_cnext.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch

import convlstm_jax
import convlstm_torch

LN3 = math.log(3.0)
EXPECTED = {None: (1.0, 0.75 * math.tanh(1.0)), "hadamard": (0.875, 0.5 * math.tanh(0.875))}
EXPECTED["conv"] = EXPECTED["hadamard"]


def _state_dict(peephole):
    f32 = lambda *values: np.array(values, np.float32)  # noqa: E731
    state_dict = {
        "cell_list.0.conv.weight": f32([[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]], [[LN3 / 4, LN3 / 4]]).reshape(
            4, 2, 1, 1
        ),
        "cell_list.0.conv.bias": f32(0.0, LN3, LN3, 0.0),
    }
    if peephole == "hadamard":
        state_dict |= {
            f"cell_list.0.{k}": f32(v).reshape(1, 1, 1)
            for k, v in [("w_ci", LN3), ("w_cf", -LN3), ("w_co", -8 * LN3 / 7)]
        }
    if peephole == "conv":
        state_dict["cell_list.0.conv.bias"] = f32(0.0, 0.0, 0.0, 0.0)
        state_dict |= {
            "cell_list.0.conv_c.weight": f32(LN3, -LN3).reshape(2, 1, 1, 1),
            "cell_list.0.conv_c.bias": f32(0.0, LN3),
            "cell_list.0.conv_cnext.weight": f32(-8 * LN3 / 7).reshape(1, 1, 1, 1),
            "cell_list.0.conv_cnext.bias": f32(LN3),
        }
    return state_dict


def _run_torch(state_dict, peephole, kernel, x, h0, c0):
    model = convlstm_torch.ConvLSTM(1, 1, kernel, 1, bias="cell_list.0.conv.bias" in state_dict, peephole=peephole)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)
    _, [[h, c]] = model(*(torch.from_numpy(a) for a in (x,)), [(torch.from_numpy(h0), torch.from_numpy(c0))])
    return h.detach().numpy(), c.detach().numpy()


def _run_jax(state_dict, peephole, kernel, x, h0, c0):
    bias = "cell_list.0.conv.bias" in state_dict
    model = convlstm_jax.ConvLSTM(1, 1, kernel, 1, bias=bias, peephole=peephole, channels_last=False)
    _, [(h, c)] = model.apply(convlstm_jax.torch_to_flax(state_dict), jnp.asarray(x), [(h0, c0)])
    return np.asarray(h), np.asarray(c)


@pytest.mark.parametrize("run", [_run_torch, _run_jax], ids=["torch", "jax"])
@pytest.mark.parametrize("peephole", ["conv", "hadamard", None])
def test_one_step_by_hand(run, peephole):
    ones = np.ones((1, 1, 1, 1), np.float32)
    h, c = run(_state_dict(peephole), peephole, 1, ones[None], ones, ones)
    expected_c, expected_h = EXPECTED[peephole]
    np.testing.assert_allclose(c.item(), expected_c, rtol=1e-6)
    np.testing.assert_allclose(h.item(), expected_h, rtol=1e-6)


@pytest.mark.parametrize("run", [_run_torch, _run_jax], ids=["torch", "jax"])
def test_kernels_are_cross_correlations_with_zero_padding(run):
    """A 3x3 kernel whose only tap is the top-left one reads each pixel's upper-left neighbour.

    Only the g block is non-zero (weight s on that tap), and h0 = c0 = 0, so i = o = 1/2,
    c' = tanh(s·x[r-1, c-1]) / 2 (0 where the neighbour is padding) and h' = tanh(c') / 2. A
    flipped kernel (a true convolution) would read the lower-right neighbour instead.
    """
    s = 0.3
    x = np.arange(1.0, 10.0, dtype=np.float32).reshape(1, 1, 1, 3, 3)  # (T, B, C, H, W)
    weight = np.zeros((4, 2, 3, 3), np.float32)
    weight[3, 0, 0, 0] = s
    zeros = np.zeros((1, 1, 3, 3), np.float32)
    h, c = run({"cell_list.0.conv.weight": weight}, None, 3, x, zeros, zeros)
    neighbour = np.zeros((3, 3))
    neighbour[1:, 1:] = x[0, 0, 0, :-1, :-1]
    np.testing.assert_allclose(c[0, 0], np.tanh(s * neighbour) / 2, rtol=1e-6)
    np.testing.assert_allclose(h[0, 0], np.tanh(np.tanh(s * neighbour) / 2) / 2, rtol=1e-6)
