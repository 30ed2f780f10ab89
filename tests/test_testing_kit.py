"""The public test kit passes on sound transformations and names each broken property."""

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxopt_edu
from jaxopt_edu import testing
from jaxopt_edu.base import GradientTransformation
from jaxopt_edu.transforms.adam import scale_by_adam
from jaxopt_edu.transforms.scaling import scale, scale_by_learning_rate

chain = jaxopt_edu.chain


def sign_sgd(learning_rate):  # the module docstring's example
    def init(params):
        return {"count": jnp.zeros([], jnp.int32)}

    def update(updates, state, params=None, **extra_args):
        updates = jax.tree.map(lambda g: -learning_rate * jnp.sign(g), updates)
        return updates, {"count": state["count"] + 1}

    return GradientTransformation(init, update)


def sgd(learning_rate, **kw):  # a user's plain SGD, for the broken variants below
    def init(params):
        return {"count": jnp.zeros([], jnp.int32)}

    def update(updates, state, params=None, **extra_args):
        updates = jax.tree.map(lambda g: -learning_rate * g, updates)
        return updates, {"count": state["count"] + 1}

    return GradientTransformation(kw.get("init", init), kw.get("update", update))


# ---------------------------------------------------------------- sound transformations


def test_passes_on_our_adam():
    testing.check_all(
        chain(scale_by_adam(), scale(-0.1)),
        converge_on=("parabola", "rosenbrock"),
        steps={"parabola": 500, "rosenbrock": 5000},
        tol={"parabola": 1e-2, "rosenbrock": 5e-2},
    )


def test_passes_with_a_schedule_in_the_state():
    lr = scale_by_learning_rate(lambda count: jnp.where(count < 100, 0.1, 0.05))
    testing.check_all(chain(scale_by_adam(), lr))


def test_passes_on_optax_adam():
    with jax.numpy_dtype_promotion("standard"):
        testing.check_all(optax.adam(0.1), skip=("dtypes",))
        # optax 0.2.8 keeps nu in float16 for float16 params: tiny gradients square to 0
        # and the update overflows to -inf (ours stores nu in float32); check the rest
        testing.check_dtypes(optax.adam(0.1), dtypes=(jnp.bfloat16, jnp.float32))


def test_passes_on_a_user_written_sign_sgd():
    testing.check_all(sign_sgd(0.01), steps=1000, tol=0.05)


def test_float64_under_x64():
    with jax.enable_x64(True):
        testing.check_dtypes(chain(scale_by_adam(), scale(-0.1)))


def test_learning_rate_free_tests_only_the_direction():
    too_large = sgd(2.5)
    testing.check_descends_on_quadratic(too_large)
    with pytest.raises(AssertionError, match=r"(?s)\[descends_on_quadratic\].*lower the learning"):
        testing.check_descends_on_quadratic(too_large, learning_rate_free=False)


def test_check_all_rejects_unknown_names():
    with pytest.raises(ValueError, match="no_such_check"):
        testing.check_all(sgd(0.1), skip=("no_such_check",))


def test_check_all_skips():
    testing.check_all(sgd(2.5), skip=("converges",))


# ---------------------------------------------------------------- broken transformations


def test_ascending_fails_descends():
    with pytest.raises(AssertionError, match=r"^\[descends_on_quadratic\] the first update"):
        testing.check_descends_on_quadratic(scale_by_adam())  # forgot the sign flip


def _float_count_update(updates, state, params=None, **extra_args):
    updates = jax.tree.map(lambda g: -0.1 * g, updates)
    return updates, {"count": state["count"].astype(jnp.float32) + 1.0}  # int32 -> float32


def test_state_dtype_change_fails_no_recompile():
    with pytest.raises(AssertionError, match=r"^\[no_recompile\] the second update compiled"):
        testing.check_no_recompile(sgd(0.1, update=_float_count_update))


def test_state_dtype_change_fails_cond_stable():
    with pytest.raises(AssertionError, match=r"^\[cond_stable\].*int32\[\] from init"):
        testing.check_cond_stable(sgd(0.1, update=_float_count_update))


def test_impure_fails_jit_matches_eager():
    calls = [0]

    def update(updates, state, params=None, **extra_args):
        calls[0] += 1  # a Python side effect: frozen at trace time under jit
        return jax.tree.map(lambda g: -0.1 * calls[0] * g, updates), state

    with pytest.raises(AssertionError, match=r"^\[jit_matches_eager\] update 1 of 3 differs"):
        testing.check_jit_matches_eager(sgd(0.1, update=update))


def test_missing_extra_args_fails_extra_args():
    def update(updates, state, params=None):
        return jax.tree.map(lambda g: -0.1 * g, updates), state

    tx = sgd(0.1, update=update)
    with pytest.raises(AssertionError, match=r"(?s)^\[extra_args\].*with_extra_args_support"):
        testing.check_extra_args(tx)
    testing.check_extra_args(jaxopt_edu.base.with_extra_args_support(tx))


def test_float32_updates_for_bfloat16_fail_dtypes():
    def update(updates, state, params=None, **extra_args):
        return jax.tree.map(lambda g: -0.1 * g.astype(jnp.float32), updates), state

    with pytest.raises(AssertionError, match=r"^\[dtypes\] bfloat16 gradients"):
        testing.check_dtypes(sgd(0.1, update=update), dtypes=(jnp.float32, jnp.bfloat16))


def test_init_reading_values_fails_abstract_init():
    def init(params):  # reads a value in Python: impossible on abstract params
        return {"count": jnp.zeros([], jnp.int32) + int(jnp.sum(params["w"]) > 0)}

    with pytest.raises(AssertionError, match=r"^\[abstract_init\] init failed"):
        testing.check_abstract_init(sgd(0.1, init=init))


def test_params_in_state_fail_no_aliasing():
    def init(params):
        return {"prev": params}

    def update(updates, state, params=None, **extra_args):
        return jax.tree.map(lambda g: -0.1 * g, updates), {"prev": params}

    with pytest.raises(AssertionError, match=r"^\[no_aliasing\] the state after init shares"):
        testing.check_no_aliasing(sgd(0.1, init=init, update=update))


def test_diverging_fails_converges():
    with pytest.raises(AssertionError, match=r"^\[converges\] after 500 steps on parabola"):
        testing.check_converges(sgd(2.5))
