"""sweep: one vmapped program equals separate runs; the best point; grid validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu as jo
from jaxopt_edu.lab import SweepResult, get_problem, sweep


def test_sweep_equals_separate_runs():
    p = get_problem("rosenbrock")
    lrs = [1e-3, 1e-2, 1e-1]
    r = sweep(jo.adam, {"learning_rate": lrs}, p, steps=20)
    assert isinstance(r, SweepResult) and r.curves.shape == (3, 20) and r.final_loss.shape == (3,)
    for i, lr in enumerate(lrs):  # closed check: an ordinary loop per point
        tx, x = jo.adam(lr), jnp.asarray([-1.2, 1.0])
        state, curve = tx.init(x), []
        for _ in range(20):
            loss, g = jax.value_and_grad(p.loss)(x, None)
            updates, state = tx.update(g, state, x)
            x, curve = jo.apply_updates(x, updates), curve + [float(loss)]
        np.testing.assert_allclose(r.curves[i], curve, rtol=2e-5)
        assert r.final_loss[i] == r.curves[i, -1]


def test_best_point_on_a_known_answer():
    # GD on a quadratic with L_max = 100: the largest stable rate (< 2/L = 0.02) wins,
    # 0.03 diverges and must rank worst even though its loss is not finite.
    p = get_problem("ill_conditioned_quadratic", dim=5, condition_number=100.0)
    grid = {"learning_rate": [0.001, 0.005, 0.019, 0.03]}
    r = sweep(lambda learning_rate: jo.sgd(learning_rate), grid, p, steps=200)
    assert r.best["learning_rate"] == 0.019 and r.best["index"] == (2,)
    assert not np.isfinite(r.final_loss[3])
    table = r.table()
    assert table[0]["learning_rate"] == 0.019 and table[-1]["learning_rate"] == 0.03


def test_two_axes_and_validation_metric():
    p = get_problem("logistic_regression")
    grid = {"learning_rate": [0.01, 0.1], "b1": [0.0, 0.5, 0.9]}
    r = sweep(jo.adam, grid, p, steps=15, metric="val_metric")
    assert r.final_loss.shape == (2, 3) and r.curves.shape == (2, 3, 15)
    assert r.val_metric.shape == (2, 3) and r.names == ["learning_rate", "b1"]
    assert r.best["val_metric"] == pytest.approx(float(np.max(r.val_metric)))
    assert set(r.table()[0]) == {"learning_rate", "b1", "final_loss", "best_loss", "val_accuracy"}


@pytest.mark.parametrize(
    "grid, match",
    [({}, "non-empty dict"),
     ({"learning_rate": []}, "'learning_rate'.*empty"),
     ({"learning_rate": ["a"]}, "'learning_rate'.*'a'.*not a number"),
     ({"learning_rate": [True]}, "not a number"),
     ({"learning_rate": [float("nan")]}, "finite"),
     ({"learning_rate": 0.1}, "list of numbers"),
     ({"learning_rate": [0.1], "lr": [0.1]}, "'lr'.*factory")],
)  # fmt: skip
def test_malformed_grids_are_named(grid, match):
    with pytest.raises(ValueError, match=match):
        sweep(jo.adam, grid, "rosenbrock", steps=2)


def test_unknown_hyperparameter_lists_the_state_names():
    def factory(learning_rate, momentum):
        return jo.adam(learning_rate)  # accepts `momentum` but the state has none

    with pytest.raises(ValueError, match=r"'momentum' is not a hyperparameter.*'b1', 'b2'"):
        sweep(factory, {"learning_rate": [0.1], "momentum": [0.9]}, "rosenbrock", steps=2)


def test_bad_metric_and_steps():
    with pytest.raises(
        ValueError, match="unknown `metric` 'acc'.*final_loss, best_loss, val_metric"
    ):
        sweep(jo.adam, {"learning_rate": [0.1]}, "rosenbrock", metric="acc")
    with pytest.raises(ValueError, match="no validation metric"):
        sweep(jo.adam, {"learning_rate": [0.1]}, "rosenbrock", metric="val_metric")
    with pytest.raises(ValueError, match="`steps`"):
        sweep(jo.adam, {"learning_rate": [0.1]}, "rosenbrock", steps=0)


def test_sweep_seed_matches_compare_seed():
    p = get_problem("spirals", hidden=4)
    r = sweep(jo.adam, {"learning_rate": [0.03]}, p, steps=5, seed=1)
    from jaxopt_edu.lab import compare

    c = compare({"adam": jo.adam(0.03)}, p, steps=5, seeds=2)
    np.testing.assert_allclose(r.curves[0], c.history["adam"]["loss"][1], rtol=1e-5)
