"""Lion: optax's numbers in float64, validation, both layouts, bf16 moments, set(b1), and
the signs-first form that updates the momentum in place on XLA:CPU."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from oracle_utils import max_rel_err, tanh_fit_problem, trajectory

from jaxopt_edu import flat, testing, tree
from jaxopt_edu.base import apply_updates
from jaxopt_edu.optimizers.lion import lion
from jaxopt_edu.transforms import lion as lion_module
from jaxopt_edu.transforms.lion import ScaleByLionState, scale_by_lion

STEPS = 200


def problem():
    """A small non-convex least-squares fit with two leaves of different shapes."""
    return tanh_fit_problem(1, 20, lambda w: jnp.cos(2.0 * w), 0.3)


def moved(traj):
    """Largest relative distance of any iterate from the start."""
    return max_rel_err(traj, jax.tree.map(lambda x: np.broadcast_to(x[:1], x.shape), traj))


def decaying_lr(count):
    """0.02 / (1 + t / 50) in the default float dtype (float64 under x64)."""
    t = jnp.asarray(count).astype(jnp.asarray(1.0).dtype)
    return 0.02 / (1.0 + t / 50.0)


ORACLE = {
    "default": dict(learning_rate=0.01),
    "weight_decay": dict(learning_rate=0.01, weight_decay=0.3),
    "mask": dict(learning_rate=0.01, weight_decay=0.3, mask={"w": True, "b": False}),
    "schedule": dict(learning_rate=decaying_lr, weight_decay=0.1),
    "betas": dict(learning_rate=0.01, b1=0.5, b2=0.9, weight_decay=0.0),
}


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_matches_optax_in_float64(name, x64):
    kwargs = ORACLE[name]
    params, loss = problem()
    ours = trajectory(lion(**kwargs), params, loss, apply_updates)
    with jax.numpy_dtype_promotion("standard"):  # optax itself is not strict-clean
        theirs = trajectory(optax.lion(**kwargs), params, loss, optax.apply_updates)
    assert ours["w"].dtype == np.float64
    err = max_rel_err(ours, theirs)
    assert err < 1e-10, f"lion {name}: relative error {err:.3e} against optax.lion"
    assert moved(ours) > 1e-2  # the run did move


def test_mask_and_weight_decay_change_the_trajectory(x64):
    """The oracle cases above would pass vacuously if the mask or the decay were ignored."""
    params, loss = problem()
    plain = trajectory(lion(0.01, weight_decay=0.0), params, loss, apply_updates)
    decayed = trajectory(lion(0.01, weight_decay=0.3), params, loss, apply_updates)
    masked = trajectory(
        lion(0.01, weight_decay=0.3, mask={"w": True, "b": False}), params, loss, apply_updates
    )
    assert max_rel_err(decayed, plain) > 1e-3
    assert max_rel_err(masked["b"], decayed["b"]) > 1e-3
    assert max_rel_err(masked["w"], plain["w"]) > 1e-3


def test_first_step_is_the_sign_of_the_gradient():
    # m_0 = 0, so u_1 = -lr * (sign((1 - b1) g) + wd * p) = -lr * (sign(g) + wd * p)
    params = {"a": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[3.0, -0.25]])}
    grads = {"a": jnp.array([0.3, -1e-6, 0.0]), "b": jnp.array([[-5.0, 2.0]])}
    tx = lion(0.1, weight_decay=0.01)
    u, state = tx.update(grads, tx.init(params), params)
    for k in params:
        expected = -0.1 * (np.sign(grads[k]) + 0.01 * np.asarray(params[k]))
        np.testing.assert_allclose(u[k], expected, rtol=1e-6)
    mu = state[0].mu
    np.testing.assert_allclose(mu["b"], 0.01 * np.asarray(grads["b"]), rtol=1e-6)


# ---------------------------------------------------------------- validation

BAD = [
    (lambda: lion(0.1, b1=1.5), "b1"),
    (lambda: lion(0.1, b1=-0.1), "b1"),
    (lambda: lion(0.1, b2=1.01), "b2"),
    (lambda: lion(0.1, b2=float("nan")), "b2"),
    (lambda: lion(0.1, b1=lambda t: 2.0), "b1"),
    (lambda: lion(0.1, b1="0.9"), "b1"),
    (lambda: scale_by_lion(b2=-1.0), "b2"),
    (lambda: lion(-0.1), "learning_rate"),
    (lambda: lion(0.1, weight_decay=-1e-3), "weight_decay"),
]


@pytest.mark.parametrize(("make", "name"), BAD, ids=[f"{n}-{i}" for i, (_, n) in enumerate(BAD)])
def test_invalid_hyperparameters_name_the_argument(make, name):
    with pytest.raises(ValueError, match=f"`{name}`") as info:
        make()
    if name in ("b1", "b2") and "schedule (a function" not in str(info.value):
        assert "[0, 1]" in str(info.value)


@pytest.mark.parametrize("b", [0.0, 1.0])
def test_closed_interval_ends_are_accepted(b):
    params = {"w": jnp.ones(3)}
    tx = lion(0.1, b1=b, b2=b)
    u, _ = tx.update({"w": jnp.array([1.0, -1.0, 0.5])}, tx.init(params), params)
    assert np.all(np.isfinite(u["w"]))


# ---------------------------------------------------------------- layouts and dtypes

LAYOUT_PARAMS = {
    "w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4),
    "b": jnp.array([0.1, -0.2, 0.3, 0.05]),
    "h": jnp.full((2, 2), 0.75, jnp.bfloat16),
}


def layout_loss(p):
    h = p["h"].astype(jnp.float32)
    return jnp.sum(jnp.sin(3.0 * p["w"]) ** 2) + jnp.sum((p["b"] - 0.2) ** 4) + jnp.sum(h**3)


@pytest.mark.parametrize("mu_dtype", [None, jnp.bfloat16])
def test_flat_layout_gives_the_pytree_numbers(mu_dtype):
    tx = lion(0.02, weight_decay=0.1, mu_dtype=mu_dtype)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    p, s = LAYOUT_PARAMS, tx.init(LAYOUT_PARAMS)
    fp = flat.ravel(LAYOUT_PARAMS)
    fs = tx.init(fp)
    for _ in range(20):
        u, s = step(jax.grad(layout_loss)(p), s, p)
        p = apply_updates(p, u)
        g = jax.grad(lambda q: layout_loss(q.unravel()))(fp)
        assert isinstance(g, flat.FlatTree)
        fu, fs = step(g, fs, fp)
        fp = apply_updates(fp, fu)
    chex.assert_trees_all_close(fp.unravel(), p, rtol=1e-6, atol=0)
    chex.assert_trees_all_close(fs[0].mu.unravel(), s[0].mu, rtol=1e-6, atol=0)
    assert float(jnp.max(jnp.abs(p["w"] - LAYOUT_PARAMS["w"]))) > 0.1  # it moved


def test_mu_dtype_bfloat16_stores_bfloat16_and_computes_in_float32():
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.array([0.5, -0.5])}
    b1, b2 = 0.9, 0.99
    tx = scale_by_lion(b1, b2, mu_dtype=jnp.bfloat16)
    state = tx.init(params)
    assert all(m.dtype == jnp.bfloat16 for m in jax.tree.leaves(state.mu))
    update = jax.jit(tx.update)
    rng = np.random.RandomState(0)
    mu = {k: np.zeros(v.shape, np.float32) for k, v in params.items()}
    for _ in range(5):
        grads = {k: jnp.asarray(rng.randn(*v.shape), jnp.float32) for k, v in params.items()}
        u, state = update(grads, state, params)
        assert all(m.dtype == jnp.bfloat16 for m in jax.tree.leaves(state.mu))
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(u))
        for k in params:
            g = np.asarray(grads[k])
            mix = np.float32(1 - b1) * g + np.float32(b1) * mu[k]
            np.testing.assert_array_equal(u[k], np.sign(mix))
            new = np.float32(1 - b2) * g + np.float32(b2) * mu[k]
            expected = np.asarray(jnp.asarray(new).astype(jnp.bfloat16).astype(jnp.float32))
            got = np.asarray(state.mu[k].astype(jnp.float32))
            np.testing.assert_allclose(got, expected, rtol=2.0**-8)
            mu[k] = got
    assert float(jnp.max(jnp.abs(state.mu["w"].astype(jnp.float32)))) > 0.01


def test_bfloat16_moment_arithmetic_runs_in_float32():
    """A case where bfloat16 arithmetic gives other answers than float32 arithmetic.

    With m = 1 and g = -8.996: in float32 the mix 0.9 - 0.8996 = +4e-4 is positive;
    rounded to bfloat16 first (g -> -9, b1 -> 0.8984) it would be -0.0156. The new
    moment 0.99 - 0.08996 = 0.90004 stores as 0.8984375; bfloat16 arithmetic gives 0.8828.
    """
    params = {"w": jnp.zeros(2)}
    tx = scale_by_lion(0.9, 0.99, mu_dtype=jnp.bfloat16)
    state = tx.init(params)
    state = state._replace(mu={"w": jnp.ones(2, jnp.bfloat16)})
    u, state = jax.jit(tx.update)({"w": jnp.array([-8.996, 1.0])}, state, params)
    np.testing.assert_array_equal(u["w"], [1.0, 1.0])
    np.testing.assert_array_equal(state.mu["w"].astype(jnp.float32), [0.8984375, 1.0])


def test_default_mu_dtype_follows_the_params():
    params = {"a": jnp.ones(2, jnp.float32), "h": jnp.ones(2, jnp.bfloat16)}
    state = scale_by_lion().init(params)
    assert isinstance(state, ScaleByLionState)
    assert state.mu["a"].dtype == jnp.float32 and state.mu["h"].dtype == jnp.bfloat16


# ---------------------------------------------------------------- the test kit


def test_check_all_passes():
    testing.check_all(lion(0.005), steps=1500, tol=2e-2)


def test_check_all_passes_with_bfloat16_moment():
    testing.check_all(lion(0.005, mu_dtype=jnp.bfloat16), skip=("converges",))


def test_rosenbrock_converges():
    testing.check_converges(lion(1e-3), "rosenbrock", steps=10000, tol=5e-2)


# ---------------------------------------------------------------- hyperparameters in state


def test_hyperparameters_are_in_the_state():
    state = lion(0.01, b1=0.8, b2=0.95, weight_decay=0.05).init({"w": jnp.ones(2)})
    got = {k: float(tree.get(state, k)) for k in ("learning_rate", "b1", "b2", "weight_decay")}
    assert got == pytest.approx(
        {"learning_rate": 0.01, "b1": 0.8, "b2": 0.95, "weight_decay": 0.05}
    )


@pytest.mark.parametrize(("name", "old", "new"), [("b1", 0.9, 0.3), ("b2", 0.99, 0.5)])
def test_set_acts_like_a_fresh_optimizer_without_recompiling(name, old, new, x64):
    params, loss = problem()
    traces = []
    tx = lion(0.01, **{name: old})

    @jax.jit
    def step(p, s):
        traces.append(None)  # runs only when jax traces the step
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return apply_updates(p, u), s

    def run(state, steps=50):
        p = params
        out = [p]
        for _ in range(steps):
            p, state = step(p, state)
            out.append(p)
        return jax.tree.map(lambda *xs: np.stack(xs), *out)

    with_old = run(tx.init(params))
    with_set = run(tree.set(tx.init(params), **{name: new}))
    assert len(traces) == 1  # set changed a value, not the compiled step
    fresh = trajectory(lion(0.01, **{name: new}), params, loss, apply_updates, steps=50)
    assert max_rel_err(with_set, fresh) < 1e-12
    assert max_rel_err(with_set, with_old) > 1e-3


def test_set_mid_run_matches_a_switching_schedule(x64):
    """set(b1) after k steps gives the trajectory of a b1 schedule that switches at k."""
    params, loss = problem()
    k = 30

    def b1_schedule(count):
        return jnp.where(jnp.asarray(count) < k, 0.9, 0.2)

    switching = trajectory(lion(0.01, b1=b1_schedule), params, loss, apply_updates, steps=60)
    tx = lion(0.01, b1=0.9)
    state, p = tx.init(params), params
    step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
    out = [p]
    for t in range(60):
        if t == k:
            state = tree.set(state, b1=0.2)
        u, state = step(p, state)
        p = apply_updates(p, u)
        out.append(p)
    by_set = jax.tree.map(lambda *xs: np.stack(xs), *out)
    assert max_rel_err(by_set, switching) < 1e-12
    constant = trajectory(tx, params, loss, apply_updates, steps=60)
    assert max_rel_err(by_set, constant) > 1e-3


# ------------------------------------------- XLA:CPU: the momentum updated in place


def _special_values(n, dtype, seed):
    """Random values with the cases a sign can trip on planted at fixed places."""
    x = np.random.RandomState(seed).randn(n).astype(np.float32)
    x[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 0.0]
    return jnp.asarray(x, dtype)


def _one_step(tx, grads, params, donate):
    """The update and new momentum of a second step (so the momentum holds the
    special values too), jitted, the state donated or not."""
    # a new function each time: jit's trace cache would reuse an earlier form's trace
    f = jax.jit(lambda g, s, p: tx.update(g, s, p), donate_argnums=(1,) if donate else ())
    state = tx.init(params)
    text = f.lower(grads, state, params).compile().as_text()
    _, state = f(grads, state, params)
    u, state = f(jax.tree.map(lambda x: x[::-1], grads), state, params)
    return jax.tree.map(np.asarray, (u, state.mu)), text


@pytest.mark.parametrize("mu_dtype", [None, jnp.bfloat16])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("donate", [True, False])
def test_ordered_form_gives_the_plain_bits(monkeypatch, dtype, mu_dtype, donate):
    """The signs-first form (leaves of 256 KiB of momentum or more, on CPUs) gives
    the plain form's values, NaN, infinities and signed zeros included; the
    directions are optax's too, the momentum within float32 rounding of optax's
    (optax rounds 1 - b2 from a Python float, this library from the stored b2)."""
    params = {"w": jnp.zeros((7, 9), dtype), "b": jnp.zeros(40, dtype), "e": jnp.zeros(0, dtype)}
    grads = {
        "w": _special_values(63, dtype, 0).reshape(7, 9),
        "b": _special_values(40, dtype, 1),
        "e": jnp.zeros(0, dtype),
    }
    tx = scale_by_lion(0.8, 0.95, mu_dtype=mu_dtype)
    plain, plain_text = _one_step(tx, grads, params, donate)
    monkeypatch.setattr(lion_module, "_ORDERED_MIN_LEAF_BYTES", 0)
    ordered, ordered_text = _one_step(tx, grads, params, donate)
    assert "conditional(" in ordered_text and "conditional(" not in plain_text
    for a, b in zip(jax.tree.leaves(ordered), jax.tree.leaves(plain), strict=True):
        assert a.dtype == b.dtype
        a, b = a.astype(np.float32), b.astype(np.float32)  # exact, and numpy sees NaN
        np.testing.assert_array_equal(a, b)  # NaN where NaN
        same_sign = np.signbit(a) == np.signbit(b)
        assert same_sign[~np.isnan(a)].all(), "a signed zero flipped"
    with jax.numpy_dtype_promotion("standard"):
        (u, mu), _ = _one_step(
            optax.scale_by_lion(0.8, 0.95, mu_dtype=mu_dtype), grads, params, donate
        )
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32)),
        ordered[0],
        u,
    )
    f32 = mu_dtype is None and dtype == jnp.float32
    tol = dict(rtol=1e-6, atol=1e-7) if f32 else dict(rtol=2.0**-7, atol=1e-3)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(b, np.float32), **tol
        ),
        ordered[1],
        mu,
    )


def test_ordered_form_with_a_nan_b1_gives_nan_directions(monkeypatch):
    monkeypatch.setattr(lion_module, "_ORDERED_MIN_LEAF_BYTES", 0)
    params = {"w": jnp.zeros(5)}
    tx = scale_by_lion(0.9, 0.99)
    state = tx.init(params)
    state.hyperparams.values["b1"] = jnp.asarray(jnp.nan, state.hyperparams.values["b1"].dtype)
    u, new = jax.jit(tx.update)({"w": jnp.arange(5.0)}, state, params)
    assert np.isnan(np.asarray(u["w"])).all()
    one_minus_b2 = np.float32(1) - np.float32(0.99)  # m_0 = 0, so m_1 = (1 - b2) g
    np.testing.assert_array_equal(new.mu["w"], one_minus_b2 * np.arange(5, dtype=np.float32))


def test_ordered_form_under_vmap_of_b1(monkeypatch):
    """Batched hyperparameters turn the `cond` into a select: same numbers as the plain form."""
    params = {"w": jnp.zeros(6)}
    grads = {"w": jnp.linspace(-1.0, 1.0, 6)}
    tx = scale_by_lion(0.9, 0.99)
    state = tx.init(params)._replace(mu={"w": jnp.linspace(0.5, -0.7, 6)})
    b1s = jnp.array([0.0, 0.3, 0.99, jnp.nan], jnp.float32)

    def run(b1):
        s = state._replace(
            hyperparams=state.hyperparams._replace(values={**state.hyperparams.values, "b1": b1})
        )
        u, s = tx.update(grads, s, params)
        return u, s.mu

    plain = jax.jit(jax.vmap(run))(b1s)
    monkeypatch.setattr(lion_module, "_ORDERED_MIN_LEAF_BYTES", 0)
    ordered = jax.jit(jax.vmap(run))(b1s)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(ordered), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(np.asarray(ordered[0]["w"][3])).all()


def _compiled_step(n):
    """Lion on one leaf of n float32 params, donated, compiled (never run)."""
    tx = lion(1e-4, weight_decay=0.1)
    abstract = {"w": jax.ShapeDtypeStruct((n,), jnp.float32)}
    state = jax.eval_shape(tx.init, abstract)

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return apply_updates(p, u), s

    return jax.jit(step, donate_argnums=(0, 2)).lower(abstract, abstract, state).compile()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU buffer-reuse property")
def test_large_momentum_is_updated_in_place_on_the_cpu():
    """With a large momentum the compiled step keeps no copy of it: its temp memory is
    the one-byte signs (the plain form holds a 4-byte copy of every coordinate)."""
    n = 1 << 23
    c = _compiled_step(n)
    temp = c.memory_analysis().temp_size_in_bytes
    assert temp <= n + 4096, f"temp {temp} bytes for {n} coordinates: the momentum was copied"
    entry = c.as_text().split("ENTRY", 1)[1]
    assert f"f32[{n}]{{0}} copy(" not in entry
    # below the threshold the plain form stays (the copy is then the faster choice)
    small = _compiled_step(1 << 14)
    assert "conditional(" not in small.as_text()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
def test_a_sign_survives_its_top_byte(dtype, x64):
    """-1, -0, +0, +1 and NaN come back with their bits; a NaN with a payload comes
    back as a NaN (never as an infinity)."""
    dt = jnp.dtype(dtype)
    uint = np.dtype(f"uint{8 * dt.itemsize}")
    signs = np.array([1.0, -1.0, 0.0, -0.0, np.nan, -np.nan], dt)
    back = np.asarray(lion_module._from_top_byte(lion_module._top_byte(jnp.asarray(signs)), dt))
    assert back.dtype == dt
    np.testing.assert_array_equal(back.view(uint), signs.view(uint))
    # a NaN whose top byte is an infinity's (float16: 0x7C01)
    odd = (np.array([np.inf], dt).view(uint) | uint.type(1)).view(dt)
    back = np.asarray(lion_module._from_top_byte(lion_module._top_byte(jnp.asarray(odd)), dt))
    with np.errstate(invalid="ignore"):  # a signalling NaN
        assert np.isnan(odd.astype(np.float64)).all() and np.isnan(back).all()


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import jaxopt_edu as jo
from jaxopt_edu.transforms import lion as L
sharding = NamedSharding(jax.make_mesh((2,), ("x",)), P("x", None))
params = {"w": jax.device_put(jnp.zeros((512, 256)), sharding)}
grads = {"w": jax.device_put(jax.random.normal(jax.random.PRNGKey(0), (512, 256)), sharding)}
def run():
    tx = jo.lion(1e-3)
    step = jax.jit(lambda p, g, s: (lambda u, s: (jo.apply_updates(p, u), s))(*tx.update(g, s, p)))
    p, s = step(params, grads, tx.init(params))
    p, s = step(p, jax.tree.map(jnp.negative, grads), s)
    text = step.lower(params, grads, tx.init(params)).compile().as_text()
    return np.asarray(p["w"]), np.asarray(s[0].mu["w"]), text
ordered = run()
L._ORDERED_MIN_LEAF_BYTES = 1 << 60
plain = run()
assert "conditional(" in ordered[2] and "conditional(" not in plain[2]
assert "all-gather" not in ordered[2]
np.testing.assert_array_equal(ordered[0], plain[0])
np.testing.assert_array_equal(ordered[1], plain[1])

# inside shard_map each device holds half of the leaf (512 KiB of momentum)
from jax.sharding import AxisType
mesh = jax.make_mesh((2,), ("x",), axis_types=(AxisType.Auto,))
g = {"w": jax.device_put(jnp.linspace(-1, 1, 1 << 18), NamedSharding(mesh, P("x")))}
def in_shard_map():
    tx = jo.scale_by_lion()
    s = tx.init(g)
    spec = jax.tree.map(lambda x: P("x") if x.ndim else P(), s)
    f = jax.jit(jax.shard_map(lambda g, s: tx.update(g, s), mesh=mesh,
                              in_specs=(P("x"), spec), out_specs=(P("x"), spec)))
    u, s = f(g, s)
    return np.asarray(u["w"]), np.asarray(s.mu["w"])
L._ORDERED_MIN_LEAF_BYTES = 1 << 18
a = in_shard_map()
L._ORDERED_MIN_LEAF_BYTES = 1 << 60
b = in_shard_map()
np.testing.assert_array_equal(a[0], b[0])
np.testing.assert_array_equal(a[1], b[1])
print("ok")
"""


def test_ordered_form_on_sharded_leaves():
    """Two CPU devices, the leaf split between them (by jit's sharding, then inside
    shard_map): the signs-first form runs without gathering the leaf and gives the
    plain form's numbers."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
