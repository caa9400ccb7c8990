import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch

import convlstm_jax
import convlstm_torch
from convlstm_common.tolerance import tolerance_for
from convlstm_jax import flax_to_torch, load_checkpoint, torch_to_flax

VARIANTS = [(peephole, bias) for peephole in ("conv", "hadamard", None) for bias in (True, False)]


def _torch_model(peephole="conv", bias=True, **kwargs):
    torch.manual_seed(0)
    options = {"input_dim": 3, "hidden_dim": [5, 2, 4], "kernel_size": [(3, 3), (1, 1), (5, 3)], "num_layers": 3}
    model = convlstm_torch.ConvLSTM(**(options | kwargs), bias=bias, peephole=peephole)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("w_c"):
                p.uniform_(-1, 1)
    return model


def _numpy_state_dict(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("peephole", "bias"), VARIANTS)
def test_torch_flax_torch_is_bit_exact(peephole, bias):
    state_dict = _numpy_state_dict(_torch_model(peephole, bias))
    back = flax_to_torch(torch_to_flax(state_dict))
    assert back.keys() == state_dict.keys()
    for key, value in state_dict.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value), key


@pytest.mark.parametrize(("peephole", "bias"), VARIANTS)
def test_flax_torch_flax_is_bit_exact(peephole, bias):
    model = convlstm_jax.ConvLSTM(3, [5, 2], [(3, 3), (1, 5)], 2, bias=bias, peephole=peephole)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 1, 4, 4, 3)))["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), params)
    again = torch_to_flax(flax_to_torch({"params": params}), model)["params"]
    assert jax.tree.structure(again) == jax.tree.structure(params)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(params)))


def test_converted_weights_load_into_torch_strictly():
    model = _torch_model("hadamard")
    state_dict = flax_to_torch(torch_to_flax(model.state_dict()))  # torch tensors in, NumPy out
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)


def test_the_architecture_is_read_from_the_state_dict():
    from convlstm_jax._convert import infer_architecture

    specs, peephole, bias = infer_architecture(_numpy_state_dict(_torch_model("hadamard", False)))
    assert [(s.input_dim, s.hidden_dim, s.kernel_size) for s in specs] == [
        (3, 5, (3, 3)),
        (5, 2, (1, 1)),
        (2, 4, (5, 3)),
    ]
    assert (peephole, bias) == ("hadamard", False)


def test_every_problem_is_listed_at_once():
    state_dict = _numpy_state_dict(_torch_model())
    del state_dict["cell_list.1.conv_c.bias"]
    state_dict["cell_list.0.extra"] = np.zeros(3, np.float32)
    state_dict["cell_list.2.conv_cnext.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    state_dict["cell_list.0.conv.bias"] = state_dict["cell_list.0.conv.bias"].astype(np.int32)
    with pytest.raises(ValueError, match="4 problem") as info:
        torch_to_flax(state_dict)
    message = str(info.value)
    assert "3->5 3x3, 5->2 1x1, 2->4 5x3], peephole='conv', bias=True" in message
    assert "missing key 'cell_list.1.conv_c.bias' (expected shape (4,))" in message
    assert "unexpected key 'cell_list.0.extra' (shape (3,))" in message
    assert "key 'cell_list.2.conv_cnext.weight' has shape (4, 4, 3, 3), expected (4, 4, 5, 3)" in message
    assert "key 'cell_list.0.conv.bias' has dtype int32, expected a floating-point dtype" in message


def test_a_model_fixes_the_expected_architecture():
    state_dict = _numpy_state_dict(_torch_model(None))  # an ndrplz checkpoint
    seed_model = convlstm_jax.ConvLSTM(None, [5, 2, 4], [(3, 3), (1, 1), (5, 3)], 3)  # peephole="conv"
    with pytest.raises(ValueError, match=r"missing key 'cell_list.0.conv_c.weight' \(expected shape \(10, 5, 3, 3\)\)"):
        torch_to_flax(state_dict, seed_model)
    wrong_input = convlstm_jax.ConvLSTM(2, [5, 2, 4], [(3, 3), (1, 1), (5, 3)], 3, peephole=None)
    with pytest.raises(
        ValueError, match=r"'cell_list.0.conv.weight' has shape \(20, 8, 3, 3\), expected \(20, 7, 3, 3\)"
    ):
        torch_to_flax(state_dict, wrong_input)


def test_prefixes_are_stripped_and_hinted():
    state_dict = {f"module.{k}": v for k, v in _numpy_state_dict(_torch_model(None)).items()}
    with pytest.raises(ValueError, match="no ConvLSTM layer"):
        torch_to_flax(state_dict)
    assert set(torch_to_flax(state_dict, prefix="module.")["params"]) == {"cell_0", "cell_1", "cell_2"}
    state_dict["module.cell_list.0.conv.weight"] = np.zeros((1,), np.float32)
    with pytest.raises(ValueError, match=r"The keys start with 'module\.': pass prefix= to strip it"):
        torch_to_flax({**state_dict, "cell_list.0.conv.weight": np.zeros(1, np.float32)})


def test_bad_variables_are_listed():
    with pytest.raises(
        ValueError,
        match=r"unexpected entry 'Dense_0'.*\n.*cell_0: no 'state_to_state' kernel\n.*cell_0: unexpected entry 'gamma'",
    ):
        flax_to_torch({"params": {"Dense_0": {"kernel": np.zeros(2)}, "cell_0": {"gamma": np.zeros(2)}}})
    with pytest.raises(TypeError, match="variables must be a mapping"):
        flax_to_torch([1, 2])


def test_converted_weights_reproduce_the_reference():
    model = _torch_model("conv", input_dim=3)
    x = torch.randn(4, 2, 3, 6, 5)
    expected_outputs, expected_states = model(x)
    jax_model = convlstm_jax.ConvLSTM(3, [5, 2, 4], [(3, 3), (1, 1), (5, 3)], 3, channels_last=False)
    outputs, states = jax_model.apply(torch_to_flax(model.state_dict()), jnp.asarray(x.numpy()))
    np.testing.assert_allclose(outputs[0], expected_outputs[0].detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(states[0][1], expected_states[0][1].detach().numpy(), rtol=1e-4, atol=1e-5)


def test_load_checkpoint_from_safetensors_and_torch_files(tmp_path):
    from safetensors.numpy import save_file

    model = _torch_model("hadamard")
    expected = torch_to_flax(model.state_dict())
    save_file(_numpy_state_dict(model), str(tmp_path / "model.safetensors"))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, tmp_path / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "parallel.pt")
    for path, prefix in [("model.safetensors", ""), ("model.pt", ""), ("wrapped.pth", ""), ("parallel.pt", "module.")]:
        loaded = load_checkpoint(tmp_path / path, prefix=prefix)
        assert jax.tree.all(jax.tree.map(np.array_equal, loaded, expected)), path
    with pytest.raises(ValueError, match=r"Unknown checkpoint format '.ckpt'"):
        load_checkpoint(tmp_path / "model.ckpt")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtypes_are_kept_or_cast_never_silently_changed(dtype):
    state_dict = {k: v.to(dtype) for k, v in _torch_model(None).state_dict().items()}
    kept = torch_to_flax(state_dict)["params"]["cell_0"]["input_to_state"]["kernel"]
    assert str(kept.dtype) == str(dtype).removeprefix("torch.")
    np.testing.assert_array_equal(
        kept.astype(np.float64), state_dict["cell_list.0.conv.weight"][:, :3].double().numpy().transpose(2, 3, 1, 0)
    )
    model = convlstm_jax.ConvLSTM(3, [5, 2, 4], [(3, 3), (1, 1), (5, 3)], 3, peephole=None)
    with pytest.raises(
        ValueError,
        match=rf"key\(s\) have dtype {kept.dtype} where the model's param_dtype is float32.*pass dtype= to cast",
    ):
        torch_to_flax(state_dict, model)
    cast = torch_to_flax(state_dict, model, dtype=jnp.float32)
    assert {leaf.dtype for leaf in jax.tree.leaves(cast)} == {np.dtype("float32")}


def test_mixed_dtypes_are_an_error():
    state_dict = _numpy_state_dict(_torch_model())
    state_dict["cell_list.1.conv.bias"] = state_dict["cell_list.1.conv.bias"].astype(np.float64)
    with pytest.raises(
        ValueError, match=r"mixed dtypes: float32 \(17 keys.*float64 \(1 keys, e.g. 'cell_list.1.conv.bias'\)"
    ):
        torch_to_flax(state_dict)
    assert (
        torch_to_flax(state_dict, dtype=np.float64)["params"]["cell_0"]["input_to_state"]["kernel"].dtype == np.float64
    )


def test_another_variants_keys_are_listed():
    state_dict = _numpy_state_dict(_torch_model("hadamard"))
    model = convlstm_jax.ConvLSTM(3, [5, 2, 4], [(3, 3), (1, 1), (5, 3)], 3, peephole="conv")
    with pytest.raises(ValueError, match="21 problem") as info:
        torch_to_flax(state_dict, model)
    assert "unexpected key 'cell_list.0.w_ci' (shape (5, 1, 1))" in str(info.value)
    assert "missing key 'cell_list.2.conv_cnext.bias' (expected shape (4,))" in str(info.value)
    assert "These are the keys of peephole='hadamard'" in str(info.value)


def test_a_transposed_kernel_is_listed():
    state_dict = _numpy_state_dict(_torch_model(None, kernel_size=[(3, 5), (1, 1), (5, 3)]))
    state_dict["cell_list.0.conv.weight"] = state_dict["cell_list.0.conv.weight"].transpose(0, 1, 3, 2)
    model = convlstm_jax.ConvLSTM(3, [5, 2, 4], [(3, 5), (1, 1), (5, 3)], 3, peephole=None)
    with pytest.raises(
        ValueError, match=r"'cell_list.0.conv.weight' has shape \(20, 8, 5, 3\), expected \(20, 8, 3, 5\)"
    ):
        torch_to_flax(state_dict, model)


@pytest.mark.parametrize(
    ("input_dim", "input_kernel_size"),
    [(3, [(5, 5), (5, 5), (3, 3)]), (0, None), (0, 5)],
    ids=["other input kernels", "no input", "no input, other input kernels"],
)
@pytest.mark.parametrize("bias", [True, False])
def test_input_kernels_and_stacks_without_input_convert_both_ways(input_dim, input_kernel_size, bias):
    from convlstm_jax._convert import infer_architecture

    reference = _torch_model("conv", bias, input_dim=input_dim, input_kernel_size=input_kernel_size)
    state_dict = _numpy_state_dict(reference)
    variables = torch_to_flax(state_dict)
    back = flax_to_torch(variables)
    assert back.keys() == state_dict.keys()
    assert all(np.array_equal(back[key], value) for key, value in state_dict.items())
    specs = infer_architecture(state_dict)[0]
    assert [s.input_dim for s in specs] == [c.input_dim for c in reference.cell_list]
    # A layer without input has no input kernel to read.
    with_input = [(c.input_kernel_size, s.input_kernel_size) for c, s in zip(reference.cell_list, specs) if c.input_dim]
    assert all(tuple(ours) == tuple(theirs) for ours, theirs in with_input)
    model = convlstm_jax.ConvLSTM(
        input_dim, [5, 2, 4], [(3, 3), (1, 1), (5, 3)], 3, bias=bias, input_kernel_size=input_kernel_size
    )
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 1, 4, 4, input_dim)))
    assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, shapes)


def test_a_model_without_input_rejects_a_state_dict_with_one():
    model = convlstm_jax.ConvLSTM(0, [5, 2, 4], [(3, 3), (1, 1), (5, 3)], 3)
    with pytest.raises(
        ValueError, match=r"(?s)missing key 'cell_list.0.conv_h.weight'.*unexpected key 'cell_list.0.conv.weight'"
    ):
        torch_to_flax(_numpy_state_dict(_torch_model()), model)


def test_flax_to_torch_gives_writable_arrays_torch_takes_without_a_warning():
    model = convlstm_jax.ConvLSTM(2, 4, 3, 1)
    variables = model.init(jax.random.key(0), jnp.ones((1, 1, 4, 4, 2)))
    state_dict = flax_to_torch(variables)
    assert all(v.flags.writeable and v.flags.c_contiguous for v in state_dict.values())
    reference = convlstm_torch.ConvLSTM(2, 4, 3, 1)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)


def _normalised(num_layers, frame_size=(6, 5)):
    """A torch stack with layer norms (the second layer strided) and its numpy state_dict."""
    torch.manual_seed(0)
    options = {"hidden_dim": [3, 4][:num_layers], "stride": [1, 2][:num_layers], "layer_norm": True}
    reference = convlstm_torch.ConvLSTM(2, kernel_size=3, num_layers=num_layers, frame_size=frame_size, **options)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.uniform_(-1, 1)
    return reference, options, _numpy_state_dict(reference)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_a_normalised_model_without_frame_size_takes_its_frames_from_the_norms(num_layers):
    reference, options, state_dict = _normalised(num_layers)
    model = convlstm_jax.ConvLSTM(2, kernel_size=3, num_layers=num_layers, channels_last=False, **options)
    variables = torch_to_flax(state_dict, model)
    frames = [(6, 5), (3, 3)][:num_layers]
    for layer, (cell, frame) in enumerate(zip(reference.cell_list, frames)):
        for norm in ("input_norm", "state_norm"):
            assert variables["params"][f"cell_{layer}"][norm]["scale"].shape == (*frame, 4 * cell.hidden_dim)
    back = flax_to_torch(variables, model)
    assert back.keys() == state_dict.keys()
    assert all(np.array_equal(back[key], value) for key, value in state_dict.items())
    x = torch.randn(3, 2, 2, 6, 5)
    with jax.default_matmul_precision("highest"):
        outputs, _ = model.apply(variables, jnp.asarray(x.numpy()))
    expected = reference(x)[0][-1].detach().numpy()
    assert tolerance_for("float32").score(np.asarray(outputs[-1]), expected) <= 1


def test_the_norms_must_be_there_and_hold_a_models_frame_size_or_one_its_first_layer_keeps():
    _, options, state_dict = _normalised(2)
    other = convlstm_jax.ConvLSTM(2, kernel_size=3, num_layers=2, frame_size=(7, 5), **options)
    with pytest.raises(ValueError, match=r"'cell_list.0.norm_x.weight' has shape \(12, 6, 5\), expected \(12, 7, 5\)"):
        torch_to_flax(state_dict, other)
    strided = convlstm_jax.ConvLSTM(2, kernel_size=3, num_layers=2, hidden_dim=[3, 4], stride=2, layer_norm=True)
    with pytest.raises(ValueError, match=r"layer norms are for states of \(6, 5\), .* give the model its frame_size"):
        torch_to_flax(state_dict, strided)
    plain = {key: value for key, value in state_dict.items() if ".norm_" not in key}
    unsized = convlstm_jax.ConvLSTM(2, kernel_size=3, num_layers=2, **options)
    with pytest.raises(ValueError, match=r"layer_norm=True\), and the weights hold no layer norms"):
        torch_to_flax(plain, unsized)


@pytest.mark.parametrize("form", ["dict", "pt", "safetensors"])
def test_a_state_dict_of_undotted_keys_holds_no_convlstm_layer(tmp_path, form):
    from safetensors.numpy import save_file

    state_dict = {key: value.numpy() for key, value in torch.nn.Conv2d(2, 4, 3).state_dict().items()}
    with pytest.raises(ValueError, match=r"holds no ConvLSTM layer .*keys: \['bias', 'weight'\]"):
        if form == "dict":
            torch_to_flax(state_dict)
        elif form == "pt":
            torch.save(torch.nn.Conv2d(2, 4, 3).state_dict(), tmp_path / "conv2d.pt")
            load_checkpoint(tmp_path / "conv2d.pt")
        else:
            save_file(state_dict, str(tmp_path / "conv2d.safetensors"))
            load_checkpoint(tmp_path / "conv2d.safetensors")
    assert convlstm_jax.infer_architecture({"weight": np.zeros((4, 2, 3, 3))}) == ((), None, False)


def test_a_prefix_that_no_key_has_says_so_and_names_the_keys():
    state_dict = _numpy_state_dict(_torch_model(None))
    with pytest.raises(
        ValueError, match=r"No key starts with prefix 'module\.'; the keys: \['cell_list\.0\.conv\."
    ) as info:
        torch_to_flax(state_dict, prefix="module.")
    assert "\n" not in str(info.value)


def test_a_data_parallel_state_dict_without_prefix_gets_the_prefix_hint():
    state_dict = {f"module.{k}": v for k, v in _numpy_state_dict(_torch_model(None)).items()}
    with pytest.raises(ValueError, match=r"holds no ConvLSTM layer.*The keys start with 'module\.': pass prefix="):
        torch_to_flax(state_dict)


def _truncated(tmp_path, name, legacy=False, keep=0.5):
    torch.save(_torch_model(None).state_dict(), tmp_path / "whole.pt", _use_new_zipfile_serialization=not legacy)
    content = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / name).write_bytes(content[: int(len(content) * keep)])
    return tmp_path / name


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: _truncated(t, "x.pt", keep=0), r"'.*x\.pt' is empty"),
        (lambda t: _truncated(t, "cut.pt"), r"'.*cut\.pt' is not a complete torch checkpoint \(truncated\?\)"),
        (lambda t: _truncated(t, "old.pt", legacy=True, keep=0.01), r"'.*old\.pt' is not a complete torch checkpoint"),
        (lambda t: _truncated(t, "end.pt", legacy=True, keep=0.9), r"'.*end\.pt' is not a complete torch checkpoint"),
    ],
    ids=["empty", "truncated", "truncated_legacy_start", "truncated_legacy_end"],
)
def test_an_empty_or_truncated_torch_file_says_what_it_is(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        load_checkpoint(make(tmp_path))
