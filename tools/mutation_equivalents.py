"""The mutants that change no result, with the reason for each.

`EQUIVALENT` maps (file, original line, mutated line), the lines stripped as `tools.mutation`
prints them, to one line saying why the mutant computes the same results. `python -m
tools.mutation` neither runs nor counts these; a line that changes makes its entry stale, and the
mutant is run again.
"""

from __future__ import annotations

_COMMUTATIVE = "the sum of the two directions: float addition is commutative"
_SYMMETRIC_PROMOTION = "jnp.promote_types is symmetric"
_ONE_DTYPE = "h and c of a carry have one dtype (initialize_carry and the stack make them so)"
_HOISTING = (
    "where the input-to-state convolution runs (once before the loop, or in each step) changes speed, "
    "not results: the cell computes W_x * X + b either way"
)
_REMAT = "rematerialisation trades memory for compute: the gradients are the same"
_STRATEGY = "which gradient strategy runs (tapwise or XLA's): both compute the same convolution and gradients"
_FROZEN = "whether a record refuses assignment: nothing assigns to it once it is made"
_REPORT = "only which problems the error lists for a state_dict that is refused either way (with a ValueError)"

EQUIVALENT: dict[tuple[str, str, str], str] = {
    (
        "convlstm_jax/_bidirectional.py",
        "return [f + b for f, b in zip(outputs_f, outputs_b)]",
        "return [f + b for f, b in zip(outputs_b, outputs_f)]",
    ): _COMMUTATIVE,
    (
        "convlstm_torch/_bidirectional.py",
        "outputs = [f + b for f, b in zip(outputs_f, outputs_b)]",
        "outputs = [f + b for f, b in zip(outputs_b, outputs_f)]",
    ): _COMMUTATIVE,
    (
        "convlstm_jax/_cell.py",
        "return dtype if dtype is not None else jnp.promote_types(x.dtype, param_dtype)",
        "return dtype if dtype is not None else jnp.promote_types(param_dtype, x.dtype)",
    ): _SYMMETRIC_PROMOTION,
    (
        "convlstm_jax/_cell.py",
        "dtype = self._dtype(carry[0] if projected_inputs is None else projected_inputs)",
        "dtype = self._dtype(carry[1] if projected_inputs is None else projected_inputs)",
    ): _ONE_DTYPE,
    (
        "convlstm_jax/_convlstm.py",
        "dtype = stack.dtype if stack.dtype is not None else jnp.promote_types(x.dtype, stack.param_dtype)",
        "dtype = stack.dtype if stack.dtype is not None else jnp.promote_types(stack.param_dtype, x.dtype)",
    ): _SYMMETRIC_PROMOTION,
    (
        "convlstm_jax/_convlstm.py",
        "hoisted = spec.input_dim > 0 and not spec.fused",
        "hoisted = spec.input_dim > 1 and not spec.fused",
    ): _HOISTING,
    (
        "convlstm_jax/_convlstm.py",
        "hoisted = spec.input_dim > 0 and not spec.fused",
        "hoisted = spec.input_dim > 0 and spec.fused",
    ): _HOISTING,
    (
        "convlstm_jax/_convlstm.py",
        "remat = step_remat(module.remat, carry[0].dtype)",
        "remat = step_remat(carry[0].dtype, module.remat)",
    ): _REMAT + " (a dtype is truthy: every step rematerialised)",
    (
        "convlstm_jax/_convlstm.py",
        "remat = step_remat(module.remat, carry[0].dtype)",
        "remat = step_remat(module.remat, carry[1].dtype)",
    ): _ONE_DTYPE,
    (
        "convlstm_jax/_convlstm.py",
        'return nn.merge_param("deterministic", self.module.deterministic, self.deterministic_argument)',
        'return nn.merge_param("deterministic", self.deterministic_argument, self.module.deterministic)',
    ): "flax.linen.merge_param is symmetric: it takes whichever of the two is set",
    (
        "convlstm_jax/_conv.py",
        'if check_conv_gradient(conv_gradient) == "auto":',
        'if check_conv_gradient(conv_gradient) != "auto":',
    ): _STRATEGY,
    (
        "convlstm_jax/_conv.py",
        'y = tapwise(x, kernel) if conv_gradient == "tapwise" else xla(x, kernel)',
        'y = tapwise(x, kernel) if conv_gradient != "tapwise" else xla(x, kernel)',
    ): _STRATEGY,
    ("convlstm_jax/_conv.py", '_UNROLL = {"gpu": 5}', '_UNROLL = {"gpu": 6}'): (
        "time steps per scan iteration on GPU: a speed setting"
    ),
    (
        "convlstm_jax/_conv.py",
        "padded = jnp.pad(x, ((0, 0), *((k // 2, k // 2) for k in size), (0, 0)))",
        "padded = jnp.pad(x, ((0, 0), *((k // 2, (k // 2 + 1)) for k in size), (0, 0)))",
    ): "padding past k // 2 on the far side: no tap's window reaches it",
    (
        "convlstm_jax/_conv.py",
        "padded = jnp.pad(x, ((0, 0), *((k // 2, k // 2) for k in size), (0, 0)))",
        "padded = jnp.pad(x, ((0, 0), *((k // 2, k * 2) for k in size), (0, 0)))",
    ): "padding past k // 2 on the far side: no tap's window reaches it",
    (
        "convlstm_jax/_conv.py",
        "accumulate = jnp.float32 if kernel.dtype == jnp.bfloat16 else None",
        "accumulate = jnp.float32 if kernel.dtype != jnp.bfloat16 else None",
    ): (
        "float32 asked of a float32 product changes nothing, and XLA:CPU accumulates bfloat16 products in "
        "float32 and rounds once either way (the request guards other backends)"
    ),
    (
        "convlstm_jax/_convert.py",
        'if key.endswith("weight") and key.rsplit(".", 2)[-2] in _CONV and 3 <= np.ndim(state_dict[key]) <= 5:',
        'if key.endswith("weight") and key.rsplit(".", 3)[-2] in _CONV and 3 <= np.ndim(state_dict[key]) <= 5:',
    ): "rsplit with 2 or 3 splits gives the same second-to-last part",
    (
        "convlstm_jax/_convert.py",
        'if key.endswith("weight") and key.rsplit(".", 2)[-2] in _CONV and 3 <= np.ndim(state_dict[key]) <= 5:',
        'if key.endswith("weight") or key.rsplit(".", 2)[-2] in _CONV and 3 <= np.ndim(state_dict[key]) <= 5:',
    ): "a layer's convolution weights sort before its other weights; others only in a refused state_dict",
    (
        "convlstm_jax/_convert.py",
        'if key.endswith("weight") and key.rsplit(".", 2)[-2] in _CONV and 3 <= np.ndim(state_dict[key]) <= 5:',
        'if key.endswith("weight") and key.rsplit(".", 2)[-2] in _CONV and 3 <= np.ndim(state_dict[key]) <= 6:',
    ): _REPORT + " (a 4-D convolution)",
    ("convlstm_jax/_convert.py", "previous_hidden = 0", "previous_hidden = 1"): (
        "read only as `previous_hidden or 1`, and 0 or 1 is 1"
    ),
    (
        "convlstm_jax/_convert.py",
        "if fused and fused[1] > fused[0] // 4:",
        "if fused and fused[1] >= fused[0] // 4:",
    ): _REPORT,
    (
        "convlstm_jax/_convert.py",
        "if fused and fused[1] > fused[0] // 4:",
        "if fused and fused[1] > fused[1] // 4:",
    ): _REPORT,
    (
        "convlstm_jax/_convert.py",
        "if fused and fused[1] > fused[0] // 4:",
        "if fused and fused[0] > fused[0] // 4:",
    ): _REPORT,
    (
        "convlstm_jax/_convert.py",
        "if fused and fused[1] > fused[0] // 4:",
        "if fused and fused[1] > fused[0] // 5:",
    ): _REPORT,
    (
        "convlstm_jax/_convert.py",
        "first = dataclasses.replace(model_specs[0], input_dim=specs[0].input_dim if specs else 0)",
        "first = dataclasses.replace(model_specs[0], input_dim=specs[0].input_dim if specs else 1)",
    ): _REPORT + " (one without any layer)",
    ("convlstm_jax/_convlstm.py", "@dataclasses.dataclass(frozen=True)", "@dataclasses.dataclass(frozen=False)"): (
        _FROZEN
    ),
    ("convlstm_jax/_convert.py", "@dataclasses.dataclass(frozen=True)", "@dataclasses.dataclass(frozen=False)"): (
        _FROZEN
    ),
    ("convlstm_jax/models/encoder_forecaster.py", "remat: bool = False", "remat: bool = True"): _REMAT,
    (
        "convlstm_jax/models/encoder_forecaster.py",
        "dtype = states[0][0].dtype",
        "dtype = states[0][1].dtype",
    ): _ONE_DTYPE,
}

_GUESS = (
    "the sizes guessed for a Flax cell without a state-to-state kernel: every conversion refuses such params, "
    "and the guess only shapes the list of problems"
)
_HIDDEN_GUESS = "hid = state[-2] if state else previous_hidden or 1"
_KERNEL_GUESS = "kernel = state[:-2] or inputs[:-2] or (1,) * (spatial_dims or 2)"
EQUIVALENT |= {
    ("convlstm_jax/_convert.py", original, mutated): _GUESS
    for original, mutated in (
        (_HIDDEN_GUESS, "hid = state[-2] if state else previous_hidden and 1"),
        (_HIDDEN_GUESS, "hid = state[-2] if state else previous_hidden or 0"),
        (_KERNEL_GUESS, "kernel = state[:-2] or inputs[:2] or (1,) * (spatial_dims or 2)"),
        (_KERNEL_GUESS, "kernel = state[:-2] or inputs[:-3] or (1,) * (spatial_dims or 2)"),
        (_KERNEL_GUESS, "kernel = state[:-2] or inputs[:-2] and (1,) * (spatial_dims or 2)"),
        (_KERNEL_GUESS, "kernel = state[:-2] or inputs[:-2] or (0,) * (spatial_dims or 2)"),
        (_KERNEL_GUESS, "kernel = state[:-2] or inputs[:-2] or (1,) * (spatial_dims and 2)"),
        (_KERNEL_GUESS, "kernel = state[:-2] or inputs[:-2] or (1,) * (spatial_dims or 3)"),
    )
}

_NORM_WIDTH = "wide = z.astype(jnp.float32) if jnp.finfo(z.dtype).bits < 32 else z"
EQUIVALENT |= {
    ("convlstm_jax/_cell.py", "forget_bias: float = 0.0,", "forget_bias: float = 1.0,"): (
        "the math's default forget bias: every call passes the cell's own (step_options)"
    ),
    ("convlstm_jax/_cell.py", _NORM_WIDTH, _NORM_WIDTH.replace("< 32", "<= 32")): (
        "a float32 z cast to float32 is z itself"
    ),
    ("convlstm_jax/_cell.py", _NORM_WIDTH, _NORM_WIDTH.replace("< 32", "< 33")): (
        "a float32 z cast to float32 is z itself"
    ),
}

EQUIVALENT[
    (
        "convlstm_jax/_convert.py",
        'if entry.torch.endswith(".weight") and entry.transform is not NORM',
        'if entry.torch.endswith(".weight") or entry.transform is not NORM',
    )
] = (
    "adds the layer norms to the modules whose weight gives the rank: a layer's conv* keys sort before its "
    "norm_* keys and every layer has one, so the rank still comes from a convolution (a state_dict without "
    "any is refused either way)"
)
EQUIVALENT[
    (
        "convlstm_jax/_cell.py",
        'weights["state_norm"] = self.state_norm((*carry[0].shape[1:-1], 4 * spec.hidden_dim))',
        'weights["state_norm"] = self.state_norm((*carry[1].shape[1:-1], 4 * spec.hidden_dim))',
    )
] = "h and c of a carry have one shape (check_step refuses any other), so either gives the state's frame"
