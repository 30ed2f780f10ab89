"""lr_find: the range test's curve, its suggestion against a closed form, and its errors."""

import numpy as np
import pytest

import jaxopt_edu as jo
from jaxopt_edu.lab import LRFindResult, get_problem, lr_find


def test_suggestion_is_below_the_divergence_threshold():
    # Gradient descent on 1/2 x^T H x diverges for lr > 2 / L_max; here L_max = 100.
    p = get_problem("ill_conditioned_quadratic", dim=8, condition_number=100.0)
    r = lr_find(jo.sgd, p, min_lr=1e-5, max_lr=1.0, steps=100)
    assert isinstance(r, LRFindResult)
    assert 1e-5 < r.suggestion < 2.0 / 100.0
    assert r.stop_step is not None and r.lrs[r.stop_step] > 2.0 / 100.0
    assert np.all(np.isnan(r.losses[r.stop_step :])) and np.all(np.isnan(r.smoothed[r.stop_step :]))
    assert np.all(np.isfinite(r.smoothed[: r.stop_step]))


def test_learning_rates_grow_geometrically():
    r = lr_find("adam", "rosenbrock", min_lr=1e-4, max_lr=1e-1, steps=31)
    assert r.lrs[0] == pytest.approx(1e-4) and r.lrs[-1] == pytest.approx(1e-1)
    np.testing.assert_allclose(r.lrs[1:] / r.lrs[:-1], 10 ** (3 / 30), rtol=1e-9)
    assert r.losses.shape == r.smoothed.shape == (31,) and np.isfinite(r.suggestion)


def test_a_built_transformation_works():
    r = lr_find(jo.sgd(0.5, momentum=0.9), "bilinear", min_lr=1e-4, max_lr=1e-2, steps=10)
    assert r.losses.shape == (10,)


def test_optimizer_without_learning_rate_is_refused():
    with pytest.raises(ValueError, match=r"no `learning_rate`.*'b1', 'b2', 'eps'"):
        lr_find(jo.scale_by_adam(), "rosenbrock", steps=5)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"min_lr": 1.0, "max_lr": 0.1}, "min_lr"), ({"min_lr": 0.0}, "min_lr"),
     ({"steps": 2}, "`steps` must be an integer >= 3"), ({"smoothing": 0.0}, "smoothing"),
     ({"max_lr": float("inf")}, "max_lr")],
)  # fmt: skip
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lr_find(jo.adam, "rosenbrock", **kwargs)


def test_bad_optimizer_and_problem():
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'.*adamax"):
        lr_find("adamx", "rosenbrock")
    with pytest.raises(ValueError, match="optimizer_factory_or_tx"):
        lr_find(42, "rosenbrock")
    with pytest.raises(ValueError, match="unknown problem"):
        lr_find(jo.adam, "rosen")


def test_a_dip_just_before_the_blow_up_is_not_the_suggestion():
    """Regression: a curve that descends, rises, then dips right before it explodes."""
    import jaxopt_edu as jo
    from jaxopt_edu.lab import get_problem, lr_find

    res = lr_find(jo.adam(1e-3), get_problem("spirals"), min_lr=1e-6, max_lr=10.0, steps=100)
    finite = np.isfinite(res.smoothed)
    lowest = float(res.lrs[int(np.nanargmin(np.where(finite, res.smoothed, np.nan)))])
    assert res.suggestion <= lowest / 10 * (1 + 1e-9)
    # and training at the suggestion works (the old rule gave 4.45, which ends at loss ~5.8)
    assert res.suggestion < 0.5
