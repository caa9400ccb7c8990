"""XLA:CPU: wrong float64 gradients of an LSTM step with a peephole matmul of the new cell state.

Self-contained (jax and numpy only). An LSTM over 8x8 frames whose output gate reads a 1x1
convolution of the new cell state C' (a "peephole"). Under jit, in float64, the gradients of the
rolled `lax.scan` differ from the unrolled one by about the gradients' own size; float32 and
unroll=T are right, so are `jax.checkpoint` with `dots_saveable` and the compile options
`xla_backend_optimization_level=0`, `xla_cpu_use_fusion_emitters=False` or
`xla_cpu_prefer_vector_width=128`. Seen with jax/jaxlib 0.10.2 on AVX2 processors (AMD Zen 3), and
on AVX-512 ones with --xla_cpu_max_isa=AVX2, which this script sets unless XLA_FLAGS is given.

    python tools/xla_cpu_float64_repro.py
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)


def conv(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def step(w, carry, x):
    h, c = carry
    zi, zf, zo, zg = jnp.split(conv(jnp.concatenate([x, h], -1), w["k"]) + w["b"], 4, -1)
    c = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
    h = jax.nn.sigmoid(zo + conv(c, w["ko"])) * jnp.tanh(c)  # the peephole: conv(C', ko)
    return (h, c), h


def loss(w, xs, target, unroll):
    zeros = jnp.zeros((*xs.shape[1:-1], 6))
    _, hs = lax.scan(lambda carry, x: step(w, carry, x), (zeros, zeros), xs, unroll=unroll)
    return jnp.sum(hs * target)


r = np.random.default_rng(0)
w = {"k": r.normal(size=(1, 1, 8, 24)), "b": r.normal(size=24), "ko": r.normal(size=(1, 1, 6, 6))}
xs, target = r.normal(size=(6, 1, 8, 8, 2)), r.normal(size=(6, 1, 8, 8, 6))
grad = jax.jit(jax.grad(loss, argnums=1), static_argnums=3)
rolled, unrolled = np.asarray(grad(w, xs, target, 1)), np.asarray(grad(w, xs, target, 6))
print(jax.__version__, os.environ["XLA_FLAGS"])
print("dL/dx[0, 0, 0, :2], rolled (wrong):  ", rolled[0, 0, 0, :2].ravel())
print("dL/dx[0, 0, 0, :2], unrolled (right):", unrolled[0, 0, 0, :2].ravel())
print("max |rolled - unrolled| / max |unrolled| =", np.abs(rolled - unrolled).max() / np.abs(unrolled).max())
