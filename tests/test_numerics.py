"""Numerical edge cases: float16 extremes, rounding below zero, zero norms, complex inner products."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu as jo

F16 = jnp.float16


@pytest.mark.parametrize(
    "make",
    [
        lambda: jo.adam(1e-3),
        lambda: jo.adamw(1e-3),
        lambda: jo.nadam(1e-3),
        lambda: jo.amsgrad(1e-3),
        lambda: jo.adamax(1e-3),
        lambda: jo.rmsprop(1e-3),
        lambda: jo.rmsprop(1e-3, centered=True),
        lambda: jo.adagrad(1e-3),
        lambda: jo.adadelta(),
    ],
)
def test_float16_params_with_tiny_zero_and_large_gradients_stay_finite(make):
    tx = make()
    params = {"w": jnp.ones(4, F16)}
    grads = {"w": jnp.array([1e-4, 0.0, 1.0, 1e3], F16)}  # 1e-4 squared underflows in float16
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update(grads, state, params)
        assert updates["w"].dtype == F16
        assert bool(jnp.all(jnp.isfinite(updates["w"]))), updates["w"]
    # steps have the sign of descent and a size of order the learning rate (not 0, not inf)
    u = np.asarray(updates["w"], np.float32)
    assert np.all(u[[0, 2, 3]] < 0) and abs(u[1]) <= 1e-6  # adamw decays the zero-grad one


def test_centered_rmsprop_survives_a_steady_gradient():
    # v - m^2 rounds slightly below zero when the gradient never changes
    tx = jo.rmsprop(1e-3, centered=True)
    g = {"w": jnp.array([0.3, 1.7, 123.4])}
    state = tx.init(g)
    step = jax.jit(tx.update)
    for _ in range(300):
        u, state = step(g, state)
    assert bool(jnp.all(jnp.isfinite(u["w"])))


def test_clip_by_global_norm_meta_gradient_is_finite_at_zero():
    tx = jo.clip_by_global_norm(1.0)

    def f(a):
        u, _ = tx.update({"a": a * jnp.zeros(3)}, tx.init(None))
        return jnp.sum(u["a"])

    assert np.isfinite(float(jax.grad(f)(1.0)))


def test_vdot_keeps_the_imaginary_part():
    a = {"z": jnp.array([1 + 2j, 3 - 1j], jnp.complex64)}
    b = {"z": jnp.array([2 - 1j, 1j], jnp.complex64)}
    expected = np.vdot(np.asarray(a["z"]), np.asarray(b["z"]))
    np.testing.assert_allclose(complex(jo.tree.vdot(a, b)), expected, rtol=1e-6)


def test_norms_reduce_in_float32():
    t = {"a": jnp.full(1000, 300.0, F16)}
    np.testing.assert_allclose(float(jo.tree.norm(t, ord=1)), 300_000.0, rtol=1e-6)


def test_nadam_with_a_narrower_moment_dtype_under_x64(x64):
    params = {"w": jnp.ones(3, jnp.float64)}
    tx = jo.nadam(1e-2, mu_dtype=jnp.float32)
    u, state = tx.update({"w": jnp.full(3, 0.5, jnp.float64)}, tx.init(params), params)
    assert u["w"].dtype == jnp.float64 and state[0].mu["w"].dtype == jnp.float32


def test_schedules_are_checked_at_construction():
    with pytest.raises(ValueError, match="`weight_decay`.*step 0"):
        jo.adamw(0.1, weight_decay=lambda count: -1.0)
    with pytest.raises(ValueError, match="`learning_rate`.*step count"):
        jo.adam(lambda: 0.1)
    with pytest.raises(ValueError, match="`learning_rate`"):
        jo.sgd(jo.linear_schedule(-1.0, 1.0, 10))
