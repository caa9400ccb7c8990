"""`CONVERSION_TABLE` against reference models: every key matched once, every Flax param covered, round trips exact."""

import collections
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import convlstm_jax
from convlstm_jax import flax_to_torch, infer_architecture, torch_to_flax
from convlstm_jax._convert import CONVERSION_TABLE, LAYERS, SIZES

# Two layers each: the first one's input-to-state convolution varies, the second is always fused.
LAYOUTS = {
    "fused": {"input_dim": 2},
    "separate kernels": {"input_dim": 2, "input_kernel_size": [1, 3]},
    "no input": {"input_dim": 0},
    "strided": {"input_dim": 2, "stride": [2, 1]},  # equal kernels, another frame size: two convolutions
    "layer norm": {"input_dim": 1, "layer_norm": True, "frame_size": 6},  # two normalised convolutions, 1 channel
    "layer norm, no input": {"input_dim": 0, "layer_norm": True, "frame_size": 6},
}
GRID = list(itertools.product((1, 2, 3), ("conv", "hadamard", None), (True, False), LAYOUTS))
IDS = [f"{rank}d-{peephole}-{'bias' if bias else 'nobias'}-{layout}" for rank, peephole, bias, layout in GRID]


def _options(rank, peephole, bias, layout):
    kernel = [(3,) * rank, (1,) * rank]
    return {"hidden_dim": [3, 2], "kernel_size": kernel, "num_layers": 2, "spatial_dims": rank} | {
        "bias": bias,
        "peephole": peephole,
        **LAYOUTS[layout],
    }


def _reference_state_dict(rank, peephole, bias, layout, bidirectional=False):
    torch = pytest.importorskip("torch", reason="needs torch, the reference")
    import convlstm_torch

    torch.manual_seed(0)
    options = _options(rank, peephole, bias, layout)
    model = convlstm_torch.ConvLSTM(**options)
    if bidirectional:
        model = convlstm_torch.Bidirectional(model)
    with torch.no_grad():
        for parameter in model.parameters():  # every weight its own values, the peepholes too
            parameter.uniform_(-1, 1)
    return {key: value.numpy() for key, value in model.state_dict().items()}


def _model(rank, peephole, bias, layout):
    return convlstm_jax.ConvLSTM(**_options(rank, peephole, bias, layout))


def _matches(key, specs, peephole, bias):
    """The table entries that `key` (`cell_list.<l>.<name>`) matches in a stack of `specs`."""
    _, layer, name = key.split(".", 2)
    return [e for e in CONVERSION_TABLE if e.torch == name and e.applies(specs[int(layer)], peephole, bias)]


def _assert_bits_equal(got, expected):
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert got[key].tobytes() == value.tobytes(), key


def test_the_table_is_well_formed():
    assert len({entry.torch for entry in CONVERSION_TABLE}) == len(CONVERSION_TABLE)
    for entry in CONVERSION_TABLE:
        assert (
            entry.layers in LAYERS and set(entry.shape) <= set(SIZES) and entry.peephole in ("conv", "hadamard", None)
        )
        # A norm's shift is there whatever `bias` says; a convolution's bias only with `bias`.
        assert entry.bias == (entry.torch.endswith(".bias") and not entry.torch.startswith("norm_"))


@pytest.mark.parametrize(("rank", "peephole", "bias", "layout"), GRID, ids=IDS)
def test_every_torch_key_matches_exactly_one_entry(rank, peephole, bias, layout):
    state_dict = _reference_state_dict(rank, peephole, bias, layout)
    specs = _model(rank, peephole, bias, layout).layer_specs()
    for key, value in state_dict.items():
        (entry,) = _matches(key, specs, peephole, bias)
        assert entry.torch_shape(specs[int(key.split(".")[1])]) == value.shape, key
    # ... and every entry that applies has its key: the table says no more than the reference holds.
    applying = {
        f"cell_list.{index}.{entry.torch}"
        for index, spec in enumerate(specs)
        for entry in CONVERSION_TABLE
        if entry.applies(spec, peephole, bias)
    }
    assert applying == state_dict.keys()


@pytest.mark.parametrize(("rank", "peephole", "bias", "layout"), GRID, ids=IDS)
def test_every_flax_param_is_covered_once(rank, peephole, bias, layout):
    model = _model(rank, peephole, bias, layout)
    frame = (1, 1, *(6,) * rank, model.input_dim)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.ones(frame))["params"]
    for index, spec in enumerate(model.layer_specs()):
        paths = collections.Counter(
            path for entry in CONVERSION_TABLE if entry.applies(spec, peephole, bias) for path in entry.flax
        )
        assert set(paths.values()) == {1}
        leaves = jax.tree_util.tree_flatten_with_path(params[f"cell_{index}"])[0]
        assert set(paths) == {"/".join(key.key for key in path) for path, _ in leaves}


@pytest.mark.parametrize(("rank", "peephole", "bias", "layout"), GRID, ids=IDS)
def test_torch_flax_torch_is_the_identity(rank, peephole, bias, layout):
    state_dict = _reference_state_dict(rank, peephole, bias, layout)
    model = _model(rank, peephole, bias, layout)
    variables = torch_to_flax(state_dict, model)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 1, *(6,) * rank, model.input_dim)))
    assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, shapes)
    _assert_bits_equal(flax_to_torch(variables, model), state_dict)
    if layout != "strided":  # the weights alone say all
        _assert_bits_equal(flax_to_torch(torch_to_flax(state_dict)), state_dict)
        assert infer_architecture(variables) == infer_architecture(state_dict)


@pytest.mark.parametrize(("rank", "peephole", "bias"), [(1, "conv", True), (2, "hadamard", False), (3, None, True)])
def test_a_bidirectional_state_dict_converts_by_direction(rank, peephole, bias):
    state_dict = _reference_state_dict(rank, peephole, bias, "separate kernels", bidirectional=True)
    model = _model(rank, peephole, bias, "separate kernels")
    specs = model.layer_specs()
    back = {}
    for direction in ("forward_layer", "backward_layer"):
        keys = [key.removeprefix(f"{direction}.") for key in state_dict if key.startswith(f"{direction}.")]
        assert all(len(_matches(key, specs, peephole, bias)) == 1 for key in keys)
        variables = torch_to_flax(state_dict, model, prefix=f"{direction}.")
        back |= {f"{direction}.{key}": value for key, value in flax_to_torch(variables, model).items()}
    _assert_bits_equal(back, state_dict)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_the_reader_takes_the_rank_of_flax_params_or_refuses_another(rank):
    model = _model(rank, "conv", True, "separate kernels")
    variables = torch_to_flax(_reference_state_dict(rank, "conv", True, "separate kernels"), model)
    assert infer_architecture(variables, rank) == infer_architecture(variables)
    assert infer_architecture(variables, rank)[0] == model.layer_specs()
    other = 1 + rank % 3
    with pytest.raises(ValueError, match=rf"cell_0/state_to_state/kernel has shape .*: a {rank}-D kernel"):
        infer_architecture(variables, other)


def test_no_flax_params_convert_to_nothing():
    assert infer_architecture({"params": {}}) == ((), None, False)
    assert flax_to_torch({"params": {}}) == {}


def test_a_flax_param_that_no_entry_covers_is_refused():
    model = _model(2, "conv", True, "fused")
    variables = torch_to_flax(_reference_state_dict(2, "conv", True, "fused"), model)
    variables["params"]["cell_0"]["state_to_state"]["bias"] = np.zeros(12, np.float32)  # a layer with input has none
    with pytest.raises(ValueError, match=r"cell_0: unexpected entry 'state_to_state/bias'"):
        flax_to_torch(variables, model)
