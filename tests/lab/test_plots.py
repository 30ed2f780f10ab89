"""The lab's plots: real PNG/GIF files, and the expected number of series on each figure."""

import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu as jo
from jaxopt_edu.lab import compare, get_problem, lr_find, plots, sweep

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.fixture(scope="module")
def rosenbrock():
    return get_problem("rosenbrock")


@pytest.fixture(scope="module")
def paths(rosenbrock):
    return {
        "sgd": plots.trajectory(jo.sgd(1e-3), rosenbrock, 20),
        "adam": plots.trajectory(jo.adam(1e-2), rosenbrock, 20),
        "momentum": plots.trajectory(jo.sgd(1e-3, momentum=0.9), rosenbrock, 20),
    }


def test_trajectory_starts_at_the_standard_start_and_records_every_step(rosenbrock, paths):
    assert paths["sgd"].shape == (21, 2)
    np.testing.assert_allclose(paths["sgd"][0], np.asarray(rosenbrock.start))
    assert not np.allclose(paths["sgd"][1], paths["sgd"][0])


def test_trajectory_matches_a_python_loop(rosenbrock):
    tx = jo.adam(1e-2)
    params = rosenbrock.start
    state = tx.init(params)
    for _ in range(3):
        grads = jax.grad(rosenbrock.loss)(params, jax.random.PRNGKey(0))
        updates, state = tx.update(grads, state, params)
        params = jo.apply_updates(params, updates)
    np.testing.assert_allclose(plots.trajectory(tx, rosenbrock, 3)[-1], params, rtol=1e-6)


def test_trajectory_rejects_problems_that_are_not_2d():
    with pytest.raises(ValueError, match="2-D problems only"):
        plots.trajectory(jo.sgd(1e-3), get_problem("logistic_regression"), 3)
    with pytest.raises(ValueError, match="positive integer"):
        plots.trajectory(jo.sgd(1e-3), get_problem("rosenbrock"), 0)


def test_plot_trajectories_draws_one_line_per_optimizer(tmp_path, rosenbrock, paths):
    fig = plots.plot_trajectories(rosenbrock, paths, tmp_path / "t.png")
    (ax,) = [a for a in fig.axes if a.get_lines()]
    assert len(ax.get_lines()) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()][-3:] == ["sgd", "adam", "momentum"]
    assert_png(tmp_path / "t.png")


def test_plot_trajectories_marks_a_divergence(rosenbrock):
    diverged = np.array([[-1.2, 1.0], [50.0, -80.0], [np.inf, np.nan]])
    fig = plots.plot_trajectories(rosenbrock, {"sgd": diverged})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "sgd (left the map)" in labels


def test_plot_trajectories_writes_an_animated_gif(tmp_path, rosenbrock, paths):
    from PIL import Image

    fig = plots.plot_trajectories(rosenbrock, paths, tmp_path / "t.gif", animate=True, max_frames=3)
    assert (tmp_path / "t.gif").read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    with Image.open(tmp_path / "t.gif") as gif:
        assert gif.n_frames == 3
    assert len(fig.axes[0].get_lines()) == 3
    with pytest.raises(ValueError, match="path"):
        plots.plot_trajectories(rosenbrock, paths, animate=True)


@pytest.fixture(scope="module")
def compared():
    return compare(["sgd", "adam"], "logistic_regression", steps=20, seeds=2, eval_every=5)


def test_plot_losses_one_line_and_one_band_per_optimizer(tmp_path, compared):
    from matplotlib.collections import PolyCollection

    fig = plots.plot_losses(compared, tmp_path / "l.png")
    loss_ax, val_ax = fig.axes
    assert len(loss_ax.get_lines()) == 2 and len(val_ax.get_lines()) == 2
    bands = [c for c in loss_ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    assert loss_ax.get_yscale() == "log"
    np.testing.assert_array_equal(val_ax.get_lines()[0].get_xdata(), [5, 10, 15, 20])
    assert_png(tmp_path / "l.png")


def test_plot_losses_switches_to_symlog_for_negative_losses():
    loss = np.array([[1.0, 0.2, -0.5, -3.0]])  # e.g. the saddle x^2 - y^2 after escaping
    result = SimpleNamespace(history={"adam": {"loss": loss}}, problem=get_problem("saddle"))
    fig = plots.plot_losses(result)
    assert fig.axes[0].get_yscale() == "symlog"
    assert "≤ 0" in fig.axes[0].get_title()
    assert plots.plot_losses(result, log=False).axes[0].get_yscale() == "linear"


def test_plot_sweep_heat_map_and_line(tmp_path):
    grid = {"learning_rate": [1e-3, 1e-2, 1e-1], "b1": [0.8, 0.9]}
    result = sweep(jo.adam, grid, "rosenbrock", steps=10)
    fig = plots.plot_sweep(result, tmp_path / "s.png")
    (image,) = fig.axes[0].get_images()
    assert image.get_array().shape == (2, 3)  # b1 rows, learning_rate columns
    assert_png(tmp_path / "s.png")
    one = sweep(jo.adam, {"learning_rate": [1e-3, 1e-2, 1e-1]}, "rosenbrock", steps=10)
    assert len(plots.plot_sweep(one).axes[0].get_lines()) == 1


def test_plot_lr_find_curve_and_suggestion(tmp_path):
    result = lr_find(jo.adam, "rosenbrock", 1e-4, 1.0, steps=30)
    fig = plots.plot_lr_find(result, tmp_path / "f.png")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3  # raw, smoothed, suggestion
    assert ax.get_xscale() == "log"
    assert_png(tmp_path / "f.png")


def test_plot_state_histograms_one_panel_per_moment(tmp_path):
    tx = jo.adam(1e-2)
    params = {"w": jnp.ones((8, 4)), "b": jnp.zeros((4,))}
    state = tx.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    _, state = tx.update(grads, state, params)
    fig = plots.plot_state_histograms(state, tmp_path / "h.png")
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert len(titles) == 2 and "mu" in titles[0] and "nu" in titles[1]
    assert_png(tmp_path / "h.png")
    with pytest.raises(ValueError, match="no array fields"):
        plots.plot_state_histograms(jo.sgd(1e-3).init(params))


def test_missing_matplotlib_says_what_to_install(monkeypatch, rosenbrock, paths):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "jaxopt_edu\[lab\]"'):
        plots.plot_trajectories(rosenbrock, paths)
