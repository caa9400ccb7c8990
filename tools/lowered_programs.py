"""Fingerprints of the programs the JAX modules lower to, to show that a change leaves them as they were.

    .venv/bin/python -m tools.lowered_programs > after.txt

Lowers the gradient of a loss of the Linen and NNX stacks (fused, hoisted and strided layers, with
options) and of the encoder-forecaster, and prints each StableHLO text's SHA-256 and length. Run
it before and after a change that should not change the computation (a refactoring): equal
fingerprints mean equal programs, so equal results and speed, with no benchmark to run. Run both
with the same jax and jaxlib.
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
from flax import nnx

import convlstm_jax
import convlstm_jax.nnx as convlstm_nnx
from convlstm_jax.models import EncoderForecaster

STACKS = {
    "fused": {},
    "hoisted": {"input_kernel_size": 5, "peephole": "hadamard"},
    "options": {"reverse": True, "padding": "valid", "stride": 2},
}
"""Stack options per program: one convolution over [X, H], the input's outside the loop, and more."""


def programs() -> dict[str, str]:
    """The StableHLO text of each program, by name."""
    x = jnp.ones((2, 5, 12, 12, 3))
    texts = {}
    for name, options in STACKS.items():
        linen = convlstm_jax.ConvLSTM(3, [8, 4], 3, 2, batch_first=True, return_all_layers=True, **options)
        variables = linen.init(jax.random.key(0), x)

        def linen_loss(variables, x, linen=linen):
            return sum(jnp.sum(y**2) for y in linen.apply(variables, x)[0])

        texts[f"linen-{name}"] = jax.jit(jax.grad(linen_loss)).lower(variables, x).as_text()
        model = convlstm_nnx.ConvLSTM(
            3, [8, 4], 3, 2, batch_first=True, return_all_layers=True, rngs=nnx.Rngs(0), **options
        )
        graph, state = nnx.split(model)

        def nnx_loss(state, x, graph=graph):
            return sum(jnp.sum(y**2) for y in nnx.merge(graph, state)(x)[0])

        texts[f"nnx-{name}"] = jax.jit(jax.grad(nnx_loss)).lower(state, x).as_text()
    model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-8-3x3-4", output_frames=2)
    frames = jnp.zeros((2, 3, 16, 16, 1))
    variables = model.init(jax.random.key(0), frames)
    texts["encoder-forecaster"] = (
        jax.jit(jax.grad(lambda v: jnp.sum(model.apply(v, frames)))).lower(variables).as_text()
    )
    return texts


def main() -> None:
    for name, text in programs().items():
        print(f"{name:20s} {hashlib.sha256(text.encode()).hexdigest()[:16]} {len(text):7d} chars")


if __name__ == "__main__":
    main()
