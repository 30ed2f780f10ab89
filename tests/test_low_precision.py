"""Low-precision storage: bfloat16 moments, and stochastic rounding of bfloat16 params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu as jo

BF16 = jnp.bfloat16
PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.full((4,), 0.5)}


def loss(p):
    return jnp.sum(jnp.sin(3.0 * p["w"]) ** 2) + jnp.sum((p["b"] - 1.0) ** 2)


MOMENT_OPTIMIZERS = {
    "adam": lambda: jo.adam(1e-2, mu_dtype=BF16, nu_dtype=BF16),
    "adamw": lambda: jo.adamw(1e-2, mu_dtype=BF16, nu_dtype=BF16),
    "nadam": lambda: jo.nadam(1e-2, mu_dtype=BF16, nu_dtype=BF16),
    "nadamw": lambda: jo.nadamw(1e-2, mu_dtype=BF16, nu_dtype=BF16),
    "amsgrad": lambda: jo.amsgrad(1e-2, mu_dtype=BF16, nu_dtype=BF16),
    "adamax": lambda: jo.adamax(1e-2, mu_dtype=BF16, nu_dtype=BF16),
    "adamaxw": lambda: jo.adamaxw(1e-2, mu_dtype=BF16, nu_dtype=BF16),
    "adagrad": lambda: jo.adagrad(1e-1, nu_dtype=BF16),
    "rmsprop": lambda: jo.rmsprop(1e-2, nu_dtype=BF16),
    "rmsprop_centered": lambda: jo.rmsprop(
        1e-2, centered=True, momentum=0.9, mu_dtype=BF16, nu_dtype=BF16, accumulator_dtype=BF16
    ),
    "adadelta": lambda: jo.adadelta(nu_dtype=BF16),
    "sgd": lambda: jo.sgd(1e-2, momentum=0.9, accumulator_dtype=BF16),
}


@pytest.mark.parametrize("name", sorted(MOMENT_OPTIMIZERS))
def test_bfloat16_moments_float32_math(name):
    tx = MOMENT_OPTIMIZERS[name]()
    state = tx.init(PARAMS)
    per_param = [x for x in jax.tree.leaves(state) if x.shape in {(3, 4), (4,)}]
    assert per_param and all(x.dtype == BF16 for x in per_param), name
    params = PARAMS
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for _ in range(20):
        updates, new_state = step(jax.grad(loss)(params), state, params)
        assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(updates))
        jax.tree.map(lambda a, b: np.testing.assert_equal(a.dtype, b.dtype), state, new_state)
        params, state = jo.apply_updates(params, updates), new_state
    assert float(loss(params)) < float(loss(PARAMS))


def run_bf16(rounding, steps=400, lr=1e-3):
    """Least squares in bfloat16 params with updates far below a bfloat16 ulp of the params."""
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(64, 8), jnp.float32)
    w_true = jnp.asarray(rng.randn(8), jnp.float32)
    y = x @ w_true

    def f(w):
        return jnp.mean((x @ w.astype(jnp.float32) - y) ** 2)

    tx = jo.sgd(lr)
    w32 = jnp.full((8,), 4.0, jnp.float32)  # |w| ~ 4: a bf16 ulp is 0.03, far above lr * grad
    w16 = w32.astype(BF16)
    s32, s16 = tx.init(w32), tx.init(w16)
    key = jax.random.PRNGKey(0)

    def body(carry, t):
        w32, s32, w16, s16 = carry
        u32, s32 = tx.update(jax.grad(f)(w32), s32, w32)
        w32 = jo.apply_updates(w32, u32)
        u16, s16 = tx.update(jax.grad(f)(w16).astype(jnp.float32), s16, w16)
        if rounding == "stochastic":
            w16 = jo.apply_updates_stochastic(w16, u16, jax.random.fold_in(key, t))
        else:
            w16 = jo.apply_updates(w16, u16)
        return (w32, s32, w16, s16), jnp.linalg.norm(w16.astype(jnp.float32) - w32)

    _, gaps = jax.lax.scan(body, (w32, s32, w16, s16), jnp.arange(steps))
    return np.asarray(gaps)


def test_stochastic_rounding_tracks_float32_better_than_nearest():
    nearest = run_bf16("nearest")
    stochastic = run_bf16("stochastic")
    # round-to-nearest stalls (updates round away) and drifts from the float32 run
    assert stochastic[-50:].mean() < 0.5 * nearest[-50:].mean(), (stochastic[-1], nearest[-1])


def test_stochastic_rounding_is_unbiased_and_keeps_other_dtypes():
    p = {"a": jnp.full((20000,), 1.0, BF16), "b": jnp.ones(3, jnp.float32)}
    u = {"a": jnp.full((20000,), 1e-3, jnp.float32), "b": jnp.full((3,), 0.5, jnp.float32)}
    out = jo.apply_updates_stochastic(p, u, jax.random.PRNGKey(1))
    assert out["a"].dtype == BF16 and out["b"].dtype == jnp.float32
    # the mean lands on 1.001 even though 1.001 is not a bfloat16 (neighbours 1.0 and 1.0078)
    np.testing.assert_allclose(float(jnp.mean(out["a"].astype(jnp.float32))), 1.001, rtol=2e-4)
    np.testing.assert_allclose(out["b"], 1.5)
    assert np.all(np.asarray(jo.apply_updates(p, u)["a"], np.float32) == 1.0)  # nearest: stuck
