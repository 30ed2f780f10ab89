"""RMSprop, centered RMSprop, AdaGrad and AdaDelta against optax and torch's formulas."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_edu import tree
from jaxopt_edu.transforms import rms

MOMENTS = ("mu", "nu", "sum_of_squares", "e_g", "e_x")
REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "torch_trajectories.npz")


@pytest.fixture
def x64():
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


def _gradients(num_steps=100, seed=0, zero_mask=False):
    """Pseudo-random float64 gradients, two leaves, magnitudes over four decades."""
    rng = np.random.RandomState(seed)
    mask = np.array([1.0, 1.0, 0.0, 1.0, 0.0]) if zero_mask else np.ones(5)
    out = []
    for _ in range(num_steps):
        scale = 10.0 ** rng.uniform(-3, 1)
        out.append({"w": scale * rng.randn(3, 4), "b": scale * rng.randn(5) * mask})
    return out


def _compare_with_optax(ours, theirs, grads):
    """Feed `grads` to both; assert every update and moment agree to 1e-10 relative."""
    params = jax.tree.map(jnp.asarray, grads[0])
    ours_update = jax.jit(ours.update)
    s1 = ours.init(params)
    with jax.numpy_dtype_promotion("standard"):
        theirs_update = jax.jit(theirs.update)
        s2 = theirs.init(params)
    for g in grads:
        g = jax.tree.map(jnp.asarray, g)
        u1, s1 = ours_update(g, s1)
        with jax.numpy_dtype_promotion("standard"):
            u2, s2 = theirs_update(g, s2)
        pairs = [(u1, u2)] + [(getattr(s1, m), getattr(s2, m)) for m in MOMENTS if hasattr(s2, m)]
        for a, b in pairs:
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
                assert x.dtype == y.dtype == jnp.float64
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-10, atol=0)


RMS_SETTINGS = [
    {},
    {"eps_in_sqrt": False},
    {"bias_correction": True},
    {"decay": 0.99, "eps": 1e-6, "initial_scale": 1.0, "eps_in_sqrt": False},
    {"decay": 0.5, "eps": 1e-4, "initial_scale": 0.3, "bias_correction": True},
    {"decay": 0.95, "eps_in_sqrt": False, "bias_correction": True},
]


@pytest.mark.parametrize("kwargs", RMS_SETTINGS)
def test_scale_by_rms_matches_optax(x64, kwargs):
    _compare_with_optax(rms.scale_by_rms(**kwargs), optax.scale_by_rms(**kwargs), _gradients())


# With bias correction and v_0 = 0 the first centered variance is exactly 0 (one
# sample): u_1 = g / sqrt(eps + rounding noise), which no two implementations agree on
# to 1e-10 (optax differs from itself by 7e-10 between jit and eager). Those settings
# start from v_0 > 0 here; test_stddev_first_bias_corrected_step covers the v_0 = 0 case.
STDDEV_SETTINGS = [
    {},
    {"eps_in_sqrt": False},
    {"bias_correction": True, "initial_scale": 0.01},
    {"decay": 0.99, "eps": 1e-6, "initial_scale": 1.0, "eps_in_sqrt": False},
    {"decay": 0.5, "eps": 1e-4, "initial_scale": 0.3, "bias_correction": True},
    {"decay": 0.95, "eps_in_sqrt": False, "bias_correction": True, "initial_scale": 0.01},
]


@pytest.mark.parametrize("kwargs", STDDEV_SETTINGS)
def test_scale_by_stddev_matches_optax(x64, kwargs):
    _compare_with_optax(
        rms.scale_by_stddev(**kwargs), optax.scale_by_stddev(**kwargs), _gradients()
    )


@pytest.mark.parametrize(
    "kwargs, zero_mask",
    [({}, False), ({"initial_accumulator_value": 0.0}, True), ({"eps": 1e-3}, False)],
)
def test_scale_by_rss_matches_optax(x64, kwargs, zero_mask):
    grads = _gradients(zero_mask=zero_mask)
    _compare_with_optax(rms.scale_by_rss(**kwargs), optax.scale_by_rss(**kwargs), grads)


@pytest.mark.parametrize("kwargs", [{}, {"rho": 0.5, "eps": 1e-4}, {"rho": 0.99, "eps": 1e-8}])
def test_scale_by_adadelta_matches_optax(x64, kwargs):
    _compare_with_optax(
        rms.scale_by_adadelta(**kwargs), optax.scale_by_adadelta(**kwargs), _gradients()
    )


def test_stddev_first_bias_corrected_step(x64):
    g = {"w": jnp.array([0.3, -2.0])}
    tx = rms.scale_by_stddev(bias_correction=True)
    u, state = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["w"], g["w"] / np.sqrt(1e-8), rtol=1e-6)  # 1e4 * g


def test_scale_by_rss_eps_outside_matches_torch_formula(x64):
    grads = _gradients(zero_mask=True)
    tx = rms.scale_by_rss(initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False)
    state = tx.init(jax.tree.map(jnp.asarray, grads[0]))
    s = {k: np.zeros_like(v) for k, v in grads[0].items()}
    for g in grads:
        u, state = tx.update(jax.tree.map(jnp.asarray, g), state)
        for k in g:
            s[k] = s[k] + g[k] ** 2
            expected = g[k] / (np.sqrt(s[k]) + 1e-10)  # torch.optim.Adagrad, lr_decay=0
            np.testing.assert_allclose(np.asarray(u[k]), expected, rtol=1e-12, atol=0)


# torch case -> (our transform, learning rate): recorded by tests/reference/record_torch.py.
TORCH_CASES = {
    "rmsprop": (lambda: rms.scale_by_rms(0.99, 1e-8, eps_in_sqrt=False), 0.01),
    "rmsprop_centered": (lambda: rms.scale_by_stddev(0.99, 1e-8, eps_in_sqrt=False), 0.01),
    "adagrad": (lambda: rms.scale_by_rss(0.0, 1e-10, eps_in_sqrt=False), 0.1),
    "adagrad_init_acc": (lambda: rms.scale_by_rss(0.1, 1e-10, eps_in_sqrt=False), 0.1),
    "adadelta": (lambda: rms.scale_by_adadelta(0.9, 1e-6), 1.0),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_matches_recorded_torch_trajectory(x64, case):
    ref = np.load(REFERENCE)
    assert json.loads(str(ref[f"{case}/hparams"]))["kwargs"]["lr"] == TORCH_CASES[case][1]
    X, y, c = (jnp.asarray(ref[k]) for k in ("X", "y", "c"))

    def loss(p):
        pred = jnp.tanh(X @ p["w"] + p["b"][None, :]) @ c
        return jnp.mean((pred - y) ** 2) + 0.1 * jnp.sum(jnp.sin(p["w"]))

    make, lr = TORCH_CASES[case]
    tx = make()
    params = {"w": jnp.asarray(ref["w0"]), "b": jnp.asarray(ref["b0"])}
    state = tx.init(params)
    for t in range(int(ref["num_steps"])):
        u, state = tx.update(jax.grad(loss)(params), state)
        params = jax.tree.map(lambda p, d: p - lr * d, params, u)
        for k in ("w", "b"):
            np.testing.assert_allclose(params[k], ref[f"{case}/{k}"][t + 1], rtol=1e-9, atol=1e-12)


ALL = [rms.scale_by_rms, rms.scale_by_stddev, rms.scale_by_rss, rms.scale_by_adadelta]


@pytest.mark.parametrize("make", ALL)
def test_bfloat16_gradients_give_bfloat16_updates(make):
    params = {"w": jnp.ones((3, 4), jnp.bfloat16), "b": jnp.ones((5,), jnp.float32)}
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
    tx = make()
    state = tx.init(params)
    updates, new_state = jax.jit(tx.update)(grads, state)
    assert updates["w"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(updates["w"].astype(jnp.float32))))
    avals = lambda s: jax.tree.map(lambda x: (x.shape, x.dtype), s)  # noqa: E731
    assert avals(new_state) == avals(state)  # the second step does not recompile


@pytest.mark.parametrize("make", [rms.scale_by_rms, rms.scale_by_stddev, rms.scale_by_rss])
def test_nu_dtype_sets_storage(make):
    params = {"w": jnp.ones((3,), jnp.bfloat16)}
    state = make(nu_dtype=jnp.float32).init(params)
    nu = state.sum_of_squares if hasattr(state, "sum_of_squares") else state.nu
    assert nu["w"].dtype == jnp.float32
    updates, _ = make(nu_dtype=jnp.float32).update(params, state)
    assert updates["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "make, kwargs, name",
    [
        (rms.scale_by_rms, {"eps": -1e-8}, "eps"),
        (rms.scale_by_rms, {"decay": 1.5}, "decay"),
        (rms.scale_by_rms, {"decay": 1.0, "bias_correction": True}, "decay"),
        (rms.scale_by_rms, {"initial_scale": -0.1}, "initial_scale"),
        (rms.scale_by_stddev, {"decay": -0.1}, "decay"),
        (rms.scale_by_stddev, {"initial_scale": -1.0}, "initial_scale"),
        (rms.scale_by_rss, {"eps": -1.0}, "eps"),
        (rms.scale_by_rss, {"initial_accumulator_value": -0.1}, "initial_accumulator_value"),
        (rms.scale_by_rss, {"initial_accumulator_value": lambda t: 0.1}, "initial_accumulator"),
        (rms.scale_by_adadelta, {"rho": 1.5}, "rho"),
        (rms.scale_by_adadelta, {"eps": -1e-6}, "eps"),
    ],
)
def test_invalid_arguments_name_the_argument(make, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}"):
        make(**kwargs)


def test_decay_one_allowed_without_bias_correction():
    tx = rms.scale_by_rms(decay=1.0, initial_scale=4.0, eps=0.0)
    g = {"w": jnp.ones((2,))}
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["w"], 0.5)  # v stays at initial_scale


@pytest.mark.parametrize(
    "make, name, value",
    [
        (lambda: rms.scale_by_rms(decay=0.8), "decay", 0.8),
        (lambda: rms.scale_by_stddev(eps=1e-3), "eps", 1e-3),
        (lambda: rms.scale_by_rss(eps=1e-5), "eps", 1e-5),
        (lambda: rms.scale_by_adadelta(rho=0.7), "rho", 0.7),
    ],
)
def test_hyperparameters_readable_from_state(make, name, value):
    state = make().init({"w": jnp.zeros((2,))})
    np.testing.assert_allclose(tree.get(state, name), value, rtol=1e-6)
    with pytest.raises(KeyError, match="initial_scale"):
        tree.get(state, "initial_scale")


def test_set_decay_changes_the_step_without_recompiling():
    tx = rms.scale_by_rms(decay=0.9)
    g = {"w": jnp.ones((2,))}
    state = tx.init(g)
    step = jax.jit(tx.update)
    u_a, _ = step(g, state)
    u_b, _ = step(g, tree.set(state, decay=0.75))
    np.testing.assert_allclose(u_a["w"], 1 / np.sqrt(0.1 + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(u_b["w"], 1 / np.sqrt(0.25 + 1e-8), rtol=1e-6)
    assert step._cache_size() == 1


def test_rss_zero_accumulator_gives_zero_update_and_finite_gradient():
    tx = rms.scale_by_rss(initial_accumulator_value=0.0, eps=0.0)
    g = {"w": jnp.array([0.0, 2.0])}
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(u["w"], [0.0, 1.0])
    d = jax.grad(lambda x: jnp.sum(tx.update({"w": x}, tx.init(g))[0]["w"]))(g["w"])
    assert bool(jnp.all(jnp.isfinite(d)))


def test_mismatched_tree_names_the_path():
    tx = rms.scale_by_adadelta()
    state = tx.init({"w": jnp.zeros((2,))})
    with pytest.raises(ValueError, match="w"):
        tx.update({"v": jnp.zeros((2,))}, state)
