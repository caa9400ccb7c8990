"""Running one parity case in either framework, into one flat dict of NumPy results.

A case is a `config` (JSON-serialisable: the model's hyperparameters and the input's size) and
`arrays`, the case's inputs in the torch layout:

- `input`, and `h0/<l>`, `c0/<l>` per layer when the case has an initial state;
- `param/<state_dict key>`, the reference's weights;
- `loss_weight/<result name>`, the fixed weights of the scalar loss
  L = Σ_names Σ (result[name] ∘ loss_weight[name]) over every returned output and state.

Both runners return, in the torch layout and float64:
`output/<l>`, `h/<l>`, `c/<l>` for each returned layer l, and the gradients of L:
`grad/input`, `grad/h0/<l>`, `grad/c0/<l>`, `grad/param/<state_dict key>`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Config = dict[str, Any]
Arrays = dict[str, np.ndarray]


def model_kwargs(config: Config) -> dict[str, Any]:
    """The keyword arguments shared by `convlstm_torch.ConvLSTM` and `convlstm_jax.ConvLSTM`."""
    return {
        "input_dim": config["input_dim"],
        "hidden_dim": list(config["hidden_dim"]),
        "kernel_size": [tuple(k) for k in config["kernel_size"]],
        "num_layers": config["num_layers"],
        "batch_first": config["batch_first"],
        "bias": config["bias"],
        "return_all_layers": config["return_all_layers"],
        "peephole": config["peephole"],
        "input_kernel_size": [tuple(k) for k in config["input_kernel_size"]] if "input_kernel_size" in config else None,
    }


def input_shape(config: Config) -> tuple[int, ...]:
    """The input's shape in the torch layout: (B, T, C, H, W) or (T, B, C, H, W)."""
    b, t = config["batch"], config["steps"]
    leading = (b, t) if config["batch_first"] else (t, b)
    return (*leading, config["input_dim"], config["height"], config["width"])


def returned_layers(config: Config) -> list[int]:
    """The indices of the layers whose outputs and states the model returns."""
    n = config["num_layers"]
    return list(range(n)) if config["return_all_layers"] else [n - 1]


def result_names(config: Config) -> list[str]:
    """The names of the forward results that enter the loss."""
    return [f"{kind}/{layer}" for layer in returned_layers(config) for kind in ("output", "h", "c")]


def _forward_results(config: Config, outputs, states) -> dict[str, Any]:
    results = {}
    for layer, output, (h, c) in zip(returned_layers(config), outputs, states):
        results.update({f"output/{layer}": output, f"h/{layer}": h, f"c/{layer}": c})
    return results


def _initial_state(arrays: Arrays, config: Config) -> list[tuple[np.ndarray, np.ndarray]] | None:
    if not config["initial_state"]:
        return None
    return [(arrays[f"h0/{layer}"], arrays[f"c0/{layer}"]) for layer in range(config["num_layers"])]


def _params(arrays: Arrays) -> Arrays:
    return {key.removeprefix("param/"): value for key, value in arrays.items() if key.startswith("param/")}


def run_torch(config: Config, arrays: Arrays, dtype: str = "float32") -> Arrays:
    """Runs the reference on a case, in `dtype`, and returns its results and gradients."""
    import torch

    import convlstm_torch

    torch_dtype = getattr(torch, dtype)
    model = convlstm_torch.ConvLSTM(**model_kwargs(config)).to(torch_dtype)
    params = _params(arrays)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=True)

    def leaf(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(torch_dtype).requires_grad_(True)

    x = leaf(arrays["input"])
    state = _initial_state(arrays, config)
    state = None if state is None else [(leaf(h), leaf(c)) for h, c in state]
    outputs, states = model(x, state)
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
    config: Config, arrays: Arrays, dtype: str = "float32", *, channels_last: bool = False, **options: Any
) -> Arrays:
    """Runs the JAX port on a case, in `dtype` at "highest" matmul precision, under `jax.jit`.

    With `channels_last`, the model runs in its default (..., H, W, C) layout and results are moved
    back to the torch layout for comparison. float64 needs `jax.enable_x64(True)` around the call.
    `"bfloat16"` computes in bfloat16 with float32 parameters and inputs. `options` go to
    `convlstm_jax.ConvLSTM` (`conv_gradient`, `remat`, `unroll`).
    """
    import jax
    import jax.numpy as jnp

    import convlstm_jax

    compute_dtype, dtype = (dtype, "float32") if dtype == "bfloat16" else (None, dtype)
    model = convlstm_jax.ConvLSTM(
        **model_kwargs(config), channels_last=channels_last, param_dtype=dtype, dtype=compute_dtype, **options
    )
    to_model = (lambda a, axis: jnp.moveaxis(a, axis, -1)) if channels_last else (lambda a, axis: a)
    to_torch = (lambda a, axis: jnp.moveaxis(a, -1, axis)) if channels_last else (lambda a, axis: a)

    def cast(array: np.ndarray) -> jax.Array:
        return jnp.asarray(array, dtype)

    params = jax.tree.map(cast, convlstm_jax.torch_to_flax(_params(arrays))["params"])
    x = to_model(cast(arrays["input"]), 2)
    state = _initial_state(arrays, config)
    state = None if state is None else [(to_model(cast(h), 1), to_model(cast(c), 1)) for h, c in state]
    weights = {name: cast(arrays[f"loss_weight/{name}"]) for name in result_names(config)}

    def loss_fn(x, params, state):
        outputs, states = model.apply({"params": params}, x, state)
        outputs = [to_torch(y, 2) for y in outputs]
        states = [(to_torch(h, 1), to_torch(c, 1)) for h, c in states]
        results = _forward_results(config, outputs, states)
        loss = sum(jnp.sum(value.astype(dtype) * weights[name]) for name, value in results.items())
        return loss, results

    grad_fn = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2), has_aux=True))
    with jax.default_matmul_precision("highest"):
        (grad_x, grad_params, grad_state), results = grad_fn(x, params, state)
    results = dict(results)
    results["grad/input"] = to_torch(grad_x, 2)
    for layer, (h, c) in enumerate(grad_state or []):
        results.update({f"grad/h0/{layer}": to_torch(h, 1), f"grad/c0/{layer}": to_torch(c, 1)})
    state_dict = convlstm_jax.flax_to_torch({"params": grad_params})
    results.update({f"grad/param/{key}": value for key, value in state_dict.items()})
    return {name: np.asarray(value, np.float64) for name, value in results.items()}
