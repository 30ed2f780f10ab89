"""Muon: optax's numbers, the Newton-Schulz closed form, validation, flat layout, the kit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from oracle_utils import max_rel_err, trajectory

import jaxopt_edu as jo
from jaxopt_edu import flat, testing
from jaxopt_edu.optimizers.muon import muon
from jaxopt_edu.transforms.muon import (
    ScaleByMuonState,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
)

STEPS = 100
NS = (3.4445, -4.775, 2.0315)


def problem(dtype=None):
    """A tanh layer (8, 12) -> (12, 5) with a bias: one wide, one tall matrix, one vector."""
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(32, 8), dtype)
    y = jnp.asarray(rng.randn(32, 5), dtype)
    params = {
        "w1": jnp.asarray(rng.randn(8, 12) * 0.3, dtype),
        "w2": jnp.asarray(rng.randn(12, 5) * 0.3, dtype),
        "b": jnp.asarray(rng.randn(5) * 0.1, dtype),
    }

    def loss(p):
        h = jnp.tanh(x @ p["w1"])
        fit = jnp.mean((h @ p["w2"] + p["b"][None, :] - y) ** 2)
        return fit + 0.05 * jnp.sum(jnp.sin(3.0 * p["w1"]))

    return params, loss


def moved(run):
    return min(float(np.max(np.abs(x[-1] - x[0]))) for x in jax.tree.leaves(run))


MASK = {"w1": True, "w2": False, "b": True}
CONFIGS = {
    "defaults": dict(learning_rate=0.02),
    "decay_mask_adam_settings": dict(
        learning_rate=0.02,
        beta=0.9,
        eps=1e-7,
        weight_decay=0.1,
        weight_decay_mask=MASK,
        adam_b1=0.8,
        adam_b2=0.99,
        adam_eps_root=1e-12,
        adam_weight_decay=0.05,
        adam_learning_rate=0.01,
    ),
    "no_nesterov_schedule_ns_settings": dict(
        learning_rate=jo.exponential_decay(0.05, 10, 0.9),
        ns_steps=3,
        ns_coeffs=(2.0, -1.5, 0.5),
        nesterov=False,
    ),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_optax_muon_in_float64(name, x64):
    # Last-bit differences (e.g. 1 - beta^t: float power here, optax's own elsewhere) give
    # at most 2e-11 relative over 100 steps (measured), so 1e-9 leaves a 50x margin. Muon
    # amplifies them where it oscillates near a minimum (Newton-Schulz blows small singular
    # values up), so this problem keeps descending for the 100 steps.
    kwargs = CONFIGS[name]
    params, loss = problem()
    ours = trajectory(muon(**kwargs), params, loss, jo.apply_updates, steps=STEPS)
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
        theirs = trajectory(
            optax.contrib.muon(**kwargs), params, loss, optax.apply_updates, steps=STEPS
        )
    err = max_rel_err(ours, theirs)
    assert err < 1e-9, f"{name}: relative error {err:.3e} against optax.contrib.muon"
    assert moved(ours) > 0.1  # every leaf moved: the comparison has something to compare


def test_the_mask_and_nesterov_change_the_numbers(x64):
    # the oracle runs above would not notice an ignored argument if it changed nothing;
    # one update shows it: the mask spares w2, Nesterov changes Adam's first step (on
    # matrices the first Nesterov direction is a multiple of the gradient: same after NS)
    params, loss = problem()
    base = CONFIGS["decay_mask_adam_settings"]
    variants = [
        base,
        {**base, "weight_decay_mask": None},
        dict(learning_rate=0.02, nesterov=False),
        dict(learning_rate=0.02),
    ]

    @jax.jit
    def first_updates(p):
        g = jax.grad(loss)(p)
        return [muon(**kw).update(g, muon(**kw).init(p), p)[0] for kw in variants]

    a, b, c, d = first_updates(params)
    assert float(jnp.max(jnp.abs(a["w2"] - b["w2"]))) > 1e-4
    np.testing.assert_array_equal(a["w1"], b["w1"])
    assert float(jnp.max(jnp.abs(c["b"] - d["b"]))) > 1e-3


def test_scale_by_muon_is_optax_scale_by_muon_times_the_width_scale(x64):
    params, loss = problem()
    mats = {"w1": params["w1"], "w2": params["w2"]}  # optax's refuses non-2-D leaves
    dims = {k: optax.contrib.MuonDimensionNumbers() for k in mats}

    def mat_loss(p):
        return loss({**p, "b": params["b"]})

    ours = scale_by_muon(beta=0.9)
    theirs = optax.contrib.scale_by_muon(beta=0.9, weight_dimension_numbers=dims)

    @jax.jit
    def both(p, s_ours, s_theirs):
        g = jax.grad(mat_loss)(p)
        u, s_ours = ours.update(g, s_ours, p)
        with jax.numpy_dtype_promotion("standard"):
            v, s_theirs = theirs.update(g, s_theirs, p)
        return u, v, s_ours, s_theirs

    p, s_ours, s_theirs = mats, ours.init(mats), theirs.init(mats)
    for _ in range(5):
        u, v, s_ours, s_theirs = both(p, s_ours, s_theirs)
        # (8, 12) is wide: sqrt(12 / 8); (12, 5) is tall: 1
        np.testing.assert_allclose(u["w1"], np.sqrt(1.5) * v["w1"], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(u["w2"], v["w2"], rtol=1e-11, atol=1e-14)
        chex.assert_trees_all_close(s_ours.mu, s_theirs.mu, rtol=1e-13)
        p = jax.tree.map(lambda a, b: a - 0.05 * b, p, u)


def _polynomial_on_singular_values(g, coeffs, steps, eps):
    """The closed form: NS maps U diag(s) V^T to U diag(p^k(s / (|G|_F + eps))) V^T."""
    u, s, vt = np.linalg.svd(g, full_matrices=False)
    s = s / (np.linalg.norm(g) + eps)
    a, b, c = coeffs
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return u @ np.diag(s) @ vt, s


@pytest.mark.parametrize("transpose", [False, True], ids=["tall_32x16", "wide_16x32"])
def test_newton_schulz_singular_values_near_one(transpose, x64):
    g = np.random.RandomState(1).randn(32, 16)
    g = g.T if transpose else g
    out = np.asarray(orthogonalize_via_newton_schulz(jnp.asarray(g), NS, 5, 1e-8))
    assert out.shape == g.shape
    sv = np.linalg.svd(out, compute_uv=False)
    # the default coefficients trade exact convergence for speed: a band around 1
    assert 0.6 < sv.min() and sv.max() < 1.25, sv
    assert np.linalg.svd(g, compute_uv=False).max() > 2  # the input was far from it
    # and exactly the closed form: same singular vectors, polynomial singular values
    want, s = _polynomial_on_singular_values(g, NS, 5, 1e-8)
    np.testing.assert_allclose(out, want, atol=1e-10)
    np.testing.assert_allclose(np.sort(sv), np.sort(s), rtol=1e-10)


def test_tall_matrices_are_transposed_so_the_gram_matrix_is_small():
    # NS(G^T) = NS(G)^T, so the transpose changes no number, only the cost: for a
    # (32, 16) input every matrix product must be at most 16 x 32 (never 32 x 32)
    jaxpr = jax.make_jaxpr(orthogonalize_via_newton_schulz)(jnp.ones((32, 16)))
    shapes = [e.outvars[0].aval.shape for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(shapes) == 15  # 3 products per step, 5 steps
    assert (32, 32) not in shapes and (16, 16) in shapes, shapes


def test_newton_schulz_float32_bfloat16_and_zero():
    g = jnp.asarray(np.random.RandomState(2).randn(12, 7), jnp.float32)
    out32 = orthogonalize_via_newton_schulz(g)
    sv = np.linalg.svd(np.asarray(out32), compute_uv=False)
    assert 0.6 < sv.min() and sv.max() < 1.25
    out16 = orthogonalize_via_newton_schulz(g.astype(jnp.bfloat16))
    assert out16.dtype == jnp.bfloat16  # computed in float32, stored in the input's dtype
    np.testing.assert_allclose(np.asarray(out16, np.float32), out32, atol=2e-2)
    zero = orthogonalize_via_newton_schulz(jnp.zeros((4, 3)))
    np.testing.assert_array_equal(zero, 0.0)  # eps keeps 0 / 0 away


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(learning_rate=-0.1), "learning_rate"),
        (dict(learning_rate=0.1, beta=1.0), "beta"),
        (dict(learning_rate=0.1, eps=-1e-8), "eps"),
        (dict(learning_rate=0.1, weight_decay=-0.1), "weight_decay"),
        (dict(learning_rate=0.1, adam_b1=1.0), "adam_b1"),
        (dict(learning_rate=0.1, adam_b2=-0.5), "adam_b2"),
        (dict(learning_rate=0.1, adam_eps_root=-1.0), "adam_eps_root"),
        (dict(learning_rate=0.1, adam_weight_decay=-1.0), "adam_weight_decay"),
        (dict(learning_rate=0.1, adam_learning_rate=-1.0), "adam_learning_rate"),
        (dict(learning_rate=lambda t: -0.1), "learning_rate"),  # a schedule's value at 0
        (dict(learning_rate="0.1"), "learning_rate"),
        (dict(learning_rate=0.1, ns_steps=-1), "ns_steps"),
        (dict(learning_rate=0.1, ns_steps=2.5), "ns_steps"),
        (dict(learning_rate=0.1, ns_coeffs=(3.0, -4.0)), "ns_coeffs"),
        (dict(learning_rate=0.1, ns_coeffs=(NS, NS)), "ns_coeffs"),
    ],
)
def test_validation_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        muon(**kwargs)


def test_orthogonalize_rejects_non_matrices():
    with pytest.raises(ValueError, match="`x` must be a matrix"):
        orthogonalize_via_newton_schulz(jnp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="`ns_steps`"):
        orthogonalize_via_newton_schulz(jnp.ones((2, 3)), ns_steps=True)


def test_flat_layout_gives_the_pytree_numbers():
    params, loss = problem(jnp.float32)
    params["h"] = jnp.full((3, 2), 0.5, jnp.bfloat16)  # a second buffer (bfloat16) in the flat tree

    def full_loss(p):
        return loss(p) + jnp.sum(jnp.sin(p["h"].astype(jnp.float32)) ** 2)

    tx = muon(0.02, weight_decay=0.1, weight_decay_mask=MASK | {"h": True}, adam_weight_decay=0.1)
    p, s = params, tx.init(params)
    fp = flat.ravel(params)
    fs = tx.init(fp)
    assert isinstance(fs[0].mu, flat.FlatTree)  # the momentum stays flat
    assert [v.shape for v in fs[0].nu] == [(5,)]  # Adam's second moment: the vector only

    def step(p, s, loss_fn):
        u, s = tx.update(jax.grad(loss_fn)(p), s, p)
        return jo.apply_updates(p, u), s

    tree_step = jax.jit(lambda p, s: step(p, s, full_loss))
    flat_step = jax.jit(lambda p, s: step(p, s, lambda q: full_loss(q.unravel())))
    for _ in range(10):
        p, s = tree_step(p, s)
        fp, fs = flat_step(fp, fs)
    chex.assert_trees_all_close(fp.unravel(), p, rtol=1e-6, atol=1e-6)
    assert float(jnp.max(jnp.abs(p["w1"] - params["w1"]))) > 0.05


def test_check_all_passes():
    testing.check_all(muon(jo.cosine_decay_schedule(0.1, 500)), steps=500, tol=1e-2)


def test_hyperparameters_live_in_the_state_once_and_set_does_not_recompile():
    params, loss = problem(jnp.float32)
    tx = muon(0.02, weight_decay=0.01)
    state = tx.init(params)
    names = ("learning_rate", "beta", "eps", "weight_decay", "adam_b1", "adam_b2")
    for name in names + ("adam_eps_root", "adam_weight_decay"):
        chex.assert_shape(jo.tree.get(state, name), ())  # get raises if a name were there twice
    with pytest.raises(KeyError):
        jo.tree.get(state, "adam_learning_rate")  # None: the Adam leaves use learning_rate
    assert float(
        jo.tree.get(muon(0.1, adam_learning_rate=0.3).init(params), "adam_learning_rate")
    ) == (pytest.approx(0.3))
    traces = []

    @jax.jit
    def step(p, s):
        traces.append(None)
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return u, s

    u1, _ = step(params, state)
    u0, _ = step(params, jo.tree.set(state, learning_rate=0.0))
    assert len(traces) == 1
    assert float(jnp.max(jnp.abs(u1["w1"]))) > 0 and float(jnp.max(jnp.abs(u0["w1"]))) == 0.0
    assert float(jnp.max(jnp.abs(u0["b"]))) == 0.0  # one learning rate for both kinds


def test_mu_dtype_and_state_type():
    params, _ = problem(jnp.float32)
    state = scale_by_muon(mu_dtype=jnp.bfloat16).init(params)
    assert isinstance(state, ScaleByMuonState)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(state.mu))
    assert [x.dtype for x in state.nu] == [jnp.float32]
    testing.check_no_recompile(muon(0.01, mu_dtype=jnp.bfloat16), params=params)


def test_review_edge_cases_shapes_and_flags():
    """An empty (0, n) matrix, a 3-D leaf (the Adam path, as optax) and flag validation."""
    import optax

    p = {"e": jnp.zeros((0, 4)), "t": jnp.linspace(-1.0, 1.0, 24).reshape(2, 3, 4)}
    g = jax.tree.map(lambda x: 0.3 * x + 0.1, p)
    tx = jo.muon(0.05)
    u, _ = tx.update(g, tx.init(p), p)
    assert u["e"].shape == (0, 4)
    # a 3-D leaf is no matrix: it gets the same step as optax's Adam path
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.contrib.muon(0.05)
        ut, _ = theirs.update({"t": g["t"]}, theirs.init({"t": p["t"]}), {"t": p["t"]})
    np.testing.assert_allclose(u["t"], ut["t"], rtol=1e-4)  # float32; the Muon path is far off
    with pytest.raises(ValueError, match="`nesterov` must be True or False"):
        jo.muon(0.1, nesterov="no")
    jo.muon(0.1, ns_steps=np.int64(3))  # a numpy integer is an integer
