"""Hyperparameters are state: read, set, schedule, no recompilation, vmap."""

import logging

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from registry import CASES

import jaxopt_edu as jo

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def grads_of(params):
    return jax.tree.map(lambda p: jnp.sin(p) + 0.5, params)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_hyperparameter_readable_and_settable(case):
    tx = case.ours()
    state = tx.init(PARAMS)
    for name in case.hyperparams:
        value = jo.tree.get(state, name)
        chex.assert_shape(value, ())
        new = jo.tree.set(state, **{name: 0.123})
        assert float(jo.tree.get(new, name)) == pytest.approx(0.123)
        chex.assert_trees_all_equal_shapes_and_dtypes(new, state)


def test_get_reads_the_constructor_values():
    state = jo.adamw(0.01, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.05).init(PARAMS)
    got = {
        k: float(jo.tree.get(state, k))
        for k in ("learning_rate", "b1", "b2", "eps", "weight_decay")
    }
    assert got == pytest.approx(
        {"learning_rate": 0.01, "b1": 0.8, "b2": 0.95, "eps": 1e-6, "weight_decay": 0.05}
    )


def test_schedule_value_is_readable_at_every_step():
    sched = jo.linear_schedule(1.0, 0.0, 10)
    tx = jo.sgd(sched)
    state = tx.init(PARAMS)
    for k in range(12):
        # the value the next update uses: the schedule at count k (closed form 1 - k/10)
        assert float(jo.tree.get(state, "learning_rate")) == pytest.approx(max(1 - k / 10, 0))
        _, state = tx.update(grads_of(PARAMS), state, PARAMS)


def test_set_changes_the_following_steps_like_optax_inject_hyperparams(x64):
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)}
    ours = jo.adam(0.1)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
        s1, s2 = ours.init(params), theirs.init(params)
        p1 = p2 = params
        for k in range(10):
            if k == 5:
                s1 = jo.tree.set(s1, learning_rate=0.01)
                s2.hyperparams["learning_rate"] = jnp.asarray(0.01)
            u1, s1 = ours.update(grads_of(p1), s1, p1)
            u2, s2 = theirs.update(grads_of(p2), s2, p2)
            p1, p2 = jo.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    np.testing.assert_allclose(p1["w"], p2["w"], rtol=1e-12)


def test_set_overrides_a_schedule():
    tx = jo.sgd(jo.linear_schedule(1.0, 0.0, 10))
    state = jo.tree.set(tx.init(PARAMS), learning_rate=0.5)
    for _ in range(3):
        u, state = tx.update(grads_of(PARAMS), state, PARAMS)
        np.testing.assert_allclose(u["w"], -0.5 * grads_of(PARAMS)["w"], rtol=1e-6)
    assert float(jo.tree.get(state, "learning_rate")) == 0.5


class CompileCounter(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        if "Compiling" in msg and "step" in msg:
            self.messages.append(msg)


def test_set_does_not_recompile_a_jitted_step():
    tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adamw(1e-3))
    state = tx.init(PARAMS)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grads_of(params), state, params)
        return jo.apply_updates(params, updates), state

    handler = CompileCounter()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            params, state = step(PARAMS, state)
            params, state = step(params, state)  # second step: no new compilation
            state = jo.tree.set(state, learning_rate=3e-4, b1=0.5, max_norm=0.1)
            params, state = step(params, state)
    finally:
        logger.removeHandler(handler)
    assert len(handler.messages) == 1, handler.messages
    assert float(jo.tree.get(state, "b1")) == 0.5


def test_vmap_over_learning_rates_equals_separate_runs():
    lrs = jnp.array([1e-3, 1e-2, 1e-1])
    tx = jo.adam(1e-3)

    def run(state):
        params = PARAMS
        for _ in range(5):
            updates, state = tx.update(grads_of(params), state, params)
            params = jo.apply_updates(params, updates)
        return params

    batched = jax.vmap(lambda lr: run(jo.tree.set(tx.init(PARAMS), learning_rate=lr)))(lrs)
    for i, lr in enumerate(lrs):
        alone = run(jo.adam(float(lr)).init(PARAMS))
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], batched), alone, rtol=1e-6)


def test_get_errors_name_the_choices():
    state = jo.adam(0.1).init(PARAMS)
    with pytest.raises(KeyError, match="learning_rate"):
        jo.tree.get(state, "lr")
    with pytest.raises(KeyError, match="init"):
        jo.tree.get(jo.rmsprop(0.1).init(PARAMS), "initial_scale")
    state = jo.chain(jo.adam(0.1), jo.proximal_l1(0.01, 0.1)).init(PARAMS)
    with pytest.raises(KeyError, match="get_all_with_path"):
        jo.tree.get(state, "learning_rate")
    assert len(jo.tree.get_all_with_path(state, "learning_rate")) == 2
    state = jo.tree.set(state, learning_rate=0.2)
    assert [float(v) for _, v in jo.tree.get_all_with_path(state, "learning_rate")] == [
        pytest.approx(0.2)
    ] * 2
    with pytest.raises(ValueError, match="schedule"):
        jo.tree.set(state, learning_rate=lambda c: c)


def test_hyperparameters_are_float64_with_x64(x64):
    state = jo.adam(0.1).init({"w": jnp.ones(2)})
    assert jo.tree.get(state, "b1").dtype == jnp.float64


def _hyper_nodes(state):
    is_hp = lambda x: isinstance(x, jo.HyperParams)  # noqa: E731
    return [x for x in jax.tree.leaves(state, is_leaf=is_hp) if is_hp(x)]


def test_count_is_kept_only_where_something_reads_it():
    # optax keeps no count in `trace` or a constant-lr scale; neither do we (each array in
    # the state crosses `jit` at every call; on a GPU an increment is a kernel launch).
    # Adam's bias correction and any schedule need one.
    leaves = jax.tree.leaves(jo.sgd(0.1, momentum=0.9).init(PARAMS))
    assert len(leaves) == len(jax.tree.leaves(PARAMS)) + 2  # trace + two hyperparameter arrays
    state = jo.sgd(jo.linear_schedule(1.0, 0.0, 10), momentum=0.9).init(PARAMS)
    assert state[0].count is None and state[1].count is not None
    assert jo.adam(1e-3).init(PARAMS)[0].count is not None
    assert jo.ema(0.9, debias=False).init(PARAMS).count is None
    assert jo.ema(0.9).init(PARAMS).count is not None


def test_batched_states_and_abstract_states_read_by_name():
    tx = jo.adam(1e-3)
    lrs = jnp.asarray([0.1, 0.2, 0.3])
    states = jax.vmap(lambda lr: jo.tree.set(tx.init(PARAMS), learning_rate=lr, b1=0.5))(lrs)
    np.testing.assert_allclose(jo.tree.get(states, "learning_rate"), lrs)
    np.testing.assert_allclose(jo.tree.get(states, "b1"), [0.5] * 3)
    np.testing.assert_allclose(jo.tree.get(states, "b2"), [0.999] * 3, rtol=1e-7)
    abstract = jax.eval_shape(tx.init, PARAMS)
    got = jo.tree.get(abstract, "b2")
    assert isinstance(got, jax.ShapeDtypeStruct) and got.shape == () and got.dtype == jnp.float32


def test_hyperparams_pickle_copy_and_compare():
    import copy
    import pickle

    sched = jo.linear_schedule(1.0, 0.0, 10)
    state = jo.chain(jo.clip_by_global_norm(1.0), jo.adamw(sched)).init(PARAMS)
    for again in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state), copy.copy(state)):
        chex.assert_trees_all_equal(again, state)
        assert _hyper_nodes(again) == _hyper_nodes(state)
    other = jo.tree.set(state, weight_decay=0.5)
    assert _hyper_nodes(other) != _hyper_nodes(state)
    assert "scheduled={'learning_rate'" in repr(_hyper_nodes(state)[-1])
