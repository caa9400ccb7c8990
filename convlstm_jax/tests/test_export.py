"""`conv_gradient="auto"` follows the platform a computation is lowered for, not the default backend:
one `jax.export` for several platforms holds each one's choice."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from jax import export

from convlstm_jax import ConvLSTM

pytest.importorskip("flatbuffers", reason="jax.export serialization needs flatbuffers")


def train_step(conv_gradient: str):
    """A jitted optax train step of a 2-layer conv-peephole `ConvLSTM`, with its arguments."""
    model = ConvLSTM(2, [4, 3], 3, 2, batch_first=True, conv_gradient=conv_gradient, unroll=1)
    x = jax.random.normal(jax.random.key(0), (2, 3, 6, 5, 2))
    params = model.init(jax.random.key(1), x[:1, :1])["params"]
    optimizer = optax.sgd(1e-2, momentum=0.9)

    @jax.jit
    def step(params, opt_state, x):
        def loss(params):
            return jnp.mean(model.apply({"params": params}, x)[0][0] ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step, (params, optimizer.init(params), x)


def operations(conv_gradient: str, platforms: list[str]) -> dict[str, int]:
    step, args = train_step(conv_gradient)
    text = export.export(step, platforms=platforms)(*args).mlir_module()
    return {op: len(re.findall(rf"stablehlo\.{op}\b", text)) for op in ("convolution", "dot_general")}


@pytest.mark.parametrize(
    ("platform", "strategy"), [("tpu", "xla"), ("cuda", "xla"), ("rocm", "xla"), ("cpu", "tapwise")]
)
def test_auto_is_chosen_for_the_platform_exported_for(platform, strategy):
    chosen = operations("auto", [platform])
    assert chosen == operations(strategy, [platform])
    other = {"xla": "tapwise", "tapwise": "xla"}[strategy]
    assert chosen != operations(other, [platform])  # the two strategies are told apart


def test_one_export_for_every_platform_holds_each_ones_choice():
    platforms = ["cpu", "cuda", "tpu"]
    auto = operations("auto", platforms)
    tapwise, xla = operations("tapwise", platforms), operations("xla", platforms)
    # Exported for the same platforms, "auto" holds both strategies' steps, side by side: the
    # tapwise one for the CPU, XLA's own gradients for the accelerators.
    assert auto == {op: tapwise[op] + xla[op] for op in auto}
    assert tapwise["dot_general"] > 0 and xla["dot_general"] == 0


def test_a_serialized_export_runs_on_cpu_as_the_direct_call():
    step, args = train_step("auto")
    # Serialized exports carry plain trees: the step on the leaves of its arguments and results.
    leaves, tree = jax.tree.flatten(args)
    flat_step = jax.jit(lambda leaves: jax.tree.leaves(step(*jax.tree.unflatten(tree, leaves))))
    exported = export.export(flat_step, platforms=["cpu", "cuda", "tpu"])(leaves)
    restored = export.deserialize(exported.serialize())
    assert restored.platforms == ("cpu", "cuda", "tpu")
    chex.assert_trees_all_equal(restored.call(leaves), jax.tree.leaves(step(*args)))
