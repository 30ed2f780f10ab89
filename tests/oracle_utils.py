"""Helpers shared by the tests that compare whole trajectories against optax."""

from __future__ import annotations

import jax
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
