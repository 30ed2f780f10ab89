"""Bad input gets a clear error that names the argument or the tree path."""

import jax.numpy as jnp
import pytest

import jaxopt_edu as jo

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


@pytest.mark.parametrize(
    ("build", "arg", "valid"),
    [
        (lambda: jo.sgd(-0.1), "learning_rate", ">= 0"),
        (lambda: jo.adam(-1e-3), "learning_rate", ">= 0"),
        (lambda: jo.adam(1e-3, b1=1.0), "b1", "[0, 1)"),
        (lambda: jo.adam(1e-3, b1=-0.1), "b1", "[0, 1)"),
        (lambda: jo.adamw(1e-3, b2=1.5), "b2", "[0, 1)"),
        (lambda: jo.adam(1e-3, eps=-1e-8), "eps", ">= 0"),
        (lambda: jo.adamw(1e-3, weight_decay=-0.1), "weight_decay", ">= 0"),
        (lambda: jo.rmsprop(1e-3, eps=-1.0), "eps", ">= 0"),
        (lambda: jo.rmsprop(1e-3, decay=1.5), "decay", "[0, 1]"),
        (lambda: jo.adagrad(1e-3, eps=-1.0), "eps", ">= 0"),
        (lambda: jo.adadelta(rho=2.0), "rho", "[0, 1]"),
        (lambda: jo.sgd(0.1, momentum=-0.9), "momentum", ">= 0"),
        (lambda: jo.clip_by_global_norm(0.0), "max_norm", "> 0"),
        (lambda: jo.clip(-1.0), "max_delta", ">= 0"),
        (lambda: jo.adam("0.1"), "learning_rate", "number or a schedule"),
        (lambda: jo.adam(None), "learning_rate", "number or a schedule"),
        (lambda: jo.adam(float("nan")), "learning_rate", ">= 0"),
        (lambda: jo.adam(jnp.ones(3)), "learning_rate", "scalar"),
    ],
)
def test_bad_hyperparameter_is_named_at_construction(build, arg, valid):
    with pytest.raises(ValueError, match=f"`{arg}`") as err:
        build()
    assert valid in str(err.value)


def test_momentum_wrapped_name_is_the_alias_argument():
    with pytest.raises(ValueError, match="nesterov"):
        jo.sgd(0.1, nesterov=True)


def test_mismatched_gradient_tree_names_the_first_differing_path():
    tx = jo.adam(1e-3)
    state = tx.init(PARAMS)
    with pytest.raises(ValueError, match=r"lacks \['b'\]"):
        tx.update({"w": jnp.ones((3, 2)), "c": jnp.zeros(2)}, state, PARAMS)
    with pytest.raises(ValueError, match=r"\['b'\].*shape \(3,\) vs \(2,\)"):
        tx.update({"w": jnp.ones((3, 2)), "b": jnp.zeros(3)}, state, PARAMS)
    with pytest.raises(ValueError, match=r"`updates` lacks \['b'\]"):
        tx.update({"w": jnp.ones((3, 2))}, state, PARAMS)


def test_apply_updates_mismatch_names_the_path():
    with pytest.raises(ValueError, match=r"`updates` has \['c'\], which `params` lacks"):
        jo.apply_updates(PARAMS, {"w": jnp.ones((3, 2)), "b": jnp.zeros(2), "c": jnp.zeros(1)})
    with pytest.raises(ValueError, match=r"\['b'\]"):
        jo.apply_updates(PARAMS, {"w": jnp.ones((3, 2)), "b": jnp.zeros(5)})


def test_chain_rejects_a_factory():
    with pytest.raises(TypeError, match="parentheses"):
        jo.chain(jo.scale_by_adam)


def test_weight_decay_needs_params():
    tx = jo.adamw(1e-3)
    with pytest.raises(ValueError, match="params"):
        tx.update(PARAMS, tx.init(PARAMS))


def test_bad_mask_is_named():
    tx = jo.add_decayed_weights(0.1, mask={"w": True})
    with pytest.raises(ValueError, match="mask"):
        tx.update(PARAMS, tx.init(PARAMS), PARAMS)


def test_prefix_mask_errors_name_the_real_path():
    p = {"enc": {"w": jnp.ones(2), "b": jnp.ones(2)}, "dec": {"w": jnp.ones(2)}, "s": jnp.ones(())}
    missing = jo.add_decayed_weights(0.1, mask={"enc": True, "dec": False})
    with pytest.raises(ValueError, match=r"no `mask` entry covers \['s'\] of `params`"):
        missing.update(p, missing.init(p), p)
    extra = jo.add_decayed_weights(0.1, mask={"enc": True, "dec": False, "s": True, "zz": True})
    with pytest.raises(ValueError, match=r"`mask` has \['zz'\], which `params` lacks"):
        extra.update(p, extra.init(p), p)
