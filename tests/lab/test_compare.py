"""compare: shapes, finiteness, seeds, a fixed ranking, the result views and the errors."""

import json
import sys

import numpy as np
import pytest

import jaxopt_edu as jo
from jaxopt_edu.lab import DEFAULT_OPTIMIZERS, CompareResult, compare, optimizer_from_name


@pytest.fixture(scope="module")
def rosen():
    return compare(["sgd", "adam"], "rosenbrock", steps=25, seeds=3, eval_every=10)


def test_shapes_and_finite_values(rosen):
    assert isinstance(rosen, CompareResult) and rosen.names == ["sgd", "adam"]
    h = rosen.history["adam"]
    for k in ["loss", "grad_norm", "update_norm", "update_ratio", "learning_rate"]:
        assert h[k].shape == (3, 25) and np.all(np.isfinite(h[k])), k
    assert h["val_metric"].shape == (3, 2) and list(h["val_steps"]) == [10, 20]
    assert h["trajectory"].shape == (3, 26, 2)
    np.testing.assert_allclose(h["trajectory"][0, 0], [-1.2, 1.0], rtol=1e-6)
    np.testing.assert_allclose(
        h["learning_rate"], DEFAULT_OPTIMIZERS["adam"].learning_rate, rtol=1e-6
    )
    assert rosen.params["adam"].shape == (3, 2) and rosen.wall_time["adam"] > 0


def test_seeds_really_differ(rosen):
    loss = rosen.history["sgd"]["loss"]
    assert len({float(x) for x in loss[:, 0]}) == 3
    np.testing.assert_array_equal(loss[:, 0], rosen.history["adam"]["loss"][:, 0])  # same starts


def test_adam_beats_sgd_on_rosenbrock():
    r = compare({"sgd": jo.sgd(1e-3), "adam": jo.adam(0.1)}, "rosenbrock", steps=300)
    rows = {row["optimizer"]: row for row in r.table()}
    assert rows["adam"]["final_loss_mean"] < 0.5 < 2.0 < rows["sgd"]["final_loss_mean"]


def test_task_records_validation_and_learning_rate():
    from jaxopt_edu.lab import get_problem

    p = get_problem("logistic_regression")
    tx = jo.sgd(jo.linear_schedule(0.1, 0.0, 20))
    r = compare(
        {"sched": tx, "two_lrs": jo.chain(jo.sgd(0.1), jo.sgd(0.2))},
        p,
        steps=20,
        seeds=2,
        eval_every=5,
    )
    h = r.history["sched"]
    assert h["val_metric"].shape == (2, 4) and np.all(
        (0 <= h["val_metric"]) & (h["val_metric"] <= 1)
    )
    np.testing.assert_allclose(h["learning_rate"][0, :3], [0.1, 0.095, 0.09], rtol=1e-5)
    assert np.all(np.isnan(r.history["two_lrs"]["learning_rate"]))
    assert "trajectory" not in h and r.table()[0]["val_metric"] == "val_accuracy"


def test_table_counts_divergence():
    r = compare({"too_fast": jo.sgd(1.0), "ok": jo.sgd(1e-3)}, "rosenbrock", steps=30, seeds=2)
    rows = {row["optimizer"]: row for row in r.table()}
    assert rows["too_fast"]["diverged"] == 2 and rows["ok"]["diverged"] == 0
    assert rows["ok"]["steps_to_1pct"] is not None and rows["ok"]["best_loss"] < 24.2


def test_writers(rosen, tmp_path):
    rosen.to_json(tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["problem"] == "rosenbrock" and len(doc["history"]["adam"]["loss"]) == 3
    rosen.to_csv(tmp_path / "r.csv")
    rosen.to_csv(tmp_path / "h.csv", history=True)
    assert (tmp_path / "r.csv").read_text().startswith("optimizer,final_loss_mean")
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 1 + 2 * 3 * 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "r.csv", "r.json"]


def test_to_pandas_or_clear_error(rosen, monkeypatch):
    try:
        import pandas  # noqa: F401

        assert len(rosen.to_pandas()) == 2
    except ImportError:
        pass
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install jaxopt_edu\[lab\]"):
        rosen.to_pandas()


def test_every_registry_name_builds():
    for name, spec in DEFAULT_OPTIMIZERS.items():
        tx = optimizer_from_name(name)
        assert isinstance(tx, jo.GradientTransformation) and spec.description
        assert float(
            jo.tree.get(tx.init(np.zeros(2, np.float32)), "learning_rate")
        ) == pytest.approx(spec.learning_rate)
    assert (
        float(
            jo.tree.get(
                optimizer_from_name("adam", 0.5).init(np.zeros(2, np.float32)), "learning_rate"
            )
        )
        == 0.5
    )


def test_errors_name_the_argument_and_list_choices():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'.*sgd, momentum, nesterov"):
        compare(["adamm"], "rosenbrock")
    with pytest.raises(ValueError, match="unknown problem 'nope'.*rosenbrock"):
        compare(["sgd"], "nope")
    with pytest.raises(ValueError, match="`steps` must be an integer >= 1, got -5"):
        compare(["sgd"], "rosenbrock", steps=-5)
    with pytest.raises(ValueError, match="`seeds`"):
        compare(["sgd"], "rosenbrock", seeds=0)
    with pytest.raises(ValueError, match=r"`optimizers\['x'\]` must be a GradientTransformation"):
        compare({"x": 3}, "rosenbrock")
    with pytest.raises(ValueError, match="`optimizers` is empty"):
        compare([], "rosenbrock")
