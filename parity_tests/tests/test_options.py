"""Every front takes the declared options (`convlstm_common.options`), documents them, hands them to
its cells, and the shared vectors exercise them.

A new option is declared once; where a front, a docstring or the vectors miss it, a test here
names what is missing.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import types

import jax.numpy as jnp
import pytest
from flax import nnx

from convlstm_common.options import CellOptions, StackOptions, declared, describe
from convlstm_jax._convlstm import cell_options
from convlstm_jax.options import JaxCellOptions, JaxStackOptions
from parity_tests.cases import CASES
from parity_tests.runs import model_kwargs

TORCH = pytest.mark.needs_torch

FRONTS = [
    pytest.param("convlstm_torch", "ConvLSTM", StackOptions, "torch", marks=TORCH, id="torch-stack"),
    pytest.param("convlstm_torch", "ConvLSTMCell", CellOptions, "torch", marks=TORCH, id="torch-cell"),
    pytest.param("convlstm_jax", "ConvLSTM", JaxStackOptions, "jax", id="linen-stack"),
    pytest.param("convlstm_jax", "ConvLSTMCell", JaxCellOptions, "jax", id="linen-cell"),
    pytest.param("convlstm_jax.nnx", "ConvLSTM", JaxStackOptions, "jax", id="nnx-stack"),
    pytest.param("convlstm_jax.nnx", "ConvLSTMCell", JaxCellOptions, "jax", id="nnx-cell"),
]

FRAMEWORK_ARGUMENTS = {"parent", "name", "rngs"}
"""Arguments a front has that are not options: a Linen module's parent and name, NNX's rngs."""

NOT_IN_VECTORS = {
    "check_finite": "a check that raises, not a result (parity_tests/tests/test_reliability.py)",
    "dropout": "drawn masks come from each framework's own generator; the vectors give masks explicitly",
    "recurrent_dropout": "as dropout",
    "spatial_dims": "read from the frame of each case (`frame`: signals and volumes)",
}
"""Shared options that no vector sets by name, and why; every other one some vector sets."""


def front(module: str, name: str) -> type:
    return getattr(importlib.import_module(module), name)


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(cls.__init__)
    return {n: p for n, p in list(signature.parameters.items())[1:] if n not in FRAMEWORK_ARGUMENTS}


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize(("module", "name", "options", "framework"), FRONTS)
def test_every_front_takes_every_declared_option_with_its_default(module, name, options, framework):
    del framework
    taken = parameters(front(module, name))
    for field in declared(options):
        assert field.name in taken, f"{module}.{name} does not take the declared option {field.name!r}"
        parameter = taken[field.name]
        if field.default is not dataclasses.MISSING:
            assert parameter.default == field.default, f"{module}.{name}: {field.name}'s default differs"
        if field.kw_only:
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, f"{module}.{name}: {field.name} is positional"


@pytest.mark.parametrize(("module", "name", "options", "framework"), FRONTS)
def test_every_front_documents_every_declared_option(module, name, options, framework):
    doc = words(front(module, name).__doc__)
    assert "{options}" not in doc
    for field in declared(options):
        entry = words(f"{field.name}: {describe(field, framework)}")
        assert entry in doc, f"{module}.{name}'s docstring lacks the declared doc of {field.name!r}"


@pytest.mark.parametrize(
    ("module", "options"),
    [
        pytest.param("convlstm_torch", StackOptions, marks=TORCH, id="torch"),
        pytest.param("convlstm_jax", JaxStackOptions, id="linen"),
        pytest.param("convlstm_jax.nnx", JaxStackOptions, id="nnx"),
    ],
)
def test_the_stacks_hand_every_cell_option_to_their_cells(module, options):
    chosen = {
        "peephole": "hadamard",
        "input_kernel_size": (5,),
        "padding": "valid",
        "stride": (2,),
        "dilation": (2,),
        "spatial_dims": 1,
        "dtype": jnp.bfloat16,
        "param_dtype": jnp.float16,
        "precision": "highest",
        "conv_gradient": "xla",
        "forget_bias": 1.5,
        "layer_norm": True,
        "frame_size": (41,),  # the stack's input; each layer's is the state size of the layer below
    }
    per_layer = {"frame_size": [(41,), (17,)]}  # (41 - 2·(5 - 1) - 1) // 2 + 1 = 17
    names = [f.name for f in declared(CellOptions if module == "convlstm_torch" else JaxCellOptions)]
    assert set(names) <= set(chosen), f"choose a value for the new cell options {set(names) - set(chosen)}"
    kwargs = {name: chosen[name] for name in names}
    stack = front(module, "ConvLSTM")
    extra = {"rngs": nnx.Rngs(0)} if module == "convlstm_jax.nnx" else {}
    model = stack(3, [4, 2], (3,), 2, **kwargs, **extra)
    if module == "convlstm_torch":
        cells = list(model.cell_list)
    elif module == "convlstm_jax":
        # Linen builds its cells when called, from these keyword arguments.
        cells = [types.SimpleNamespace(**cell_options(model, spec, model.dtype)) for spec in model.layer_specs()]
    else:
        cells = [getattr(model, f"cell_{index}") for index in range(2)]
    for index, cell in enumerate(cells):
        spec = cell.spec if module == "convlstm_torch" else None
        for option in names:
            value = getattr(spec, option) if spec is not None and hasattr(spec, option) else getattr(cell, option)
            expected = per_layer[option][index] if option in per_layer else chosen[option]
            assert value == expected, f"{module}: cell {index} does not get {option} ({value!r})"


def test_every_shared_option_is_set_by_some_vector_or_is_listed_with_a_reason():
    set_by_vectors = {
        name
        for config in CASES.values()
        for name, value in model_kwargs(config).items()
        if name in config and value != StackOptions.__dataclass_fields__[name].default
    }
    for field in declared(StackOptions):
        if field.name in NOT_IN_VECTORS:
            assert field.name not in set_by_vectors, f"{field.name} is now in a vector: drop it from NOT_IN_VECTORS"
            continue
        assert field.name in set_by_vectors, (
            f"no shared vector sets {field.name!r}: add a case to parity_tests/cases.py and regenerate "
            "(python -m parity_tests.generate --case NAME)"
        )


SEED_SIGNATURE = "input_dim, hidden_dim, kernel_size, num_layers, batch_first=False, bias=True, return_all_layers=False"
"""The seed's `ConvLSTM` signature, as its README writes it: the positional API every stack keeps."""

DEFAULTS = {
    "peephole": "conv",  # the seed's convolutions of the cell state
    "input_kernel_size": None,
    "padding": "same",
    "stride": 1,
    "dilation": 1,
    "spatial_dims": 2,
    "check_finite": False,  # NaN and inf propagate unless asked
    "reverse": False,
    "keep_order": True,
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
    "forget_bias": 0.0,
    "layer_norm": False,
    "frame_size": None,
}
"""The options beyond the seed's and their defaults: each leaves the seed's model as it was."""


def test_the_stacks_keep_the_seeds_positional_arguments_and_every_default_leaves_the_seeds_model():
    positional = [f for f in declared(StackOptions) if not f.kw_only]
    written = ", ".join(f.name if f.default is dataclasses.MISSING else f"{f.name}={f.default}" for f in positional)
    assert written == SEED_SIGNATURE
    assert {f.name: f.default for f in declared(StackOptions) if f.kw_only} == DEFAULTS


@pytest.mark.parametrize(
    ("module", "positional"),
    [
        pytest.param("convlstm_torch", ["input_dim", "hidden_dim", "kernel_size", "bias"], marks=TORCH, id="torch"),
        pytest.param("convlstm_jax", ["hidden_dim", "kernel_size", "bias"], id="linen"),  # as flax's ConvLSTMCell
        pytest.param("convlstm_jax.nnx", ["input_dim", "hidden_dim", "kernel_size"], id="nnx"),
    ],
)
def test_the_cells_take_their_sizes_by_position_and_every_option_by_keyword(module, positional):
    taken = parameters(front(module, "ConvLSTMCell"))
    assert [n for n, p in taken.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD] == positional


@pytest.mark.parametrize(
    ("module", "name"),
    [
        pytest.param("convlstm_torch", "ConvLSTM", marks=TORCH, id="torch-stack"),
        pytest.param("convlstm_torch", "ConvLSTMCell", marks=TORCH, id="torch-cell"),
        pytest.param("convlstm_jax", "ConvLSTM", id="linen-stack"),
        pytest.param("convlstm_jax", "ConvLSTMCell", id="linen-cell"),
        pytest.param("convlstm_jax.nnx", "ConvLSTM", id="nnx-stack"),
        pytest.param("convlstm_jax.nnx", "ConvLSTMCell", id="nnx-cell"),
    ],
)
@pytest.mark.parametrize(("value", "error"), [("1.0", TypeError), (True, TypeError), (float("inf"), ValueError)])
def test_a_forget_bias_that_is_not_a_finite_number_is_refused(module, name, value, error):
    extra = {"rngs": nnx.Rngs(0)} if module == "convlstm_jax.nnx" else {}
    sizes = (2, 4, 3, 1) if name == "ConvLSTM" else ((4, 3) if module == "convlstm_jax" else (2, 4, 3))
    with pytest.raises(error, match="forget_bias must be"):
        front(module, name)(*sizes, forget_bias=value, **extra)


def test_a_normalised_cell_refuses_frames_of_another_size_than_its_frame_size():
    import jax
    import jax.numpy as jnp

    from convlstm_jax import ConvLSTMCell

    cell = ConvLSTMCell(4, 3, layer_norm=True, frame_size=(6, 5))
    x = jnp.zeros((1, 7, 5, 2))
    with pytest.raises(ValueError, match=r"frames of 6x5 \(frame_size\), got frames of 7x5"):
        cell.init(jax.random.key(0), cell.initialize_carry(jax.random.key(1), x.shape), x)
