"""Core: chain, named_chain, apply_updates, identity, set_to_zero, stateless, updates helpers."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_edu as jo

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
GRADS = {"w": jnp.full((3, 2), 0.5), "b": jnp.array([1.0, -2.0])}


def test_chain_equals_applying_in_order():
    tx = jo.chain(jo.scale(2.0), jo.scale(-0.5))
    updates, state = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -g, GRADS))
    assert isinstance(state, tuple) and len(state) == 2


def test_chain_passes_extra_args_and_wraps_plain_updates():
    seen = {}

    def init(params):
        return jo.EmptyState()

    def update(updates, state, params=None):  # an old-style update without **extra_args
        seen["called"] = True
        return updates, state

    tx = jo.chain(jo.GradientTransformation(init, update), jo.scale(1.0))
    tx.update(GRADS, tx.init(PARAMS), PARAMS, value=jnp.ones(()), unknown=3)
    assert seen["called"]


def test_named_chain_state_is_keyed_and_names_unique():
    tx = jo.named_chain(("clip", jo.clip(0.1)), ("lr", jo.scale_by_learning_rate(1.0)))
    updates, state = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    assert set(state) == {"clip", "lr"}
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -jnp.clip(g, -0.1, 0.1), GRADS))
    with pytest.raises(ValueError, match="unique"):
        jo.named_chain(("a", jo.identity()), ("a", jo.identity()))


def test_apply_updates_keeps_dtype_and_skips_none():
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": None, "c": jnp.ones(2, jnp.float32)}
    updates = {"a": jnp.full(3, 0.5, jnp.float32), "b": None, "c": jnp.full(2, 0.25)}
    out = jo.apply_updates(params, updates)
    assert out["a"].dtype == jnp.bfloat16 and out["b"] is None and out["c"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out["a"], np.float32), 1.5)


def test_identity_set_to_zero_stateless():
    u, _ = jo.identity().update(GRADS, jo.identity().init(PARAMS))
    chex.assert_trees_all_equal(u, GRADS)
    u, _ = jo.set_to_zero().update(GRADS, jo.set_to_zero().init(PARAMS))
    chex.assert_trees_all_equal(u, jax.tree.map(jnp.zeros_like, GRADS))
    tx = jo.stateless(lambda g, p: jax.tree.map(lambda a, b: a * b, g, p))
    u, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    chex.assert_trees_all_close(u, jax.tree.map(lambda a, b: a * b, GRADS, PARAMS))


def test_with_extra_args_support():
    tx = jo.with_extra_args_support(optax.scale(2.0))
    u, _ = tx.update(GRADS, tx.init(PARAMS), None, foo=1)
    chex.assert_trees_all_close(u, jax.tree.map(lambda g: 2 * g, GRADS))
    assert isinstance(tx, jo.GradientTransformationExtraArgs)


def test_incremental_and_periodic_update_closed_form():
    new, old = {"x": jnp.array([2.0])}, {"x": jnp.array([4.0])}
    chex.assert_trees_all_close(jo.incremental_update(new, old, 0.25), {"x": jnp.array([3.5])})
    assert float(jo.periodic_update(new, old, jnp.asarray(6), 3)["x"][0]) == 2.0
    assert float(jo.periodic_update(new, old, jnp.asarray(7), 3)["x"][0]) == 4.0
    with pytest.raises(ValueError, match="update_period"):
        jo.periodic_update(new, old, jnp.asarray(1), 0)


def test_proximal_l1_is_the_soft_threshold():
    params = {"x": jnp.array([1.0, -0.02, 0.5, -2.0])}
    grads = {"x": jnp.array([0.5, 0.0, 4.0, -1.0])}
    lr, lam = 0.1, 0.5
    tx = jo.chain(jo.sgd(lr), jo.proximal_l1(lam, lr))
    u, _ = tx.update(grads, tx.init(params), params)
    y = np.asarray(params["x"]) - lr * np.asarray(grads["x"])
    expected = np.sign(y) * np.maximum(np.abs(y) - lr * lam, 0)  # Parikh & Boyd, 6.5.2
    np.testing.assert_allclose(np.asarray(jo.apply_updates(params, u)["x"]), expected, rtol=1e-6)
    assert float(jo.apply_updates(params, u)["x"][1]) == 0.0  # exact zero: real sparsity


def test_masked_weight_decay_leaves_masked_leaves_alone():
    tx = jo.add_decayed_weights(0.1, mask=lambda p: {"w": True, "b": False})
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    u, _ = tx.update(GRADS, tx.init(params), params)
    chex.assert_trees_all_close(u["b"], GRADS["b"])
    chex.assert_trees_all_close(u["w"], GRADS["w"] + 0.1)


def test_state_has_no_python_scalars_and_survives_jit_and_cond():
    tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adamw(jo.cosine_decay_schedule(1e-2, 100)))
    state = tx.init(PARAMS)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))

    @jax.jit
    def step(pred, state):
        return jax.lax.cond(pred, lambda: tx.update(GRADS, state, PARAMS), lambda: (GRADS, state))

    _, s2 = step(True, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(s2, state)


def test_prefix_mask_covers_a_whole_subtree_like_optax():
    params = {"layers": {"w": jnp.ones(2), "s": jnp.ones(3)}, "b": jnp.ones(2)}
    grads = jax.tree.map(jnp.zeros_like, params)
    mask = {"layers": True, "b": False}
    ours = jo.adamw(0.1, weight_decay=0.5, mask=mask)
    u, _ = ours.update(grads, ours.init(params), params)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.adamw(0.1, weight_decay=0.5, mask=mask)
        v, _ = theirs.update(grads, theirs.init(params), params)
    chex.assert_trees_all_close(u, v)
    assert float(u["b"][0]) == 0.0 and float(u["layers"]["w"][0]) < 0
