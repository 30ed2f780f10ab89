"""Adafactor: optax's numbers, the factored second moment, both layouts, validation, kit.

The trajectory tests run in float64 on a problem with a factored (130, 200) matrix,
an unfactored (3, 4) matrix and a vector. optax computes the decay
$1 - t^{-c}$ in float32 even with x64 on when `decay_rate` is a Python float (a
relative difference of 1e-8 per step, which the dynamics then carry): its twin gets
`decay_rate` as a float64 scalar, so both compute it in float64.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from oracle_utils import trajectory

import jaxopt_edu as jo
from jaxopt_edu import flat, testing
from jaxopt_edu.optimizers.adafactor import adafactor
from jaxopt_edu.transforms.factored import (
    FactoredState,
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)

STEPS = 120
MASK = {"W": True, "m": True, "b": False}


def _decaying_lr(count):
    return 0.05 / (1.0 + jnp.asarray(count).astype(jo.hyper.float_dtype()) / 50.0)


# the optax-oracle variant: every optional member on, clipping and parameter scale off
VARIANT = dict(
    learning_rate=_decaying_lr,
    momentum=0.9,
    weight_decay_rate=1e-3,
    weight_decay_mask=MASK,
    clipping_threshold=None,
    multiply_by_parameter_scale=False,
)


def problem():
    rng = np.random.RandomState(0)
    params = {
        "W": jnp.asarray(rng.randn(130, 200) * 0.1),  # factored: both dims >= 128
        "m": jnp.asarray(rng.randn(3, 4)),  # a matrix too small to factor
        "b": jnp.asarray(rng.randn(4) + 2.0),  # a vector
    }
    x = jnp.asarray(rng.randn(32, 130) / np.sqrt(130))
    y = jnp.asarray(rng.randn(32, 200))
    a, c = jnp.asarray(rng.randn(5, 3)), jnp.asarray(rng.randn(5, 4))

    def loss(p):
        fit = 0.5 * jnp.mean((jnp.tanh(x @ p["W"]) - y) ** 2)
        small = 0.5 * jnp.mean((a @ p["m"] - c) ** 2)
        return fit + small + jnp.sum(jnp.logaddexp(p["b"], 0.0) - 0.3 * p["b"])

    return params, loss


def optax_twin(**kw):
    return optax.adafactor(**kw, decay_rate=jnp.asarray(0.8, jnp.float64))


def assert_moved(traj):
    start = jax.tree.map(lambda x: np.broadcast_to(x[:1], x.shape), traj)
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: np.max(np.abs(a - b)), traj, start)))
    assert moved > 1e-2, f"the run barely moved ({moved:.2e}): the comparison proves nothing"


def compare_with_optax(ours_kw, theirs_kw, rtol=1e-9, atol=1e-12):
    params, loss = problem()
    ours = trajectory(adafactor(**ours_kw), params, loss, jo.apply_updates, steps=STEPS)
    with jax.numpy_dtype_promotion("standard"):  # optax itself is not strict-clean
        theirs = trajectory(optax_twin(**theirs_kw), params, loss, optax.apply_updates, steps=STEPS)
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=atol, err_msg=k)
    assert_moved(ours)
    return ours


# ---------------------------------------------------------------- optax oracle


def test_defaults_match_optax(x64):
    # optax's defaults (factored, clipping 1, parameter scale) with a learning rate:
    # learning_rate=None steps by the weights' whole RMS and the run diverges
    compare_with_optax(dict(learning_rate=0.01), dict(learning_rate=0.01))


def test_no_learning_rate_matches_optax(x64):
    # learning_rate=None: no learning-rate member at all; the steps are as large as the
    # weights' RMS (the run diverges), so only a few steps
    params, loss = problem()
    ours = trajectory(adafactor(), params, loss, jo.apply_updates, steps=3)
    with jax.numpy_dtype_promotion("standard"):
        theirs = trajectory(optax_twin(), params, loss, optax.apply_updates, steps=3)
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert_moved(ours)


def test_variant_matches_optax(x64):
    kw = dict(VARIANT, dtype_momentum=jnp.float64)
    exact = compare_with_optax(kw, kw)
    # the default float32 momentum buffer: optax returns the float64 average and stores
    # it rounded; ours (`ema`) returns the stored float32 value, so the two runs differ
    # by float32 rounding only
    params, loss = problem()
    tx = adafactor(**VARIANT)
    rounded = trajectory(tx, params, loss, jo.apply_updates, steps=STEPS)
    for k in exact:
        np.testing.assert_allclose(rounded[k], exact[k], rtol=1e-5, atol=1e-6, err_msg=k)
    dtypes = {x.dtype for x in jax.tree.leaves(tx.init(params)) if x.ndim > 0}
    assert dtypes == {jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)}  # momentum, moments


# ---------------------------------------------------------------- the factored second moment


def _reference_rms_scaling(grads, shapes_axes, eps, decay):
    """numpy: Adafactor's second moment, each factored leaf moved to (other, rows, cols)."""
    stats = [None] * len(shapes_axes)
    outs = []
    for t, g_list in enumerate(grads, start=1):
        beta = 1 - t ** (-decay)
        step = []
        for i, (g, axes) in enumerate(zip(g_list, shapes_axes, strict=True)):
            g2 = np.asarray(g) ** 2 + eps
            if axes is None:
                v = g2 if stats[i] is None else beta * stats[i] + (1 - beta) * g2
                stats[i] = v
                step.append(np.asarray(g) / np.sqrt(v))
                continue
            rows_ax, cols_ax = axes
            other = [a for a in range(g.ndim) if a not in axes]
            m = np.moveaxis(g2, other + [rows_ax, cols_ax], list(range(g.ndim)))
            r, c = m.mean(axis=-1), m.mean(axis=-2)  # (..., rows), (..., cols)
            if stats[i] is not None:
                r = beta * stats[i][0] + (1 - beta) * r
                c = beta * stats[i][1] + (1 - beta) * c
            stats[i] = (r, c)
            v = r[..., :, None] * c[..., None, :] / r.mean(axis=-1)[..., None, None]
            v = np.moveaxis(v, list(range(g.ndim)), other + [rows_ax, cols_ax])
            step.append(np.asarray(g) / np.sqrt(v))
        outs.append(step)
    return outs


def test_factored_rms_matches_the_paper_formula(x64):
    rng = np.random.RandomState(1)
    # (rows axis, cols axis) = (second largest, largest) axis; None: not factored
    shapes_axes = {
        (130, 200): (0, 1),
        (200, 3, 130): (2, 0),
        (130, 2, 200): (0, 2),
        (5, 4): None,
        (4,): None,
    }
    shapes = list(shapes_axes)
    grads = [[rng.randn(*s) for s in shapes] for _ in range(3)]
    want = _reference_rms_scaling(grads, list(shapes_axes.values()), eps=1e-30, decay=0.8)
    tx = scale_by_factored_rms()
    state = tx.init([jnp.zeros(s) for s in shapes])
    rows = [(130,), (3, 130), (130, 2), None, None]
    cols = [(200,), (200, 3), (2, 200), None, None]
    assert [None if r is None else r.shape for r in state.v_row] == rows
    assert [None if c is None else c.shape for c in state.v_col] == cols
    assert [None if v is None else v.shape for v in state.v] == [None, None, None, (5, 4), (4,)]
    update = jax.jit(tx.update)
    for g_list, expected in zip(grads, want, strict=True):
        got, state = update([jnp.asarray(g) for g in g_list], state)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10)
    assert int(state.count) == 3


def test_factored_false_and_offset(x64):
    g = jnp.asarray(np.random.RandomState(2).randn(3, 4))
    tx = scale_by_factored_rms(factored=False, min_dim_size_to_factor=2)
    state = tx.init(g)
    assert state.v_row == (None,) and state.v[0].shape == (3, 4)
    u, _ = jax.jit(tx.update)(g, state)
    np.testing.assert_allclose(u, jnp.sign(g), rtol=1e-12)  # step 1: beta = 0
    # an offset restarts the schedule: at count == offset the decay is 0 again
    tx = scale_by_factored_rms(step_offset=5, min_dim_size_to_factor=2)
    state = tx.init(g)._replace(count=jnp.asarray(5, jnp.int32))
    assert state.v_row[0].shape == (3,) and state.v_col[0].shape == (4,)
    state = state._replace(v_row=(jnp.full((3,), 1e6),), v_col=(jnp.full((4,), 1e6),))
    update = jax.jit(tx.update)
    u, _ = update(g, state)  # the huge old statistics are forgotten
    want = _reference_rms_scaling([[np.asarray(g)]], [(0, 1)], 1e-30, 0.8)[0][0]
    np.testing.assert_allclose(u, want, rtol=1e-10)
    # one step later the old statistics count with weight beta_2 = 1 - 2^-0.8
    state = state._replace(count=jnp.asarray(6, jnp.int32))
    u2, _ = update(g, state)
    assert not np.allclose(u2, want, rtol=1e-3)


def test_epsilon_is_added_to_the_squares(x64):
    g = [jnp.asarray(np.random.RandomState(3).randn(3, 4)), jnp.asarray([0.0, 0.5])]
    tx = scale_by_factored_rms(epsilon=0.5, min_dim_size_to_factor=2)
    u, _ = tx.update(g, tx.init(g))
    want = _reference_rms_scaling([[np.asarray(x) for x in g]], [(0, 1), None], 0.5, 0.8)[0]
    for a, b in zip(u, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    # the default 1e-30 keeps a zero gradient's update at 0 (not 0/0)
    tx = scale_by_factored_rms(min_dim_size_to_factor=2)
    zeros = [jnp.zeros((3, 4)), jnp.zeros(2)]
    u, _ = tx.update(zeros, tx.init(zeros))
    assert all(float(jnp.max(jnp.abs(x))) == 0 for x in u)


def test_block_rms_helpers_work_per_leaf(x64):
    u = {"a": jnp.full((4, 4), 3.0), "b": jnp.full((2,), 0.5)}
    p = {"a": jnp.full((4, 4), -2.0), "b": jnp.zeros(2)}
    for layout in (lambda t: t, flat.ravel):
        clip = clip_by_block_rms(1.0)
        out, _ = clip.update(layout(u), clip.init(layout(p)))
        out = out.unravel() if isinstance(out, flat.FlatTree) else out
        np.testing.assert_allclose(out["a"], 1.0)  # RMS 3 -> 1
        np.testing.assert_allclose(out["b"], 0.5)  # RMS 0.5 <= 1: unchanged
        sc = scale_by_param_block_rms(1e-3)
        out, _ = sc.update(layout(u), sc.init(layout(p)), layout(p))
        out = out.unravel() if isinstance(out, flat.FlatTree) else out
        np.testing.assert_allclose(out["a"], 6.0)  # RMS(p) = 2
        np.testing.assert_allclose(out["b"], 0.5e-3)  # zero leaf: the floor


# ---------------------------------------------------------------- flat layout


def _run(tx, params, loss, steps):
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return jo.apply_updates(p, u), s

    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def _factored_state(state):
    found = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, FactoredState))
    return next(s for s in found if isinstance(s, FactoredState))


def test_flat_layout_gives_the_pytree_numbers(x64):
    params, loss = problem()
    params = dict(params, h=jnp.ones((3, 2), jnp.float32))  # a second buffer dtype

    def full_loss(p):
        return loss(p) + jnp.sum(jnp.cos(p["h"].astype(jnp.float64)))

    # every member on (clipping, parameter scale, momentum, decay); no weight-decay mask:
    # add_decayed_weights' mask selects pytree leaves, and a FlatTree buffer holds many
    tx = adafactor(_decaying_lr, momentum=0.9, weight_decay_rate=1e-3)
    want, want_state = _run(tx, params, full_loss, 10)
    got, got_state = _run(tx, flat.ravel(params), lambda fp: full_loss(fp.unravel()), 10)
    assert isinstance(got, flat.FlatTree)
    got = got.unravel()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)
        assert np.max(np.abs(np.asarray(want[k] - params[k], np.float64))) > 1e-3  # moved
    # the same per-leaf statistics in both layouts (leaf order: W, b, h, m)
    a, b = _factored_state(want_state), _factored_state(got_state)
    assert [x is None for x in a.v] == [True, False, False, False]
    chex.assert_trees_all_close(a, b, rtol=1e-10, atol=1e-30)


# ---------------------------------------------------------------- validation and hyperparameters


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        (dict(learning_rate=-0.1), "learning_rate"),
        (dict(decay_rate=1.5), "decay_rate"),
        (dict(decay_rate=lambda c: -1.0), "decay_rate"),
        (dict(decay_offset=-1), "decay_offset"),
        (dict(decay_offset=1.5), "decay_offset"),
        (dict(min_dim_size_to_factor=-1), "min_dim_size_to_factor"),
        (dict(min_dim_size_to_factor=128.0), "min_dim_size_to_factor"),
        (dict(clipping_threshold=0.0), "clipping_threshold"),
        (dict(momentum=1.5), "momentum"),
        (dict(weight_decay_rate=-1e-3), "weight_decay_rate"),
        (dict(eps=-1e-30), "eps"),
        (dict(eps="tiny"), "eps"),
        (dict(factored=1), "factored"),
        (dict(multiply_by_parameter_scale=None), "multiply_by_parameter_scale"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_invalid_arguments_are_named(kw, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        adafactor(**kw)


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: scale_by_factored_rms(decay_rate=-0.1), "decay_rate"),
        (lambda: scale_by_factored_rms(epsilon=-1.0), "epsilon"),
        (lambda: scale_by_factored_rms(step_offset=-2), "step_offset"),
        (lambda: scale_by_factored_rms(min_dim_size_to_factor=None), "min_dim_size_to_factor"),
        (lambda: scale_by_factored_rms(factored="yes"), "factored"),
        (lambda: clip_by_block_rms(-1.0), "threshold"),
        (lambda: scale_by_param_block_rms(-1e-3), "min_scale"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_invalid_transform_arguments_are_named(build, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        build()


def test_hyperparameters_live_in_the_state_and_set_does_not_recompile():
    params = {"W": jnp.ones((4, 3)), "b": jnp.ones(3)}
    tx = adafactor(0.1, min_dim_size_to_factor=2, momentum=0.5, weight_decay_rate=0.01)
    state = tx.init(params)
    want = {
        "learning_rate": 0.1,
        "decay_rate": 0.8,
        "eps": 1e-30,
        "clipping_threshold": 1.0,
        "min_scale": 1e-3,
        "momentum": 0.5,
        "weight_decay_rate": 0.01,
    }
    for name, value in want.items():
        assert float(jo.tree.get(state, name)) == pytest.approx(value, rel=1e-6)
    traces = []

    @jax.jit
    def step(p, s):
        traces.append(None)
        u, s = tx.update(jax.tree.map(jnp.ones_like, p), s, p)
        return u, s

    u1, _ = step(params, state)
    # no learning rate, no weight decay: the update is exactly zero
    u0, _ = step(params, jo.tree.set(state, learning_rate=0.0, weight_decay_rate=0.0))
    assert len(traces) == 1
    assert all(float(jnp.max(jnp.abs(x))) > 0 for x in jax.tree.leaves(u1))
    assert all(float(jnp.max(jnp.abs(x))) == 0 for x in jax.tree.leaves(u0))


# ---------------------------------------------------------------- the property kit


def test_check_all():
    # every member on; min_dim_size_to_factor=2: the kit's (2, 2) leaf is factored,
    # its (3,) leaf is not
    tx = adafactor(0.1, min_dim_size_to_factor=2, momentum=0.9, weight_decay_rate=1e-3)
    testing.check_all(tx)


def test_factoring_threshold_and_shape_errors():
    """Both of the two largest dims must reach min_dim_size_to_factor; wrong shapes raise."""
    tx = jo.scale_by_factored_rms(min_dim_size_to_factor=128)
    state = tx.init({"a": jnp.ones((128, 200)), "b": jnp.ones((127, 200))})
    assert state.v[0] is None and state.v_row[0].shape == (128,)  # factored
    assert state.v[1].shape == (127, 200) and state.v_row[1] is None  # not factored
    small = jo.scale_by_factored_rms(min_dim_size_to_factor=2)
    s = small.init({"w": jnp.ones((4, 3))})
    with pytest.raises(ValueError, match=r"update leaf 0 has shape \(5, 3\)"):
        small.update({"w": jnp.ones((5, 3))}, s)
    s = small.init({"w": jnp.ones((4, 1))})
    with pytest.raises(ValueError, match=r"update leaf 0 has shape \(4,\)"):
        small.update({"w": jnp.ones((4,))}, s)
