import chex
import jax
import jax.numpy as jnp
import pytest

from convlstm_jax import ConvLSTM
from convlstm_jax._conv import _conv, conv, conv_same, resolve_conv_gradient


@pytest.mark.parametrize(
    ("x_shape", "kernel_shape"),
    [
        ((2, 6, 5, 3), (3, 3, 3, 8)),
        ((1, 7, 4, 2), (1, 5, 2, 4)),
        ((3, 5, 5, 1), (5, 3, 1, 2)),
        ((1, 1, 1, 2), (3, 3, 2, 2)),
        ((2, 9, 3), (3, 3, 4)),  # signals
        ((1, 4, 2), (5, 2, 2)),
        ((2, 3, 4, 5, 2), (3, 1, 5, 2, 3)),  # volumes
        ((1, 1, 1, 1, 2), (3, 3, 3, 2, 1)),
    ],
)
def test_tapwise_gradients_equal_xlas(x_shape, kernel_shape):
    keys = jax.random.split(jax.random.key(0), 3)
    x, kernel = jax.random.normal(keys[0], x_shape), jax.random.normal(keys[1], kernel_shape)
    weight = jax.random.normal(keys[2], (*x_shape[:-1], kernel_shape[-1]))

    def loss(fn):
        return lambda x, kernel: jnp.sum(fn(x, kernel) * weight)

    chex.assert_trees_all_close(conv_same(x, kernel), _conv(x, kernel, None))
    tapwise = jax.grad(loss(conv_same), argnums=(0, 1))(x, kernel)
    xla = jax.grad(loss(lambda x, k: _conv(x, k, None)), argnums=(0, 1))(x, kernel)
    chex.assert_trees_all_close(tapwise, xla, rtol=1e-5, atol=1e-5)


def test_tapwise_gradients_in_bfloat16_accumulate_in_float32():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 16), jnp.bfloat16)
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 16, 8), jnp.bfloat16)
    grad_kernel = jax.grad(lambda k: jnp.sum(conv_same(x, k).astype(jnp.float32)))(kernel)
    exact = jax.grad(lambda k: jnp.sum(_conv(x.astype(jnp.float32), k, None)))(kernel.astype(jnp.float32))
    assert grad_kernel.dtype == jnp.bfloat16
    chex.assert_trees_all_close(grad_kernel.astype(jnp.float32), exact, rtol=1e-2, atol=1e-1)


def test_strategy_choice():
    assert resolve_conv_gradient("auto") == ("tapwise" if jax.default_backend() == "cpu" else "xla")
    assert resolve_conv_gradient("xla") == "xla"
    with pytest.raises(ValueError, match=r"conv_gradient must be one of \('auto', 'xla', 'tapwise'\), got 'fast'"):
        conv(jnp.ones((1, 3, 3, 1)), jnp.ones((3, 3, 1, 1)), "fast")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conv_gradient": "fast"}, "conv_gradient must be one of"),
        ({"unroll": 0}, "unroll must be a positive int"),
        ({"unroll": True}, "unroll must be a positive int"),
        ({"unroll": 2.0}, r"unroll must be a positive int .* or None \(per backend\), got 2.0"),
    ],
)
def test_bad_strategy_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvLSTM(None, 4, 3, 1, **kwargs)


def test_unroll_default_per_backend(monkeypatch):
    from convlstm_jax import _conv

    assert _conv.resolve_unroll(3) == 3
    for backend, expected in (("cpu", 1), ("gpu", 5), ("tpu", 1)):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        assert _conv.resolve_unroll(None) == expected


def _train_step_memory(remat, steps):
    model = ConvLSTM(2, [8, 8], 3, 2, batch_first=True, remat=remat)
    x = jax.ShapeDtypeStruct((2, steps, 16, 16, 2), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)

    def loss(params, x):
        outputs, _ = model.apply(params, x)
        return jnp.mean(outputs[0] ** 2)

    compiled = jax.jit(jax.grad(loss)).lower(params, x).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_remat_cuts_the_train_steps_memory():
    # XLA's own accounting of the compiled program (no execution, no timing).
    assert _train_step_memory(False, 100) > 3 * _train_step_memory(True, 100)


@pytest.mark.parametrize("unroll", [None, 1, 5])
def test_the_gradient_program_does_not_grow_with_sequence_length(unroll):
    model = ConvLSTM(2, [4, 4], 3, 2, unroll=unroll)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 1, 5, 5, 2)))

    def size(steps):
        loss = lambda p, x: jnp.sum(model.apply(p, x)[0][0])  # noqa: E731
        text = jax.jit(jax.grad(loss)).lower(params, jnp.ones((steps, 1, 5, 5, 2))).as_text()
        return text.count("convolution(") + text.count("stablehlo.convolution"), text.count("dot_general")

    assert size(10) == size(50)


def test_compiler_options_give_the_same_results():
    from convlstm_jax import compiler_options

    assert compiler_options("gpu") == {} and compiler_options("tpu") == {}
    options = compiler_options()
    assert options == ({"xla_cpu_experimental_ynn_fusion_type": ""} if jax.default_backend() == "cpu" else {})
    model = ConvLSTM(2, 8, 3, 1)
    x = jax.random.normal(jax.random.key(0), (3, 2, 9, 9, 2))
    variables = model.init(jax.random.key(1), x)

    def loss(variables):
        return jnp.mean(jnp.square(model.apply(variables, x)[0][0]))

    step = jax.value_and_grad(loss)
    chex.assert_trees_all_close(
        jax.jit(step, compiler_options=options)(variables), jax.jit(step)(variables), rtol=1e-5, atol=1e-6
    )


def test_compiler_options_for_a_device_are_its_platforms(monkeypatch):
    from convlstm_jax import _conv, compiler_options

    cpu = jax.devices("cpu")[0]
    assert compiler_options(cpu) == compiler_options("cpu") == {"xla_cpu_experimental_ynn_fusion_type": ""}
    # A CPU device is the CPU's options whatever the default backend says.
    monkeypatch.setattr(_conv.jax, "default_backend", lambda: "gpu")
    assert compiler_options() == {}
    assert compiler_options(cpu) == {"xla_cpu_experimental_ynn_fusion_type": ""}


def test_compiler_options_an_older_jaxlib_does_not_know_are_left_out(monkeypatch):
    from convlstm_jax import _conv

    monkeypatch.setattr(_conv, "_CPU_OPTIONS", {"xla_cpu_no_such_option": ""})
    _conv._cpu_options_known.cache_clear()
    try:
        assert _conv.compiler_options("cpu") == {}
    finally:
        _conv._cpu_options_known.cache_clear()
