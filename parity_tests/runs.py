"""Running one parity case in either framework, into one flat dict of NumPy results.

A case is a `config` (JSON-serialisable: the model's hyperparameters and the input's size: `height`
and `width` for images, `frame` (a list of 1 or 3 sizes) for signals and volumes) and
`arrays`, the case's inputs in the torch layout:

- `input`, and `h0/<l>`, `c0/<l>` per layer when the case has an initial state;
- `dropout_mask/input/<l>`, `dropout_mask/state/<l>` per layer when the case has dropout masks
  (`"dropout_masks": true`): dropout on, with the masks given explicitly;
- `param/<state_dict key>`, the reference's weights;
- `loss_weight/<result name>`, the fixed weights of the scalar loss
  L = Σ_names Σ (result[name] ∘ loss_weight[name]) over every returned output and state.

Both runners return, in the torch layout and float64:
`output/<l>`, `h/<l>`, `c/<l>` for each returned layer l (and `h/backward/<l>`, `c/backward/<l>`
for a bidirectional case, whose outputs merge both directions), and the gradients of L:
`grad/input`, `grad/h0/<l>`, `grad/c0/<l>`, `grad/param/<state_dict key>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convlstm_common.options import StackOptions, declared

Config = dict[str, Any]
Arrays = dict[str, np.ndarray]


def model_kwargs(config: Config) -> dict[str, Any]:
    """The options a case gives `convlstm_torch.ConvLSTM` and `convlstm_jax.ConvLSTM`.

    Every declared option (`convlstm_common.options.StackOptions`) that `config` holds, with the
    tuples JSON turned into lists turned back (a list of lists is one tuple per layer), and
    `spatial_dims` read from the frame; the others keep their declared defaults.
    """
    kwargs = {f.name: _from_json(config[f.name]) for f in declared(StackOptions) if f.name in config}
    return kwargs | {"spatial_dims": len(frame_size(config))}


def _from_json(value: Any) -> Any:
    # JSON turns (kh, kw) tuples into lists; a list of lists is one tuple per layer.
    return [tuple(v) if isinstance(v, list) else v for v in value] if isinstance(value, list) else value


def frame_size(config: Config) -> tuple[int, ...]:
    """The input frames' spatial size: `config["frame"]` (signals: (L,), volumes: (D, H, W)), or
    for images (`height`, `width`)."""
    return tuple(config["frame"]) if "frame" in config else (config["height"], config["width"])


def input_shape(config: Config) -> tuple[int, ...]:
    """The input's shape in the torch layout: (B, T, C, *frame) or (T, B, C, *frame)."""
    b, t = config["batch"], config["steps"]
    leading = (b, t) if config["batch_first"] else (t, b)
    return (*leading, config["input_dim"], *frame_size(config))


def returned_layers(config: Config) -> list[int]:
    """The indices of the layers whose outputs and states the model returns."""
    n = config["num_layers"]
    return list(range(n)) if config["return_all_layers"] else [n - 1]


def result_names(config: Config) -> list[str]:
    """The names of the forward results that enter the loss."""
    kinds = ("output", "h", "c", "h/backward", "c/backward") if config.get("bidirectional") else ("output", "h", "c")
    return [f"{kind}/{layer}" for layer in returned_layers(config) for kind in kinds]


def output_channels(config: Config, layer: int) -> int:
    """Channels of layer `layer`'s returned output: doubled by a bidirectional "concat"."""
    return config["hidden_dim"][layer] * (2 if config.get("bidirectional") == "concat" else 1)


def _forward_results(config: Config, outputs, states) -> dict[str, Any]:
    results = {}
    backward = [None] * len(outputs)
    if config.get("bidirectional"):
        states, backward = states
    for layer, output, (h, c), other in zip(returned_layers(config), outputs, states, backward):
        results.update({f"output/{layer}": output, f"h/{layer}": h, f"c/{layer}": c})
        if other is not None:
            results.update({f"h/backward/{layer}": other[0], f"c/backward/{layer}": other[1]})
    return results


def _dropout_masks(arrays: Arrays, config: Config) -> list[tuple[Any, Any]] | None:
    if not config.get("dropout_masks"):
        return None
    return [
        (arrays.get(f"dropout_mask/input/{layer}"), arrays.get(f"dropout_mask/state/{layer}"))
        for layer in range(config["num_layers"])
    ]


def _seq_lengths(config: Config) -> np.ndarray | None:
    return None if "seq_lengths" not in config else np.asarray(config["seq_lengths"], np.int32)


def build_torch(config: Config):
    """The reference model of a case: a `ConvLSTM`, or a `Bidirectional` one."""
    import convlstm_torch

    model = convlstm_torch.ConvLSTM(**model_kwargs(config))
    if config.get("bidirectional"):
        model = convlstm_torch.Bidirectional(model, config["bidirectional"])
    return model


_DIRECTIONS = ("forward_layer", "backward_layer")


def _initial_state(arrays: Arrays, config: Config) -> list[tuple[np.ndarray, np.ndarray]] | None:
    if not config["initial_state"]:
        return None
    return [(arrays[f"h0/{layer}"], arrays[f"c0/{layer}"]) for layer in range(config["num_layers"])]


def _params(arrays: Arrays) -> Arrays:
    return {key.removeprefix("param/"): value for key, value in arrays.items() if key.startswith("param/")}


def run_torch(config: Config, arrays: Arrays, dtype: str = "float32") -> Arrays:
    """Runs the reference on a case, in `dtype`, and returns its results and gradients."""
    import torch

    torch_dtype = getattr(torch, dtype)
    model = build_torch(config).to(torch_dtype)
    params = _params(arrays)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=True)

    def leaf(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(torch_dtype).requires_grad_(True)

    x = leaf(arrays["input"])
    state = _initial_state(arrays, config)
    state = None if state is None else [(leaf(h), leaf(c)) for h, c in state]
    options = {}
    if (lengths := _seq_lengths(config)) is not None:
        options["seq_lengths"] = torch.from_numpy(lengths)
    if (masks := _dropout_masks(arrays, config)) is not None:
        options["dropout_masks"] = [
            tuple(None if m is None else torch.from_numpy(m).to(torch_dtype) for m in pair) for pair in masks
        ]
    outputs, states = model(x, state, **options)
    results = _forward_results(config, outputs, states)
    weights = {name: torch.from_numpy(arrays[f"loss_weight/{name}"]).to(torch_dtype) for name in results}
    loss = sum((value * weights[name]).sum() for name, value in results.items())

    named = {"grad/input": x}
    for layer, (h, c) in enumerate(state or []):
        named.update({f"grad/h0/{layer}": h, f"grad/c0/{layer}": c})
    parameters = dict(model.named_parameters())
    named.update({f"grad/param/{key}": parameters[key] for key in params})
    # A stack without input never reads its zero-channel input: its (empty) gradient is zeros.
    grads = torch.autograd.grad(loss, list(named.values()), allow_unused=True, materialize_grads=True)
    results.update(zip(named, grads))
    return {name: value.detach().double().numpy() for name, value in results.items()}


def run_jax(
    config: Config,
    arrays: Arrays,
    dtype: str = "float32",
    *,
    channels_last: bool = False,
    front: str = "linen",
    **options: Any,
) -> Arrays:
    """Runs the JAX port on a case, in `dtype` at "highest" matmul precision, under `jax.jit`.

    With `channels_last`, the model runs in its default (..., H, W, C) layout and results are moved
    back to the torch layout for comparison. float64 needs `jax.enable_x64(True)` around the call.
    `"bfloat16"` computes in bfloat16 with float32 parameters and inputs. `front` is `"linen"`
    (`convlstm_jax.ConvLSTM`, its `Bidirectional` for a bidirectional case) or `"nnx"`
    (`convlstm_jax.nnx.ConvLSTM`, or its `Bidirectional`, under `nnx.jit` and `nnx.grad`).
    `options` go to the model (`conv_gradient`, `remat`, `unroll`).
    """
    import jax
    import jax.numpy as jnp

    if front not in ("linen", "nnx"):
        raise ValueError(f'front must be "linen" or "nnx", got {front!r}.')
    compute_dtype, dtype = (dtype, "float32") if dtype == "bfloat16" else (None, dtype)
    kwargs = {**model_kwargs(config), "channels_last": channels_last, "param_dtype": dtype, "dtype": compute_dtype}
    to_model = (lambda a, axis: jnp.moveaxis(a, axis, -1)) if channels_last else (lambda a, axis: a)
    to_torch = (lambda a, axis: jnp.moveaxis(a, -1, axis)) if channels_last else (lambda a, axis: a)

    def cast(array: np.ndarray) -> jax.Array:
        return jnp.asarray(array, dtype)

    params = jax.tree.map(cast, _jax_params(config, arrays))
    x = to_model(cast(arrays["input"]), 2)
    state = _initial_state(arrays, config)
    state = None if state is None else [(to_model(cast(h), 1), to_model(cast(c), 1)) for h, c in state]
    weights = {name: cast(arrays[f"loss_weight/{name}"]) for name in result_names(config)}
    call = {}
    if (lengths := _seq_lengths(config)) is not None:
        call["seq_lengths"] = jnp.asarray(lengths)
    if (masks := _dropout_masks(arrays, config)) is not None:
        call["dropout_masks"] = [tuple(None if m is None else to_model(cast(m), 1) for m in pair) for pair in masks]

    def loss_of(outputs, states):
        outputs = [to_torch(y, 2) for y in outputs]
        states = jax.tree.map(lambda s: to_torch(s, 1), states)
        results = _forward_results(config, outputs, states)
        loss = sum(jnp.sum(value.astype(dtype) * weights[name]) for name, value in results.items())
        return loss, results

    run = _nnx_gradients if front == "nnx" else _linen_gradients
    model, (grad_params, grad_x, grad_state), results = run(config, kwargs, options, params, x, state, call, loss_of)
    results = dict(results)
    results["grad/input"] = to_torch(grad_x, 2)
    for layer, (h, c) in enumerate(grad_state or []):
        results.update({f"grad/h0/{layer}": to_torch(h, 1), f"grad/c0/{layer}": to_torch(c, 1)})
    results.update(_jax_param_grads(config, front, model, grad_params))
    return {name: np.asarray(value, np.float64) for name, value in results.items()}


def _jax_params(config: Config, arrays: Arrays) -> dict:
    """The case's torch weights as the Linen model's params (one tree per direction if bidirectional)."""
    import convlstm_jax

    state_dict = _params(arrays)
    if config.get("bidirectional"):
        return {d: convlstm_jax.torch_to_flax(state_dict, prefix=f"{d}.")["params"] for d in _DIRECTIONS}
    return convlstm_jax.torch_to_flax(state_dict)["params"]


def _nnx_gradients(config: Config, kwargs: dict, options: dict, params, x, state, call: dict, loss_of: Callable):
    """The NNX model (`convlstm_jax.nnx`), and its gradients (params, input, state) and results under
    `nnx.jit` and `nnx.grad`."""
    import jax
    from flax import nnx

    from convlstm_jax import nnx as convlstm_nnx

    model = convlstm_nnx.ConvLSTM(**kwargs, **options, rngs=nnx.Rngs(0))
    if config.get("bidirectional"):
        model = convlstm_nnx.Bidirectional(model, config["bidirectional"], rngs=nnx.Rngs(1))
    convlstm_nnx.from_linen(model, {"params": params})
    grad_fn = nnx.jit(
        nnx.grad(lambda model, x, state: loss_of(*model(x, state, **call)), argnums=(0, 1, 2), has_aux=True)
    )
    with jax.default_matmul_precision("highest"):
        (grad_model, grad_x, grad_state), results = grad_fn(model, x, state)
    return model, (nnx.to_pure_dict(grad_model), grad_x, grad_state), results


def _linen_gradients(config: Config, kwargs: dict, options: dict, params, x, state, call: dict, loss_of: Callable):
    """The Linen model, and its gradients (params, input, state) and results under `jax.jit`."""
    import jax

    import convlstm_jax

    model = convlstm_jax.ConvLSTM(**kwargs, **options)
    if config.get("bidirectional"):
        model = convlstm_jax.Bidirectional(model, config["bidirectional"])

    def loss_fn(params, x, state):
        return loss_of(*model.apply({"params": params}, x, state, **call))

    grad_fn = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2), has_aux=True))
    with jax.default_matmul_precision("highest"):
        (grad_params, grad_x, grad_state), results = grad_fn(params, x, state)
    return model, (grad_params, grad_x, grad_state), results


def _jax_param_grads(config: Config, front: str, model, grad_params) -> dict:
    """The parameters' gradients under their torch names (`grad/param/<key>`)."""
    import convlstm_jax

    if config.get("bidirectional"):
        layer = model.forward_layer if front == "nnx" else model.layer
        grads = {
            f"{d}.{k}": v for d in _DIRECTIONS for k, v in convlstm_jax.flax_to_torch(grad_params[d], layer).items()
        }
    else:
        grads = convlstm_jax.flax_to_torch({"params": grad_params}, model)
    return {f"grad/param/{key}": value for key, value in grads.items()}
