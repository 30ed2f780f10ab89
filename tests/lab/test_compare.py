"""compare: shapes, finiteness, seeds, a fixed ranking, the result views and the errors."""

import dataclasses
import json
import sys

import jax
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
    # measured every 10 steps and after the last one (25 % 10 != 0)
    assert h["val_metric"].shape == (3, 3) and list(h["val_steps"]) == [10, 20, 25]
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
    # L* = 0 is known: 30 steps of sgd(1e-3) get nowhere near 1% of the way.
    assert rows["ok"]["steps_to_1pct"] is None and rows["ok"]["best_loss"] < 24.2
    assert rows["too_fast"]["steps_to_1pct"] is None


def _fake_result(loss, optimum_value=None):
    from jaxopt_edu.lab import get_problem

    problem = dataclasses.replace(get_problem("rosenbrock"), optimum_value=optimum_value)
    loss = np.asarray(loss, np.float32)
    hist = {"loss": loss, "val_metric": np.zeros((loss.shape[0], 0), np.float32)}
    return CompareResult(problem, ["x"], {"x": hist}, {}, {"x": 0.0})


def test_steps_to_1pct_is_the_median_of_each_seeds_own_first_step():
    # each seed measured from its own start; L* = 0 known
    loss = [[100.0, 50.0, 0.9, 0.5], [10.0, 0.09, 0.01, 0.0], [1.0, 0.5, 0.2, 0.001]]
    assert _fake_result(loss, 0.0).table()[0]["steps_to_1pct"] == 2  # firsts 2, 1, 3
    # two seeds: the median falls between steps
    assert _fake_result(loss[:2], 0.0).table()[0]["steps_to_1pct"] == 1.5
    # one seed of three never gets there: the median still does
    never = [[100.0, 50.0, 0.9, 0.5], [10.0, 9.0, 8.0, 7.0], [1.0, 0.5, 0.2, 0.001]]
    assert _fake_result(never, 0.0).table()[0]["steps_to_1pct"] == 3  # firsts 2, inf, 3
    # most seeds drop by less than 99%: None
    assert (
        _fake_result([[10.0, 9.0], [10.0, 0.0], [5.0, 4.0]], 0.0).table()[0]["steps_to_1pct"]
        is None
    )
    # L* unknown: the best loss reached (here 1.0), not 0
    assert _fake_result([[11.0, 5.0, 1.05, 1.0]], None).table()[0]["steps_to_1pct"] == 2
    # a seed that diverges after reaching the target still counts its first step
    nan = float("nan")
    assert _fake_result([[10.0, 0.01, nan, nan]], 0.0).table()[0]["steps_to_1pct"] == 1


def test_validation_is_measured_after_the_last_step():
    from jaxopt_edu.lab import get_problem

    p = get_problem("logistic_regression")
    r = compare({"sgd": jo.sgd(0.1)}, p, steps=7, seeds=1, eval_every=3)
    h = r.history["sgd"]
    assert list(h["val_steps"]) == [3, 6, 7] and h["val_metric"].shape == (1, 3)
    final = float(p.val_metric(jax.tree.map(lambda x: x[0], r.params["sgd"])))
    assert r.table()[0]["final_val"] == pytest.approx(final, rel=1e-6)
    short = compare({"sgd": jo.sgd(0.1)}, p, steps=2, eval_every=5).history["sgd"]
    assert list(short["val_steps"]) == [2] and short["val_metric"].shape == (1, 1)
    exact = compare({"sgd": jo.sgd(0.1)}, p, steps=6, eval_every=3).history["sgd"]
    assert list(exact["val_steps"]) == [3, 6]


def test_optimizers_that_share_a_structure_share_a_program():
    txs = {"a": jo.adam(1e-3), "b": jo.adam(1e-2), "s": jo.sgd(1e-2)}
    r = compare(txs, "rosenbrock", steps=50, seeds=2)
    assert r.programs == 2 and r.groups == [["a", "b"], ["s"]]
    assert len(r.group_compile_time) == 2 and all(t > 0 for t in r.group_compile_time)
    assert r.compile_time["a"] == r.compile_time["b"] == r.group_compile_time[0]
    for name, tx in txs.items():
        alone = compare({name: tx}, "rosenbrock", steps=50, seeds=2)
        assert alone.programs == 1
        assert alone.history[name].keys() == r.history[name].keys()
        for k, v in alone.history[name].items():
            np.testing.assert_allclose(r.history[name][k], v, rtol=1e-6, err_msg=f"{name}/{k}")
        np.testing.assert_allclose(r.params[name], alone.params[name], rtol=1e-6)
    # adam's two learning rates really ran: different curves
    assert not np.allclose(r.history["a"]["loss"], r.history["b"]["loss"])


def test_same_structure_but_different_behaviour_gets_its_own_program():
    # momentum and Nesterov momentum: same state, different update (a Python flag)
    txs = {
        "m": jo.sgd(1e-3, momentum=0.9),
        "n": jo.sgd(1e-3, momentum=0.9, nesterov=True),
        "m2": jo.sgd(1e-2, momentum=0.9),
    }
    r = compare(txs, "rosenbrock", steps=20)
    assert r.programs == 2 and r.groups == [["m", "m2"], ["n"]]
    # adam and nadam: states of one structure, different updates
    assert compare({"a": jo.adam(1e-2), "na": jo.nadam(1e-2)}, "rosenbrock", steps=5).programs == 2
    alone = compare({"n": txs["n"]}, "rosenbrock", steps=20)
    np.testing.assert_allclose(r.history["n"]["loss"], alone.history["n"]["loss"], rtol=1e-6)


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
