"""Problems: known minima are minima, tasks are pure and deterministic, errors list choices."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_edu.lab import Problem, get_problem, list_problems
from jaxopt_edu.lab import problems as P

KEY = jax.random.PRNGKey(0)
WITH_OPTIMUM = [
    n
    for n in list_problems()
    if n not in ("saddle", "digits") and P._REGISTRY[n][0]().optimum is not None
]


def test_registry_lists_every_problem():
    names = list_problems()
    for n in ["rosenbrock", "beale", "himmelblau", "rastrigin", "ackley", "saddle",
              "ill_conditioned_quadratic", "bilinear", "logistic_regression", "spirals",
              "regression", "digits"]:  # fmt: skip
        assert isinstance(names[n], str) and names[n]


@pytest.mark.parametrize("name", WITH_OPTIMUM)
def test_known_minimum_is_a_minimum(name):
    p = get_problem(name)
    value, grad = jax.value_and_grad(p.loss)(p.optimum, KEY)
    assert float(value) == pytest.approx(p.optimum_value, abs=1e-5)
    assert float(jnp.linalg.norm(grad)) < 1e-4
    start = p.initial_params(KEY, 0)
    assert float(p.loss(start, KEY)) > p.optimum_value


def test_himmelblau_other_minima():
    p = get_problem("himmelblau")
    for xy in [(-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]:
        assert float(p.loss(jnp.asarray(xy), KEY)) < 1e-6


def test_quadratic_has_the_asked_condition_number():
    p = get_problem("ill_conditioned_quadratic", dim=6, condition_number=50.0)
    h = jax.hessian(p.loss)(p.optimum, KEY)
    eig = np.linalg.eigvalsh(np.asarray(h, np.float64))
    np.testing.assert_allclose(eig, np.geomspace(1.0, 50.0, 6), rtol=1e-4)


def test_bilinear_gradient_is_the_descent_ascent_field():
    p = get_problem("bilinear")
    z = jnp.asarray([0.7, -0.3])
    np.testing.assert_allclose(jax.grad(p.loss)(z, KEY), [-0.3, -0.7], rtol=1e-6)


def test_seed_zero_is_the_standard_start_and_other_seeds_differ():
    p = get_problem("rosenbrock")
    np.testing.assert_allclose(p.initial_params(KEY, 0), [-1.2, 1.0], rtol=1e-6)
    a, b = (p.initial_params(jax.random.PRNGKey(k), 1) for k in (1, 2))
    assert not np.allclose(a, b)


def test_tasks_are_pure_and_dropout_uses_the_key():
    p = get_problem("spirals", hidden=4, dropout=0.5, l1=1e-3, l2=1e-3)
    params = p.init(KEY)
    keys = jax.random.split(KEY, 3)
    losses = jax.jit(jax.vmap(p.loss, in_axes=(None, 0)))(params, keys)
    assert np.all(np.isfinite(losses)) and len(set(np.asarray(losses).tolist())) == 3
    assert float(p.loss(params, keys[0])) == float(losses[0])
    assert 0.0 <= float(p.val_metric(params)) <= 1.0 and p.higher_is_better


def test_l2_penalty_adds_sum_of_squared_weights():
    base, pen = get_problem("regression", hidden=3), get_problem("regression", hidden=3, l2=0.5)
    params = base.init(KEY)
    sq = sum(float(jnp.sum(v * v)) for k, v in params.items() if k.startswith("w"))
    assert float(pen.loss(params, KEY)) == pytest.approx(
        float(base.loss(params, KEY)) + 0.5 * sq, rel=1e-5
    )
    assert pen.val_metric_name == "val_mse" and not pen.higher_is_better


def test_logistic_regression_with_dropout():
    p = get_problem("logistic_regression", dropout=0.2)
    params = p.init(KEY)
    assert p.dim == 11 and np.isfinite(
        float(jax.grad(lambda q: p.loss(q, KEY))(params)["w0"][0, 0])
    )


def test_digits_or_clear_error(monkeypatch):
    pytest.importorskip("sklearn")
    p = get_problem("digits", hidden=8)
    assert p.dim == 64 * 8 + 8 + 8 * 10 + 10
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        get_problem("digits")


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown problem 'rosenbrok'.*rosenbrock.*spirals"):
        get_problem("rosenbrok")


def test_unknown_option_lists_the_options():
    with pytest.raises(ValueError, match="unknown option `dim`.*hidden, dropout, l1, l2"):
        get_problem("spirals", dim=3)
    with pytest.raises(ValueError, match="no options"):
        get_problem("beale", dim=3)


@pytest.mark.parametrize(
    "name, options, arg",
    [("spirals", {"dropout": 1.0}, "dropout"), ("regression", {"l2": -1.0}, "l2"),
     ("spirals", {"hidden": 0}, "hidden"), ("rastrigin", {"dim": 0}, "dim"),
     ("ill_conditioned_quadratic", {"condition_number": 0.5}, "condition_number")],
)  # fmt: skip
def test_bad_option_values_name_the_argument(name, options, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        get_problem(name, **options)


def test_problem_is_a_frozen_dataclass():
    p = get_problem("beale")
    assert isinstance(p, Problem) and p.kind == "function" and p.dim == 2
    with pytest.raises(AttributeError):
        p.name = "x"
