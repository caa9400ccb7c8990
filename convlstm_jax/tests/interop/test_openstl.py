"""`convlstm_jax.from_openstl`: OpenSTL's ConvLSTM weights, read into this library, compute what OpenSTL
computes (the Linen stack, its torch twin, and the whole frame model with its patches and rollout), and
what does not fit is refused.

OpenSTL is not a dependency: `OpenSTLCell` and `OpenSTLModel` below are a torch re-implementation of its
`ConvLSTMCell` and `ConvLSTM_Model` (openstl/modules/convlstm_modules.py, openstl/models/convlstm_model.py),
with the same module names, so that their state_dicts have OpenSTL's keys, and `openstl_test_forecast` is
what its method (openstl/methods/predrnn.py, which ConvLSTM inherits) does at test time.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_common.tolerance import tolerance_for
from convlstm_jax import ConvLSTM, torch_module
from convlstm_jax.interop.openstl import from_openstl, openstl_gates_to_library
from convlstm_jax.models import FramePredictor, openstl_patch_order, openstl_patches, openstl_unpatch, space_to_depth

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.needs_torch

TOLERANCE = tolerance_for("float32")
UNUSED = r"never uses; left out: .*conv_o"


# --- OpenSTL's ConvLSTM, re-implemented in torch from its published behaviour ---------------------------


class OpenSTLCell(torch.nn.Module):
    """OpenSTL's `ConvLSTMCell`: gates (i, f, g, o) from two bias-free convolutions (each followed by a
    LayerNorm over (4·hidden, H, W) with `layer_norm`), no peepholes; `conv_o` and `conv_last` exist but
    the forward does not use them, and neither the forget bias attribute."""

    def __init__(self, in_channel, num_hidden, height, width, filter_size, stride, layer_norm):
        super().__init__()
        self.num_hidden = num_hidden
        self._forget_bias = 1.0  # OpenSTL keeps it; its forward ignores it

        def branch(channels_in, channels_out):
            conv = torch.nn.Conv2d(
                channels_in, channels_out, filter_size, stride=stride, padding=filter_size // 2, bias=False
            )
            norm = [torch.nn.LayerNorm([channels_out, height, width])] if layer_norm else []
            return torch.nn.Sequential(conv, *norm)

        self.conv_x = branch(in_channel, 4 * num_hidden)
        self.conv_h = branch(num_hidden, 4 * num_hidden)
        self.conv_o = branch(2 * num_hidden, num_hidden)
        self.conv_last = torch.nn.Conv2d(2 * num_hidden, num_hidden, 1, bias=False)

    def forward(self, x, h, c):
        i_x, f_x, g_x, o_x = torch.split(self.conv_x(x), self.num_hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), self.num_hidden, dim=1)
        i, f, g = torch.sigmoid(i_x + i_h), torch.sigmoid(f_x + f_h), torch.tanh(g_x + g_h)
        c_next = f * c + i * g
        h_next = torch.sigmoid(o_x + o_h) * torch.tanh(c_next)
        return h_next, c_next


def openstl_stack(cells, x):
    """OpenSTL's stacked cells on a channels-first sequence x (B, T, C, H, W), from zero states: the last
    layer's hidden state at every step, (B, T, hidden, H, W)."""
    batch, steps, _, height, width = x.shape
    states = [[torch.zeros(batch, cell.num_hidden, height, width)] * 2 for cell in cells]
    outputs = []
    for t in range(steps):
        inputs = x[:, t]
        for layer, cell in enumerate(cells):
            states[layer] = list(cell(inputs, *states[layer]))
            inputs = states[layer][0]
        outputs.append(inputs)
    return torch.stack(outputs, dim=1)


class OpenSTLModel(torch.nn.Module):
    """OpenSTL's `ConvLSTM_Model`: patches (B, T, H/p, W/p, p·p·C) in, the stacked cells, a 1x1 bias-free
    `conv_last`, over pre + aft - 1 steps; after the context the input is mask·frame + (1 - mask)·previous
    prediction. Returns every prediction, (B, pre + aft - 1, H/p, W/p, p·p·C)."""

    def __init__(self, num_hidden, configs):
        super().__init__()
        _, channels, height, width = configs.in_shape
        p = configs.patch_size
        self.configs, self.num_hidden = configs, num_hidden
        self.frame_channel = p * p * channels
        inputs = [self.frame_channel, *num_hidden[:-1]]
        self.cell_list = torch.nn.ModuleList(
            OpenSTLCell(i, h, height // p, width // p, configs.filter_size, configs.stride, configs.layer_norm)
            for i, h in zip(inputs, num_hidden)
        )
        self.conv_last = torch.nn.Conv2d(num_hidden[-1], self.frame_channel, 1, bias=False)

    def forward(self, frames_tensor, mask_true):
        frames = frames_tensor.permute(0, 1, 4, 2, 3)
        mask = mask_true.permute(0, 1, 4, 2, 3)
        pre, aft = self.configs.pre_seq_length, self.configs.aft_seq_length
        batch, _, _, height, width = frames.shape
        states = [[torch.zeros(batch, h, height, width)] * 2 for h in self.num_hidden]
        predictions, previous = [], None
        for t in range(pre + aft - 1):
            if self.configs.reverse_scheduled_sampling == 1:  # the mask covers every step after the first
                inputs = frames[:, 0] if t == 0 else mask[:, t - 1] * frames[:, t] + (1 - mask[:, t - 1]) * previous
            elif t < pre:
                inputs = frames[:, t]
            else:
                inputs = mask[:, t - pre] * frames[:, t] + (1 - mask[:, t - pre]) * previous
            for layer, cell in enumerate(self.cell_list):
                states[layer] = list(cell(inputs, *states[layer]))
                inputs = states[layer][0]
            previous = self.conv_last(inputs)
            predictions.append(previous)
        return torch.stack(predictions, dim=1).permute(0, 1, 3, 4, 2)


def reshape_patch(frames, p):
    """OpenSTL's `reshape_patch`, on (B, T, H, W, C): a patch's channels ordered (row, column, channel)."""
    b, t, height, width, c = frames.shape
    x = frames.reshape(b, t, height // p, p, width // p, p, c).transpose(3, 4)
    return x.reshape(b, t, height // p, width // p, p * p * c)


def reshape_patch_back(patches, p):
    """OpenSTL's `reshape_patch_back`."""
    b, t, rows, columns, depth = patches.shape
    x = patches.reshape(b, t, rows, columns, p, p, depth // (p * p)).transpose(3, 4)
    return x.reshape(b, t, rows * p, columns * p, depth // (p * p))


def openstl_test_forecast(model, batch_x, batch_y):
    """What OpenSTL's method returns at test time: frames (B, T, C, H, W) in, the last aft_seq_length
    predictions out (B, aft, C, H, W); the mask is zero, so the model reads its own predictions."""
    configs = model.configs
    _, channels, height, width = configs.in_shape
    p = configs.patch_size
    frames = torch.cat([batch_x, batch_y], dim=1).permute(0, 1, 3, 4, 2)
    reverse = configs.reverse_scheduled_sampling == 1
    masked = configs.total_length - (1 if reverse else configs.pre_seq_length) - 1
    mask = torch.zeros(batch_x.shape[0], masked, height // p, width // p, p * p * channels)
    if reverse:  # the context is read as it is, then the model's own predictions
        mask[:, : configs.pre_seq_length - 1] = 1.0
    predictions = reshape_patch_back(model(reshape_patch(frames, p), mask), p)
    return predictions[:, -configs.aft_seq_length :].permute(0, 1, 4, 2, 3)


def randomize(module, seed):
    """Draws every parameter anew (convolutions as torch does, layer norm scales around 1 and shifts around 0):
    a lost gate order or norm would show."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for child in module.modules():
            if isinstance(child, torch.nn.Conv2d):
                child.reset_parameters()
            elif isinstance(child, torch.nn.LayerNorm):
                child.weight.copy_(1 + 0.5 * torch.randn(child.weight.shape))
                child.bias.copy_(0.5 * torch.randn(child.bias.shape))
    return module.eval()


def make_configs(**overrides):
    configs = dict(
        in_shape=(3, 2, 8, 8),
        patch_size=2,
        filter_size=3,
        stride=1,
        layer_norm=0,
        pre_seq_length=3,
        aft_seq_length=3,
        total_length=6,
        num_hidden="4,6",
        reverse_scheduled_sampling=0,
    )
    configs.update(overrides)
    return types.SimpleNamespace(**configs)


def openstl_model(configs, seed=0):
    num_hidden = [int(h) for h in configs.num_hidden.split(",")]
    return randomize(OpenSTLModel(num_hidden, configs), seed)


def openstl_cells(input_dim, hidden, kernel, layer_norm, frame, seed=0):
    inputs = [input_dim, *hidden[:-1]]
    cells = torch.nn.ModuleList(OpenSTLCell(i, h, *frame, kernel, 1, layer_norm) for i, h in zip(inputs, hidden))
    return randomize(cells, seed)


def cells_state_dict(cells):
    return {f"cell_list.{key}": value for key, value in cells.state_dict().items()}


def convert(state_dict, **kwargs):
    """`from_openstl` on a state_dict with OpenSTL's unused weights, which it reports."""
    with pytest.warns(UserWarning, match=UNUSED):
        return from_openstl(state_dict, **kwargs)


def score(actual, expected, what):
    value = TOLERANCE.score(np.asarray(actual), np.asarray(expected))
    print(f"{what}: score {value:.3g}")
    assert value <= 1, f"{what}: {value:.3g} x the float32 tolerance"
    return value


def random_frames(shape, seed):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(np.float32)


# --- the cells: a Linen ConvLSTM, and its torch twin --------------------------------------------------------

CELL_CASES = {
    "1 layer, 3x3": (3, [6], 3, False),
    "2 layers, 5x5, layer norm": (2, [4, 6], 5, True),
    "3 layers, 3x3, layer norm": (1, [5, 3, 4], 3, True),
    "3 layers, 5x5": (4, [8, 4, 6], 5, False),
}


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_cells_compute_what_openstl_computes(name):
    input_dim, hidden, kernel, layer_norm = CELL_CASES[name]
    frame = (7, 6)
    cells = openstl_cells(input_dim, hidden, kernel, layer_norm, frame, seed=len(hidden))
    model, variables = convert(cells_state_dict(cells))
    assert isinstance(model, ConvLSTM)
    assert (model.bias, model.peephole, model.layer_norm, model.return_all_layers) == (False, None, layer_norm, False)
    assert model.frame_size == (frame if layer_norm else None)
    x = random_frames((2, 4, *frame, input_dim), seed=1)
    with torch.no_grad():
        expected = openstl_stack(cells, torch.from_numpy(np.moveaxis(x, -1, 2))).numpy()
    with jax.default_matmul_precision("highest"):
        outputs, states = model.apply(variables, jnp.asarray(x))
    score(np.moveaxis(np.asarray(outputs[0]), -1, 2), expected, f"cells {name} (Linen)")
    score(np.moveaxis(np.asarray(states[0][0]), -1, 1), expected[:, -1], f"cells {name} (Linen, last h)")
    twin = torch_module(model, variables)
    with torch.no_grad():
        twin_outputs, _ = twin(torch.from_numpy(np.moveaxis(x, -1, 2)))
    score(twin_outputs[0].numpy(), expected, f"cells {name} (torch twin)")


def test_the_forget_bias_attribute_is_not_used():
    """OpenSTL's cell keeps `_forget_bias = 1.0` and its forward does not read it: the stack has none."""
    cells = openstl_cells(2, [4], 3, False, (5, 5))
    model, _ = convert(cells_state_dict(cells))
    assert model.forget_bias == 0.0


def test_the_first_layer_reads_openstl_patches():
    """A stack read from cells alone keeps OpenSTL's patch channels: `openstl_patches` feeds it what
    OpenSTL's `reshape_patch` feeds OpenSTL's cells."""
    cells = openstl_cells(8, [4], 3, True, (3, 4))
    model, variables = convert(cells_state_dict(cells))
    frames = random_frames((2, 3, 6, 8, 2), seed=3)
    patches = reshape_patch(torch.from_numpy(frames), 2)
    with torch.no_grad():
        expected = openstl_stack(cells, patches.permute(0, 1, 4, 2, 3)).numpy()
    with jax.default_matmul_precision("highest"):
        outputs, _ = model.apply(variables, openstl_patches(jnp.asarray(frames), 2))
    score(np.moveaxis(np.asarray(outputs[0]), -1, 2), expected, "cells on openstl_patches")


# --- the whole model ---------------------------------------------------------------------------------------

MODEL_CASES = {
    "patch 1, 2 channels": dict(patch_size=1, in_shape=(3, 2, 6, 5), num_hidden="5"),
    "patch 2, 2 channels, layer norm": dict(layer_norm=1, num_hidden="4,6"),
    "patch 2, 2 channels, 5x5, 3 layers": dict(filter_size=5, num_hidden="6,3,5", pre_seq_length=2, total_length=5),
    "patch 2, 2 channels, reverse scheduled sampling": dict(reverse_scheduled_sampling=1),
    "moving mnist, scaled down": dict(
        in_shape=(10, 1, 16, 16),
        patch_size=4,
        filter_size=5,
        num_hidden="8,8,8,8",
        pre_seq_length=10,
        aft_seq_length=10,
        total_length=20,
    ),
}


def check_model(configs, seed, what, batch=2):
    openstl = openstl_model(configs, seed)
    model, variables = convert(openstl.state_dict(), configs=configs)
    assert isinstance(model, FramePredictor)
    _, channels, height, width = configs.in_shape
    pre, aft = configs.pre_seq_length, configs.aft_seq_length
    frames = random_frames((batch, pre + aft, height, width, channels), seed)
    batch_x, batch_y = (torch.from_numpy(np.moveaxis(part, -1, 2)) for part in (frames[:, :pre], frames[:, pre:]))
    with torch.no_grad():
        reverse = configs.reverse_scheduled_sampling == 1
        mask = torch.zeros(batch, pre + aft - 2 if reverse else aft - 1, 1, 1, 1)
        mask[:, : pre - 1 if reverse else 0] = 1.0  # at test time: the context, then the predictions
        patches = reshape_patch(torch.from_numpy(frames), configs.patch_size)
        expected_all = reshape_patch_back(openstl(patches, mask), configs.patch_size).numpy()
        expected_forecast = openstl_test_forecast(openstl, batch_x, batch_y).numpy()
    with jax.default_matmul_precision("highest"):
        generated = np.asarray(model.apply(variables, jnp.asarray(frames)))
        from_context = np.asarray(model.apply(variables, jnp.asarray(frames[:, :pre])))
    assert generated.shape == (batch, pre + aft - 1, height, width, channels)
    np.testing.assert_array_equal(from_context, generated)  # without a mask the targets are not read
    score(generated, expected_all, f"model {what} (every generated frame)")
    score(np.moveaxis(generated[:, -aft:], -1, 2), expected_forecast, f"model {what} (the test-time forecast)")
    return openstl, model, variables, frames


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_the_model_computes_what_openstl_computes(name):
    check_model(make_configs(**MODEL_CASES[name]), seed=5, what=name)


@pytest.mark.slow
def test_the_moving_mnist_model_computes_what_openstl_computes():
    """OpenSTL's Moving MNIST ConvLSTM: 64x64 frames in 4x4 patches, four layers of 128, 5x5 kernels."""
    configs = make_configs(
        in_shape=(10, 1, 64, 64),
        patch_size=4,
        filter_size=5,
        num_hidden="128,128,128,128",
        pre_seq_length=10,
        aft_seq_length=10,
        total_length=20,
    )
    check_model(configs, seed=7, what="moving mnist", batch=1)


@pytest.mark.parametrize("per_pixel", [False, True], ids=["per frame", "per pixel"])
def test_scheduled_sampling_mixes_frames_as_openstl_does(per_pixel):
    configs = make_configs(layer_norm=1, aft_seq_length=4, total_length=7)
    openstl = openstl_model(configs, seed=2)
    model, variables = convert(openstl.state_dict(), configs=configs)
    rng = np.random.default_rng(4)
    frames = random_frames((3, 7, 8, 8, 2), seed=6)
    if per_pixel:
        mask = rng.uniform(size=(3, 3, 8, 8, 2)).astype(np.float32)
        openstl_mask = reshape_patch(torch.from_numpy(mask), 2)
    else:
        mask = (rng.uniform(size=(3, 3)) < 0.5).astype(np.float32)
        openstl_mask = torch.from_numpy(mask).reshape(3, 3, 1, 1, 1).expand(3, 3, 4, 4, 8)
    assert 0 < mask.mean() < 1
    with torch.no_grad():
        expected = reshape_patch_back(openstl(reshape_patch(torch.from_numpy(frames), 2), openstl_mask), 2).numpy()
    with jax.default_matmul_precision("highest"):
        generated = model.apply(variables, jnp.asarray(frames), jnp.asarray(mask))
    score(generated, expected, f"model with a scheduled-sampling mask ({'per pixel' if per_pixel else 'per frame'})")
    with jax.default_matmul_precision("highest"):
        rolled = model.apply(variables, jnp.asarray(frames))
    assert not np.allclose(np.asarray(rolled)[:, 3:], np.asarray(generated)[:, 3:])  # the mask matters


def test_the_model_params_are_a_fresh_models():
    configs = make_configs(layer_norm=1)
    model, variables = convert(openstl_model(configs).state_dict(), configs=configs)
    fresh = model.init(jax.random.key(0), jnp.zeros((1, 3, 8, 8, 2)))
    assert jax.tree.map(np.shape, fresh) == jax.tree.map(np.shape, variables)
    assert jax.tree.map(lambda v: v.dtype, fresh) == jax.tree.map(lambda v: np.asarray(v).dtype, variables)


def test_the_model_runs_under_jit_and_differentiates():
    configs = make_configs()
    model, variables = convert(openstl_model(configs).state_dict(), configs=configs)
    frames = jnp.asarray(random_frames((2, 6, 8, 8, 2), seed=8))

    def loss(params):
        generated = model.apply({"params": params}, frames)
        return jnp.mean((generated - frames[:, 1:]) ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree.leaves(grads))


# --- patches -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("p", "channels"), [(1, 3), (2, 1), (2, 3), (4, 2)])
def test_patches_are_openstls(p, channels):
    frames = random_frames((2, 3, 8, 12, channels), seed=p)
    expected = reshape_patch(torch.from_numpy(frames), p).numpy()
    patches = openstl_patches(jnp.asarray(frames), p)
    np.testing.assert_array_equal(patches, expected)
    np.testing.assert_array_equal(openstl_unpatch(patches, p), frames)
    np.testing.assert_array_equal(reshape_patch_back(torch.from_numpy(expected), p).numpy(), frames)
    order = openstl_patch_order(p, channels)
    np.testing.assert_array_equal(np.asarray(patches)[..., order], space_to_depth(jnp.asarray(frames), p))


def test_gate_order():
    blocks = np.repeat(np.array(["i", "f", "g", "o"]), 2)
    np.testing.assert_array_equal(openstl_gates_to_library(blocks), np.repeat(np.array(["i", "f", "o", "g"]), 2))
    weight = np.arange(4 * 3 * 2).reshape(4 * 3, 2)
    np.testing.assert_array_equal(openstl_gates_to_library(weight.T, axis=1), openstl_gates_to_library(weight).T)


# --- checkpoint forms and warnings ----------------------------------------------------------------------------


def _reference():
    configs = make_configs(layer_norm=1)
    state_dict = openstl_model(configs).state_dict()
    return configs, state_dict, convert(state_dict, configs=configs)[1]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3, "global_step": 10},
        lambda sd: {"model": dict(sd), "optimizer": {}},
        lambda sd: {"model_state_dict": dict(sd)},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {f"module.model.{k}": v.numpy() for k, v in sd.items()},
    ],
    ids=["lightning", "model", "model_state_dict", "dataparallel", "both prefixes, numpy"],
)
def test_checkpoint_forms(wrap):
    configs, state_dict, expected = _reference()
    _, variables = convert(wrap(state_dict), configs=configs)
    jax.tree.map(np.testing.assert_array_equal, variables, expected)


def test_the_unused_weights_are_named_in_the_warning():
    cells = openstl_cells(2, [4, 3], 3, True, (5, 5))
    state_dict = cells_state_dict(cells)
    with pytest.warns(UserWarning) as caught:
        from_openstl(state_dict)
    assert len(caught) == 1
    message = str(caught[0].message)
    unused = [key for key in state_dict if ".conv_o." in key or ".conv_last." in key]
    assert len(unused) == 8
    assert all(key in message for key in unused)
    assert not any(key in message for key in state_dict if key not in unused)


def test_without_the_unused_weights_there_is_no_warning():
    cells = openstl_cells(2, [4], 3, False, (5, 5))
    state_dict = {k: v for k, v in cells_state_dict(cells).items() if ".conv_o." not in k and "conv_last" not in k}
    model, _ = from_openstl(state_dict)  # a warning would fail the test (filterwarnings = error)
    assert isinstance(model, ConvLSTM)


def test_dtypes_are_kept_or_cast():
    cells = openstl_cells(2, [4], 3, True, (5, 5)).double()
    model, variables = convert(cells_state_dict(cells))
    assert model.param_dtype == np.float64
    assert {np.asarray(v).dtype for v in jax.tree.leaves(variables)} == {np.dtype(np.float64)}
    model, variables = convert(cells_state_dict(cells), dtype=jnp.float32)
    assert model.param_dtype == np.float32
    assert {np.asarray(v).dtype for v in jax.tree.leaves(variables)} == {np.dtype(np.float32)}


def test_frame_size_is_checked_and_configs_are_read_for_cells():
    cells = openstl_cells(8, [4], 3, True, (3, 4))
    state_dict = cells_state_dict(cells)
    model, _ = convert(state_dict, frame_size=(3, 4))
    assert model.frame_size == (3, 4)
    configs = make_configs(in_shape=(3, 2, 6, 8), layer_norm=1, num_hidden="4")
    model, _ = convert(state_dict, configs=configs)  # cells alone: configs are checked, not needed
    assert isinstance(model, ConvLSTM)


def test_configs_as_a_dict():
    configs = make_configs()
    state_dict = openstl_model(configs).state_dict()
    model, _ = convert(state_dict, configs=vars(configs))
    assert (model.patch_size, model.in_channels, model.pre_seq_length, model.aft_seq_length) == (2, 2, 3, 3)
    assert model.hidden_dim == (4, 6) and model.kernel_size == (3, 3) and not model.layer_norm


# --- refusals --------------------------------------------------------------------------------------------------


def _cells(layer_norm=False, hidden=(4, 3)):
    return cells_state_dict(openstl_cells(2, list(hidden), 3, layer_norm, (4, 4)))


def _model(**overrides):
    configs = make_configs(**overrides)
    return configs, openstl_model(configs).state_dict()


def _edit(state_dict, drop=(), **changes):
    edited = {k: v for k, v in state_dict.items() if k not in drop}
    edited.update({key.replace("__", "."): value for key, value in changes.items()})
    return edited


def test_refuses_what_is_not_a_state_dict():
    with pytest.raises(TypeError, match=r"state_dict must be a mapping.*got list"):
        from_openstl([("cell_list.0.conv_x.0.weight", np.zeros((4, 1, 3, 3)))])
    with pytest.raises(TypeError, match=r"state_dict\['cell_list.0.conv_x.0.weight'\] must be a tensor or an array"):
        from_openstl({"cell_list.0.conv_x.0.weight": {"a": 1}, "cell_list.0.conv_h.0.weight": np.zeros((4, 1, 3, 3))})
    with pytest.raises(TypeError, match="keys must be strings, got 3"):
        from_openstl({3: np.zeros(3)})


def test_refuses_unexpected_keys_listing_them_all():
    state_dict = _edit(_cells(), **{"cell_list__0__conv__weight": np.zeros(3), "decoder__weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"unexpected keys 'cell_list.0.conv.weight', 'decoder.weight'"):
        from_openstl(state_dict)
    with pytest.raises(ValueError, match=r"no 'cell_list.<l>.' key"):
        from_openstl({})


def test_refuses_prefixes_that_collide():
    state_dict = _cells()
    doubled = {**state_dict, **{f"model.{k}": v for k, v in state_dict.items()}}
    with pytest.raises(ValueError, match="are the same weight"):
        from_openstl(doubled)


def test_refuses_integer_and_mixed_dtypes():
    state_dict = _cells()
    with pytest.raises(ValueError, match=r"floating-point; these are not: 'cell_list.0.conv_h.0.weight' \(int64\)"):
        from_openstl(_edit(state_dict, cell_list__0__conv_h__0__weight=np.zeros((16, 4, 3, 3), np.int64)))
    mixed = _edit(state_dict, cell_list__1__conv_h__0__weight=state_dict["cell_list.1.conv_h.0.weight"].double())
    with pytest.raises(ValueError, match=r"mix dtypes \['float32', 'float64'\]: pass dtype="):
        from_openstl(mixed)
    with pytest.warns(UserWarning, match=UNUSED):
        from_openstl(mixed, dtype=np.float32)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (dict(drop=["cell_list.1.conv_h.0.weight"]), r"missing key 'cell_list.1.conv_h.0.weight'"),
        (
            dict(drop=["cell_list.1.conv_x.0.weight", "cell_list.1.conv_h.0.weight"]),
            r"(?s)missing key 'cell_list.1.conv_x.0.weight'.*missing key 'cell_list.1.conv_h.0.weight'",
        ),
        (
            dict(drop=[k for k in _cells() if k.startswith("cell_list.0.")]),
            r"(?s)missing key 'cell_list.0.conv_x.0.weight'.*missing key 'cell_list.0.conv_h.0.weight'",
        ),
        (
            dict(cell_list__0__conv_x__0__weight=np.zeros((15, 2, 3, 3), np.float32)),
            r"'cell_list.0.conv_x.0.weight' has shape \(15, 2, 3, 3\): expected a Conv2d weight",
        ),
        (
            dict(cell_list__0__conv_h__0__weight=np.zeros((16, 5, 3, 3), np.float32)),
            r"'cell_list.0.conv_h.0.weight' has shape \(16, 5, 3, 3\): expected \(4·hidden, hidden, k, k\)",
        ),
        (
            dict(cell_list__0__conv_h__0__weight=np.zeros((16, 4, 5, 5), np.float32)),
            r"kernel \(3, 3\) and conv_h.0.weight's \(5, 5\) differ",
        ),
        (
            dict(
                cell_list__1__conv_x__0__weight=np.zeros((12, 4, 5, 5), np.float32),
                cell_list__1__conv_h__0__weight=np.zeros((12, 3, 5, 5), np.float32),
            ),
            r"the layers' kernels differ",
        ),
        (
            dict(
                cell_list__0__conv_x__0__weight=np.zeros((16, 2, 2, 2), np.float32),
                cell_list__0__conv_h__0__weight=np.zeros((16, 4, 2, 2), np.float32),
            ),
            r"even kernel \(2, 2\)",
        ),
        (
            dict(cell_list__1__conv_x__0__weight=np.zeros((12, 5, 3, 3), np.float32)),
            r"'cell_list.1.conv_x.0.weight' reads 5 channels: layer 1 reads layer 0's hidden state, 4 channels",
        ),
    ],
    ids=[
        "missing key",
        "only unused keys",
        "missing layer",
        "not 4·hidden",
        "state kernel channels",
        "kernels differ",
        "layers' kernels differ",
        "even kernel",
        "layer input",
    ],
)
def test_refuses_malformed_cells(edit, message):
    with pytest.raises(ValueError, match=message):
        from_openstl(_edit(_cells(), **edit))


def test_refuses_malformed_layer_norms():
    state_dict = _cells(layer_norm=True)
    with pytest.raises(ValueError, match=r"has layer norm weights \['conv_x.1.weight', 'conv_x.1.bias'\] but not"):
        from_openstl(_edit(state_dict, drop=["cell_list.0.conv_h.1.weight", "cell_list.0.conv_h.1.bias"]))
    with pytest.raises(ValueError, match=r"'cell_list.1.conv_h.1.bias' has shape \(12, 4, 5\): expected a LayerNorm"):
        from_openstl(_edit(state_dict, cell_list__1__conv_h__1__bias=np.zeros((12, 4, 5), np.float32)))
    plain = [f"cell_list.1.{name}" for name in ("conv_x.1.weight", "conv_x.1.bias", "conv_h.1.weight", "conv_h.1.bias")]
    with pytest.raises(ValueError, match=r"layers \[0\] have layer norms and layers \[1\] do not"):
        from_openstl(_edit(state_dict, drop=plain))
    other = {
        f"cell_list.1.{name}": np.ones((12, 5, 5), np.float32)
        for name in ("conv_x.1.weight", "conv_x.1.bias", "conv_h.1.weight", "conv_h.1.bias")
    }
    with pytest.raises(ValueError, match=r"layer norms are for states of different sizes"):
        from_openstl({**state_dict, **other})


def test_refuses_a_frame_size_the_norms_do_not_hold():
    state_dict = _cells(layer_norm=True)
    with pytest.raises(ValueError, match=r"layer norms are for frames of \(4, 4\).*frame_size says \(4, 5\)"):
        from_openstl(state_dict, frame_size=(4, 5))
    with pytest.raises(TypeError, match=r"frame_size must be \(H, W\)"):
        from_openstl(state_dict, frame_size=(4, 4, 4))
    with pytest.raises(ValueError, match=r"frame_size must be \(H, W\), two positive ints, got \(0, 4\)"):
        from_openstl(state_dict, frame_size=(0, 4))


def test_the_whole_model_needs_its_configs():
    _, state_dict = _model()
    with pytest.raises(ValueError, match=r"whole ConvLSTM_Model.*pass configs= with patch_size, in_shape"):
        from_openstl(state_dict)
    partial = {"patch_size": 2, "in_shape": (3, 2, 8, 8)}
    with pytest.raises(ValueError, match=r"configs lacks pre_seq_length, aft_seq_length"):
        from_openstl(state_dict, configs=partial)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(patch_size=4), r"patch_size=4 and in_shape \(3, 2, 8, 8\) make patches of 4·4·2 = 32 channels"),
        (dict(in_shape=(3, 1, 8, 8)), r"make patches of 2·2·1 = 4 channels; the first layer reads 8"),
        (dict(in_shape=(3, 2, 8, 7)), r"in_shape \(3, 2, 8, 7\) does not cut into 2x2 patches"),
        (dict(in_shape=(3, 2, 8)), r"in_shape must be \(T, C, H, W\)"),
        (dict(patch_size=0), r"patch_size must be a positive int, got 0"),
        (dict(pre_seq_length=2.5), r"pre_seq_length must be a positive int, got 2.5"),
        (dict(total_length=7), r"total_length is 7, not pre_seq_length \+ aft_seq_length = 3 \+ 3 = 6"),
        (dict(stride=2), r"stride is 2: OpenSTL's cell strides both its convolutions"),
        (dict(filter_size=5), r"filter_size is 5, the weights' kernels are \(3, 3\)"),
        (dict(layer_norm=1), r"layer_norm is 1, and the weights hold no layer norm"),
        (dict(num_hidden="4,5"), r"num_hidden is '4,5', the weights' layers have \(4, 6\)"),
    ],
    ids=[
        "patch size",
        "channels",
        "not in patches",
        "in_shape",
        "patch_size 0",
        "pre not int",
        "total_length",
        "stride",
        "filter_size",
        "layer_norm",
        "num_hidden",
    ],
)
def test_refuses_configs_that_contradict_the_weights(overrides, message):
    _, state_dict = _model()
    configs = {**vars(make_configs()), **overrides}
    with pytest.raises(ValueError, match=message):
        from_openstl(state_dict, configs=configs)


def test_refuses_configs_whose_frames_the_norms_do_not_hold():
    configs, state_dict = _model(layer_norm=1)
    bigger = {**vars(configs), "in_shape": (3, 2, 8, 10)}
    with pytest.raises(ValueError, match=r"frames of \(4, 4\).*in_shape / patch_size says \(4, 5\)"):
        from_openstl(state_dict, configs=bigger)
    with pytest.raises(ValueError, match=r"frame_size is \(4, 5\); configs in_shape and patch_size make frames of"):
        from_openstl(state_dict, configs=configs, frame_size=(4, 5))


def test_refuses_a_malformed_output_convolution():
    _, state_dict = _model()
    configs = make_configs()
    with pytest.raises(ValueError, match=r"'conv_last.weight' has shape \(8, 6, 3, 3\): expected \(patch channels, 6"):
        from_openstl(_edit(state_dict, conv_last__weight=np.zeros((8, 6, 3, 3), np.float32)), configs=configs)
    with pytest.raises(ValueError, match=r"'conv_last.weight' makes 4 channels and the first layer reads 8"):
        from_openstl(_edit(state_dict, conv_last__weight=np.zeros((4, 6, 1, 1), np.float32)), configs=configs)


def test_the_model_refuses_frames_that_do_not_fit():
    model = FramePredictor((4,), 3, in_channels=2, patch_size=2, pre_seq_length=3, aft_seq_length=3)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 3, 4, 4, 2)))
    for frames, message in [
        (jnp.zeros((1, 3, 4, 4, 1)), r"frames must have shape \(B, T, H, W, 2\)"),
        (jnp.zeros((1, 3, 4, 5, 2)), r"frames of 4x5 do not cut into 2x2 patches"),
        (jnp.zeros((1, 4, 4, 4, 2)), r"T = pre_seq_length \(3\) or pre_seq_length \+ aft_seq_length \(6\), got T = 4"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.apply(variables, frames)
    with pytest.raises(TypeError, match="frames must have a floating-point dtype"):
        model.apply(variables, jnp.zeros((1, 3, 4, 4, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"With a mask, frames must hold the context and the targets: .*, got T = 3"):
        model.apply(variables, jnp.zeros((1, 3, 4, 4, 2)), jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, aft_seq_length - 1, H, W, C\)"):
        model.apply(variables, jnp.zeros((1, 6, 4, 4, 2)), jnp.zeros((1, 3)))


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        (dict(hidden_dim=()), TypeError, "hidden_dim must be a non-empty sequence"),
        (dict(hidden_dim=(4, 0)), ValueError, r"hidden_dim\[1\] must be a positive int, got 0"),
        (dict(kernel_size=4), ValueError, "kernel_size must be odd"),
        (dict(patch_size=0), ValueError, "patch_size must be a positive int, got 0"),
        (dict(aft_seq_length=1.0), TypeError, r"aft_seq_length must be a positive int, got 1.0"),
        (dict(layer_norm=1), TypeError, "layer_norm must be a bool"),
        (dict(conv_gradient="fast"), ValueError, "conv_gradient"),
    ],
)
def test_the_model_refuses_bad_fields(fields, error, message):
    with pytest.raises(error, match=message):
        FramePredictor(**{"hidden_dim": (4,), **fields})
