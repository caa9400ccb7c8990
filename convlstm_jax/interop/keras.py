"""Keras 3 ConvLSTM layers and models as this library's Linen modules, with their weights.

`from_keras` reads a `keras.layers.ConvLSTM1D`/`ConvLSTM2D`/`ConvLSTM3D`, a `Bidirectional` of one,
or a model that is a stack of them (a Keras object, a `.keras` file, or a `.weights.h5` file with
its architecture), and returns a `convlstm_jax.ConvLSTM` or `convlstm_jax.Bidirectional` and the
variables for its `apply`. It refuses, naming the layer and the setting, what this library cannot
compute exactly.

Keras is imported only when `from_keras` is called (with `KERAS_BACKEND` set to `"jax"` unless the
environment says otherwise); the weights are read as NumPy arrays, so any Keras backend works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

KERAS_LAYERS = ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
"""The Keras layers `from_keras` reads (by rank: signals, images, volumes)."""

KERAS_MERGES = {"concat": "concat", "sum": "sum"}
"""Keras `Bidirectional` `merge_mode` -> this library's `Bidirectional` `merge`."""

_WEIGHTS_SUFFIX = ".weights.h5"
_MODEL_SUFFIX = ".keras"


def keras_gates_to_library(array: np.ndarray) -> np.ndarray:
    """Reorders the gate axis (the last) from Keras's (i, f, c, o) to this library's (i, f, o, g).

    Keras's candidate c is this library's g (the tanh gate); the four blocks keep their values.

    >>> keras_gates_to_library(np.arange(8)).tolist()
    [0, 1, 2, 3, 6, 7, 4, 5]
    """
    i, f, c, o = np.split(np.asarray(array), 4, axis=-1)
    return np.concatenate([i, f, o, c], axis=-1)


def import_keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as error:
        raise ImportError("convlstm_jax.from_keras needs Keras 3 (pip install 'keras>=3').") from error
    if not hasattr(keras, "saving") or int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(f"convlstm_jax.from_keras needs Keras 3, found Keras {keras.__version__}.")
    return keras


def _describe(layer: Any) -> str:
    """A layer for messages: "ConvLSTM2D 'conv_lstm2d'"."""
    return f"{type(layer).__name__} {getattr(layer, 'name', '?')!r}"


def _activation_name(function: Any) -> str:
    """An activation for messages: its name ("relu"), or its repr."""
    return getattr(function, "__name__", None) or repr(function)


def _is_conv_lstm(keras: Any, layer: Any) -> bool:
    return type(layer) in tuple(getattr(keras.layers, name) for name in KERAS_LAYERS)


def _refuse(source: Any, problems: list[str]) -> None:
    """Raises one ValueError listing every problem found in `source` (the problem itself where it is
    the only one); nothing where there is none."""
    problems = list(dict.fromkeys(problems))
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValueError(
            f"{_describe(source)} cannot be read into this library ({len(problems)} problem(s)):\n  - "
            + "\n  - ".join(problems)
        )


def _layer_problems(keras: Any, layer: Any, kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[str]:
    """Each setting of a Keras ConvLSTM layer that this library cannot compute, as a message."""
    where, cell, padding = _describe(layer), layer.cell, layer.cell.padding
    problems = []
    if layer.stateful:
        problems.append(
            f"{where} has stateful=True: its state carries over between batches, which this library's "
            "models do not keep (pass the state as hidden_state instead)."
        )
    for setting, function, wanted in (
        ("activation", cell.activation, "tanh"),
        ("recurrent_activation", cell.recurrent_activation, "sigmoid"),
    ):
        if function not in (getattr(keras.activations, wanted), getattr(keras.ops, wanted)):
            name = _activation_name(function)
            problems.append(f"{where} has {setting}={name!r}: this library's cell has {wanted} only.")
    if any(k % 2 == 0 for k in kernel):
        problems.append(
            f"{where} has kernel_size={kernel}: this library has odd kernels only (an even kernel's "
            '"same" padding is not symmetric).'
        )
    if padding not in ("same", "valid"):
        problems.append(f'{where} has padding={padding!r}: this library has "same" and "valid" only.')
    if padding == "same" and any(s > 1 and k > 1 for s, k in zip(stride, kernel)):
        problems.append(
            f'{where} has padding="same" with strides={stride} and kernel_size={kernel}: Keras then pads '
            "by what the frame size needs, more after than before on some sizes; this library pads "
            'dilation·(k // 2) on each side. Use padding="valid", or stride 1 on the axes whose kernel is '
            "larger than 1."
        )
    if cell.data_format not in ("channels_last", "channels_first"):
        problems.append(f"{where} has data_format={cell.data_format!r}: expected channels_last or channels_first.")
    return problems


def _read_layer(keras: Any, layer: Any, problems: list[str]) -> dict[str, Any] | None:
    """The options of one Keras ConvLSTM layer in this library's terms, and its weights (in Keras's
    layout); appends to `problems` each setting this library cannot compute. None where the layer is
    no ConvLSTM layer or has no weights."""
    where = _describe(layer)
    if not _is_conv_lstm(keras, layer):
        supported = ", ".join(f"keras.layers.{name}" for name in KERAS_LAYERS)
        problems.append(f"{where} is not a ConvLSTM layer: only {supported} and a Bidirectional of one are supported.")
        return None
    cell = layer.cell
    kernel = tuple(int(k) for k in cell.kernel_size)
    stride = tuple(int(s) for s in cell.strides)
    dilation = tuple(int(d) for d in cell.dilation_rate)
    padding = cell.padding
    problems.extend(_layer_problems(keras, layer, kernel, stride))
    if not layer.built or getattr(cell, "kernel", None) is None:
        problems.append(f"{where} is not built (it has no weights yet): call it on an input, or build it, first.")
        return None
    weights = {
        "kernel": keras.ops.convert_to_numpy(cell.kernel.value),
        "recurrent_kernel": keras.ops.convert_to_numpy(cell.recurrent_kernel.value),
    }
    if cell.use_bias:
        weights["bias"] = keras.ops.convert_to_numpy(cell.bias.value)
    return {
        "layer": layer,
        "spatial_dims": len(kernel),
        "input_dim": int(weights["kernel"].shape[-2]),
        "hidden_dim": int(cell.filters),
        "kernel_size": kernel,
        "padding": padding,
        "stride": stride,
        "dilation": dilation,
        "bias": bool(cell.use_bias),
        "channels_last": cell.data_format == "channels_last",
        "go_backwards": bool(layer.go_backwards),
        "return_sequences": bool(layer.return_sequences),
        "return_state": bool(layer.return_state),
        "variable_dtype": str(layer.variable_dtype),
        "compute_dtype": str(layer.compute_dtype),
        "weights": weights,
    }


_GEOMETRY = ("spatial_dims", "input_dim", "hidden_dim", "kernel_size", "padding", "stride", "dilation", "bias")


def load_keras(keras: Any, source: Any, architecture: Any) -> Any:
    """The Keras layer or model that `source` (with `architecture`) names, with its weights."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not path.endswith((_WEIGHTS_SUFFIX, _MODEL_SUFFIX)):
            raise ValueError(f"source {path!r} must be a {_MODEL_SUFFIX} or {_WEIGHTS_SUFFIX} file.")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such Keras file: {path!r}.")
        if path.endswith(_MODEL_SUFFIX):
            if architecture is not None:
                raise ValueError(
                    f"architecture= goes with a {_WEIGHTS_SUFFIX} file only; {path!r} holds its own architecture."
                )
            return _load_model(keras, path)
        if architecture is None:
            raise ValueError(
                f"{path!r} holds weights only, no architecture: pass architecture= (the Keras model, its "
                f"config model.get_config(), or a {_MODEL_SUFFIX} file), or the {_MODEL_SUFFIX} file itself."
            )
        return _load_weights(keras, _fresh(keras, architecture), path)
    if architecture is not None:
        raise ValueError(f"architecture= goes with a {_WEIGHTS_SUFFIX} file only, not with a {type(source).__name__}.")
    if not isinstance(source, keras.layers.Layer):
        raise TypeError(
            f"source must be a Keras layer or model, or the path of a {_MODEL_SUFFIX} or {_WEIGHTS_SUFFIX} "
            f"file; got {type(source).__name__}."
        )
    return source


def _load_model(keras: Any, path: str) -> Any:
    """The model a `.keras` file holds; a file that is no zip archive (empty, or cut short) is named
    as such, not as a missing file (Keras's own word for it)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            start = file.read(4)
        why = (
            "it is empty"
            if not start
            else "its zip archive has no end (truncated?)"
            if start == b"PK\x03\x04"
            else "it is not a zip archive"
        )
        raise ValueError(
            f"{path!r} is not a readable Keras archive: {why}; a .keras file is the zip archive model.save writes."
        )
    return keras.saving.load_model(path, compile=False)


def _fresh(keras: Any, architecture: Any) -> Any:
    """A new, built Keras object of `architecture` (a model or layer, its config, or a `.keras` file)."""
    if isinstance(architecture, (str, os.PathLike)):
        path = os.fspath(architecture)
        if not path.endswith(_MODEL_SUFFIX):
            raise ValueError(f"architecture {path!r} must be a {_MODEL_SUFFIX} file (or a Keras model or its config).")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such Keras file: {path!r}.")
        return _load_model(keras, path)
    if isinstance(architecture, keras.layers.Layer):
        fresh = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(architecture))
    elif isinstance(architecture, Mapping):
        config = dict(architecture)
        if "class_name" in config and "config" in config:  # keras.saving.serialize_keras_object's form
            fresh = keras.saving.deserialize_keras_object(config)
        elif "input_layers" in config and "layers" in config:  # a functional model's get_config()
            fresh = keras.Model.from_config(config)
        elif "layers" in config:  # a Sequential's get_config()
            fresh = keras.Sequential.from_config(config)
        else:
            raise ValueError(
                "architecture is a config of neither a Sequential nor a functional model (no 'layers'): pass "
                "model.get_config(), keras.saving.serialize_keras_object(layer_or_model), or the object itself."
            )
    else:
        raise TypeError(
            f"architecture must be a Keras model or layer, its config (a dict) or a {_MODEL_SUFFIX} file; got "
            f"{type(architecture).__name__}."
        )
    if not fresh.built:
        raise ValueError(
            f"The architecture {_describe(fresh)} is not built, so its weights' shapes are unknown: give the "
            "model an Input (or build it) before taking its config."
        )
    return fresh


def _load_weights(keras: Any, fresh: Any, path: str) -> Any:
    """Loads `path` into `fresh`; a layer's weights are those of a model holding it alone."""
    model = fresh
    if not isinstance(fresh, keras.Model):
        shape = fresh.get_build_config()["input_shape"]
        model = keras.Sequential([keras.Input(batch_shape=(None, *shape[1:])), fresh])
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(f"The weights in {path!r} do not fit the architecture {_describe(fresh)}: {error}") from error
    return fresh


def _model_layers(keras: Any, model: Any, problems: list[str]) -> list[Any]:
    """The layers of `model`, in order; appends to `problems` where they are not a chain from its one
    input to its outputs."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers:
        raise ValueError(f"{_describe(model)} has no layers.")
    if isinstance(model, keras.Sequential):
        return layers
    inputs = list(model.inputs)
    if len(inputs) != 1:
        problems.append(f"{_describe(model)} has {len(inputs)} inputs: a stack of ConvLSTM layers has one.")
        return layers
    previous = inputs[0]
    for layer in layers:
        if layer.input is not previous:
            problems.append(
                f"{_describe(model)} is not a chain: {_describe(layer)} does not take the previous layer's output "
                "(and it alone) as its input."
            )
            return layers
        outputs = layer.output
        previous = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
    model_outputs = list(model.outputs)
    if not (len(model_outputs) <= len(outputs) and all(mine is theirs for mine, theirs in zip(model_outputs, outputs))):
        problems.append(
            f"{_describe(model)}'s outputs are not its last layer's ({_describe(layer)}) outputs in their order "
            "(the output, then any states)."
        )
    return layers


def from_keras(source: Any, *, architecture: Any = None, dtype: Any = None) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A Keras 3 ConvLSTM layer or model as this library's Linen module, and its variables.

    Reads `keras.layers.ConvLSTM1D`, `ConvLSTM2D` and `ConvLSTM3D`, a `keras.layers.Bidirectional` of
    one, or a `keras.Sequential` or functional model that is a stack of them (an `InputLayer` aside),
    each but the last with `return_sequences=True`. Returns a `convlstm_jax.ConvLSTM` (a layer or a
    stack; per-layer options as lists where the layers differ) or a `convlstm_jax.Bidirectional`, with
    `batch_first=True`, and `{"params": ...}` for its `apply`. `convlstm_jax.torch_module(model,
    variables)` then gives the torch twin.

    How Keras's settings map to this library's options, which of its outputs is Keras's, and what is
    refused: the Keras section ("From Keras 3") of the Interoperability guide, `docs/interop.md`.

    Args:
      source: a Keras layer or model, or the path of a `.keras` file, or of a `.weights.h5` file
        together with `architecture`.
      architecture: for a `.weights.h5` file only: the Keras model (or layer) the weights belong to,
        its config (`model.get_config()` of a built model, or `keras.saving.serialize_keras_object`'s
        dict), or a `.keras` file. A copy is made: the object passed is left as it is. A layer's
        weights file is that of a model holding the layer alone.
      dtype: the dtype of the returned variables and of the model's `param_dtype` (default: the Keras
        variables' dtype). Where a Keras layer computes in another dtype than its variables' (a mixed
        precision policy), the model's `dtype` is that compute dtype.

    Returns:
      `(model, variables)`: a `convlstm_jax.ConvLSTM` or `convlstm_jax.Bidirectional`, and
      `{"params": ...}` of NumPy arrays.

    Raises:
      TypeError: `source` or `architecture` is of another kind.
      ValueError: a layer or setting this library cannot compute (every one, in one message that names
        each layer and setting), a weights file without its architecture, or a `.keras` file that is
        no readable archive (empty, or cut short).
      FileNotFoundError: a path names no file.

    Example (Keras on the JAX backend; the output of every step):
      >>> import keras, numpy as np  # doctest: +SKIP
      >>> layer = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)  # doctest: +SKIP
      >>> x = np.random.default_rng(0).normal(size=(2, 5, 8, 8, 3)).astype("float32")  # doctest: +SKIP
      >>> expected = keras.ops.convert_to_numpy(layer(x))  # doctest: +SKIP
      >>> model, variables = from_keras(layer)  # doctest: +SKIP
      >>> outputs, states = model.apply(variables, x)  # doctest: +SKIP
      >>> bool(np.allclose(outputs[0], expected, atol=1e-5))  # doctest: +SKIP
      True
    """
    keras = import_keras()
    if dtype is not None:
        dtype = jnp.dtype(dtype)
    loaded = load_keras(keras, source, architecture)
    problems: list[str] = []  # every one is listed, in one error
    layers = _model_layers(keras, loaded, problems) if isinstance(loaded, keras.Model) else [loaded]
    bidirectional = [layer for layer in layers if isinstance(layer, keras.layers.Bidirectional)]
    if bidirectional and len(layers) > 1:
        problems.append(
            f"{_describe(loaded)} holds {_describe(bidirectional[0])} among other layers: a Bidirectional "
            "is supported alone (this library's Bidirectional runs a whole stack each way)."
        )
    read = [
        _check_bidirectional(keras, layer, problems)
        if isinstance(layer, keras.layers.Bidirectional)
        else _read_layer(keras, layer, problems)
        for layer in layers
    ]
    if not bidirectional:
        _check_stack(read, problems)
    _refuse(loaded, problems)
    if bidirectional:
        return _bidirectional(bidirectional[0], *read[0], dtype)
    return _stack(read, dtype)


def _check_stack(read: Sequence[dict[str, Any] | None], problems: list[str]) -> None:
    """Appends to `problems` what keeps the layers `read` (None where a layer could not be read) from
    being one stack."""
    first = next((options for options in read if options is not None), None)
    for index, options in enumerate(read):
        if options is None:
            continue
        where = _describe(options["layer"])
        last = index == len(read) - 1
        if not last and not options["return_sequences"]:
            problems.append(
                f"{where} has return_sequences=False but another layer follows it: every layer but the "
                "last must return its whole sequence."
            )
        if not last and options["return_state"]:
            problems.append(f"{where} has return_state=True but another layer follows it: only the last may.")
        if index and options["go_backwards"]:
            problems.append(
                f"{where} has go_backwards=True and is not the first layer: this library's stack runs all "
                "its layers in one direction (go_backwards on the first layer only is reverse=True)."
            )
        if options["channels_last"] != first["channels_last"]:
            problems.append(
                f"{where} has another data_format than {_describe(first['layer'])}: a stack has one layout."
            )
        if options["spatial_dims"] != first["spatial_dims"]:
            problems.append(f"{where} has another rank than {_describe(first['layer'])}: a stack has one.")
    try:
        _compute_dtype([options for options in read if options is not None])
    except ValueError as error:
        problems.append(str(error))


def _per_layer(values: list[Any]) -> Any:
    """One value for every layer where the layers agree, else the list of them."""
    return values[0] if all(value == values[0] for value in values) else list(values)


def _variables_dtype(read: Sequence[dict[str, Any]], dtype: np.dtype | None) -> np.dtype:
    if dtype is not None:
        return dtype
    return np.result_type(*(value for options in read for value in options["weights"].values()))


def _compute_dtype(read: Sequence[dict[str, Any]]) -> Any:
    """The layers' compute dtype where a mixed precision policy sets one, else None (inferred)."""
    mixed = {options["compute_dtype"] for options in read if options["compute_dtype"] != options["variable_dtype"]}
    if len(mixed) > 1:
        names = ", ".join(sorted(mixed))
        raise ValueError(f"The layers compute in different dtypes ({names}): a stack computes in one.")
    return jnp.dtype(mixed.pop()) if mixed else None


def _cell_params(options: dict[str, Any], bias: bool, dtype: np.dtype) -> dict[str, Any]:
    weights = options["weights"]
    input_to_state = {"kernel": keras_gates_to_library(weights["kernel"]).astype(dtype)}
    if bias:
        keras_bias = weights.get("bias", np.zeros(weights["kernel"].shape[-1], dtype))
        input_to_state["bias"] = keras_gates_to_library(keras_bias).astype(dtype)
    state_to_state = {"kernel": keras_gates_to_library(weights["recurrent_kernel"]).astype(dtype)}
    return {"input_to_state": input_to_state, "state_to_state": state_to_state}


def _stack(read: Sequence[dict[str, Any]], dtype: np.dtype | None) -> tuple[Any, dict[str, Any]]:
    from .._convlstm import ConvLSTM

    param_dtype = _variables_dtype(read, dtype)
    bias = any(options["bias"] for options in read)
    first = read[0]
    reverse = first["go_backwards"]
    kernels = _per_layer([options["kernel_size"] for options in read])
    model = ConvLSTM(
        first["input_dim"],
        _per_layer([options["hidden_dim"] for options in read]),
        kernels,
        len(read),
        batch_first=True,
        bias=bias,
        return_all_layers=False,
        peephole=None,
        padding=_per_layer([options["padding"] for options in read]),
        stride=_per_layer([options["stride"] for options in read]),
        dilation=_per_layer([options["dilation"] for options in read]),
        spatial_dims=first["spatial_dims"],
        reverse=reverse,
        keep_order=not reverse,
        channels_last=first["channels_last"],
        param_dtype=param_dtype,
        dtype=_compute_dtype(read),
    )
    params = {f"cell_{index}": _cell_params(options, bias, param_dtype) for index, options in enumerate(read)}
    return model, {"params": params}


def _check_bidirectional(keras: Any, wrapper: Any, problems: list[str]) -> tuple[Any, Any]:
    """The options of a Keras `Bidirectional`'s forward and backward layers (`_read_layer`'s); appends
    to `problems` what this library's `Bidirectional` cannot compute."""
    where = _describe(wrapper)
    merge = wrapper.merge_mode
    if merge not in KERAS_MERGES:
        problems.append(
            f"{where} has merge_mode={merge!r}: this library's Bidirectional merges by {tuple(KERAS_MERGES)} only."
        )
    forward = _read_layer(keras, wrapper.forward_layer, problems)
    backward = _read_layer(keras, wrapper.backward_layer, problems)
    if forward is None or backward is None:
        return forward, backward
    if forward["go_backwards"] or not backward["go_backwards"]:
        problems.append(
            f"{where} has a forward layer with go_backwards=True: this library's Bidirectional runs its layer "
            "forwards and its copy backwards."
        )
    different = [
        name
        for name in (*_GEOMETRY, "channels_last", "return_sequences", "return_state")
        if forward[name] != backward[name]
    ]
    if different:
        problems.append(
            f"{where}'s backward layer differs from its forward layer in {', '.join(different)}: this library's "
            "Bidirectional runs a copy of one layer backwards."
        )
    if merge == "concat" and not forward["channels_last"]:
        problems.append(
            f'{where} has merge_mode="concat" with data_format="channels_first": Keras then concatenates along '
            'the last axis, a spatial one; this library concatenates the channels. Use merge_mode="sum".'
        )
    return forward, backward


def _bidirectional(
    wrapper: Any, forward: dict[str, Any], backward: dict[str, Any], dtype: np.dtype | None
) -> tuple[Any, dict[str, Any]]:
    """This library's `Bidirectional` of a Keras one, checked by `_check_bidirectional`."""
    from .._bidirectional import Bidirectional

    merge = wrapper.merge_mode
    param_dtype = _variables_dtype([forward, backward], dtype)
    layer, forward_variables = _stack([forward], param_dtype)
    backward_params = {"cell_0": _cell_params(backward, backward["bias"], param_dtype)}
    params = {"forward_layer": forward_variables["params"], "backward_layer": backward_params}
    return Bidirectional(layer, merge=KERAS_MERGES[merge]), {"params": params}
