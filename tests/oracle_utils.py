"""Helpers shared by the tests that compare whole trajectories against optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def trajectory(tx, params, loss, apply, steps=200, state=None):
    """Every iterate of `steps` jitted steps of `tx` on `loss`, stacked on a new first axis."""
    state = tx.init(params) if state is None else state
    out = [params]

    @jax.jit
    def step(p, s):
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return apply(p, u), s

    for _ in range(steps):
        params, state = step(params, state)
        out.append(params)
    return jax.tree.map(lambda *xs: np.stack(xs), *out)


def max_rel_err(a, b):
    """Largest |a - b| / |b| over every leaf and element (|b| floored at 1e-12)."""
    errs = jax.tree.map(lambda x, y: np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-12)), a, b)
    return max(jax.tree.leaves(errs))


def tanh_fit_problem(seed, rows, wave, b_scale):
    """A small non-convex least-squares fit with two leaves of different shapes.

    `wave(w)` is the oscillating penalty on the (3, 4) weights; the (4,) bias has a
    double-well penalty. Returns `(params, loss)`."""
    rng = np.random.RandomState(seed)
    x = jnp.asarray(rng.randn(rows, 3))
    y = jnp.asarray(rng.randn(rows))
    c = jnp.asarray(rng.randn(4))
    params = {"w": jnp.asarray(rng.randn(3, 4)), "b": jnp.asarray(rng.randn(4) * b_scale)}

    def loss(p):
        pred = jnp.tanh(x @ p["w"] + p["b"][None, :]) @ c
        return (
            jnp.mean((pred - y) ** 2)
            + 0.1 * jnp.sum(wave(p["w"]))
            + 0.05 * jnp.sum(p["b"] ** 4 - p["b"] ** 2)
        )

    return params, loss
