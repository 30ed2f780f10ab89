"""Tree utilities against numpy, on trees drawn by hypothesis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxopt_edu as jo

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, width=32)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)


@st.composite
def trees(draw, n=1):
    """`n` numpy trees (dicts of float32 arrays) sharing one structure and shapes."""
    shapes = draw(st.lists(SHAPES, min_size=1, max_size=4))
    out = []
    for _ in range(n):
        out.append(
            {
                f"leaf{i}": draw(hnp.arrays(np.float32, s, elements=FLOATS))
                for i, s in enumerate(shapes)
            }
        )
    return out


def flat(t):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(t)])


def close(a, b, rtol=1e-5, atol=1e-3):
    np.testing.assert_allclose(
        np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol
    )


settings.register_profile("ci", max_examples=40, deadline=None)
settings.load_profile("ci")


@given(trees(3), FLOATS)
def test_arithmetic(ts, c):
    a, b, d = ts
    close(flat(jo.tree.add(a, b, d)), flat(a) + flat(b) + flat(d))
    close(flat(jo.tree.sub(a, b)), flat(a) - flat(b))
    close(flat(jo.tree.scale(jnp.float32(c), a)), np.float32(c) * flat(a), atol=1e-1)


@given(trees(2))
def test_reductions(ts):
    a, b = ts
    fa, fb = flat(a), flat(b)
    close(jo.tree.vdot(a, b), fa @ fb, rtol=1e-4, atol=1.0)
    close(jo.tree.sum(a), fa.sum(), rtol=1e-4, atol=1e-1)
    close(jo.tree.norm(a), np.linalg.norm(fa), rtol=1e-5)
    close(jo.tree.norm(a, squared=True), fa @ fa, rtol=1e-4, atol=1.0)
    close(jo.tree.norm(a, ord=1), np.abs(fa).sum(), rtol=1e-4, atol=1e-1)
    close(jo.tree.norm(a, ord="inf"), np.abs(fa).max())


@given(trees(2), st.floats(0, 0.999), st.integers(1, 50))
def test_moments_and_bias_correction(ts, decay, count):
    g, m = ts
    d = jnp.float32(decay)
    close(
        flat(jo.tree.update_moment(g, m, d, 1)), decay * flat(m) + (1 - decay) * flat(g), atol=1e-2
    )
    close(
        flat(jo.tree.update_moment(g, m, d, 2)),
        decay * flat(m) + (1 - decay) * flat(g) ** 2,
        rtol=1e-4,
        atol=1.0,
    )
    expected = flat(m) / (1 - np.float32(decay) ** count)
    close(flat(jo.tree.bias_correction(m, d, jnp.int32(count))), expected, rtol=1e-3, atol=1e-2)


@given(trees(2), st.booleans())
def test_where_zeros_cast(ts, pick):
    a, b = ts
    close(flat(jo.tree.where(jnp.asarray(pick), a, b)), flat(a) if pick else flat(b))
    z = jo.tree.zeros_like(a, jnp.bfloat16)
    assert all(
        x.dtype == jnp.bfloat16 and not np.any(np.asarray(x, np.float32))
        for x in jax.tree.leaves(z)
    )
    assert all(x.dtype == jnp.float16 for x in jax.tree.leaves(jo.tree.cast(a, jnp.float16)))


def test_low_precision_leaves_keep_dtype_and_reduce_in_float32():
    t = {"a": jnp.full((1000,), 300.0, jnp.float16), "b": jnp.ones(3, jnp.bfloat16)}
    n = jo.tree.norm(t)
    assert n.dtype == jnp.float32  # float16 would overflow: 300^2 * 1000 > 65504
    close(n, np.sqrt(1000 * 300.0**2 + 3), rtol=1e-5)
    assert jo.tree.scale(jnp.float32(2.0), t)["a"].dtype == jnp.float16


def test_norm_rejects_bad_ord():
    with pytest.raises(ValueError, match="ord"):
        jo.tree.norm({"a": jnp.ones(2)}, ord=3)


# ------------------------------------------------ totals over many leaves (fenced fold)


def _many_leaves(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        f"l{i:04d}": jnp.asarray(
            (rng.standard_normal(int(rng.integers(1, 40))) * 10.0 ** rng.uniform(-0.5, 0.5)).astype(
                np.float32
            )
        )
        for i in range(n)
    }


def _sequential(parts, combine):
    acc = np.float32(0)
    for p in parts:
        acc = combine(acc, np.float32(p))
    return acc


@pytest.mark.parametrize("n", [5, 450])
def test_norms_fold_the_leaves_in_order_under_jit(n):
    """From the fence threshold (400) up the fold runs inside a conditional on a CPU:
    same numbers, same order (sequential float32 fold, as optax's norm), every ord,
    under jit (ord='inf' failed under jit before: Python's max on tracers)."""
    import optax

    t = _many_leaves(n)
    leaves = [np.asarray(x) for x in jax.tree.leaves(t)]
    sq = _sequential([np.sum(x * x, dtype=np.float32) for x in leaves], np.add)
    one = _sequential([np.sum(np.abs(x), dtype=np.float32) for x in leaves], np.add)
    inf = _sequential([np.max(np.abs(x)) for x in leaves], np.maximum)
    got = jax.jit(lambda t: [jo.tree.norm(t, ord=o) for o in (2, 1, "inf")])(t)
    assert np.asarray(got[0]) == np.asarray(jax.jit(optax.tree.norm)(t))
    # XLA's per-leaf reductions may order a leaf's own sum differently from numpy's
    np.testing.assert_allclose(np.asarray(got[0]) ** 2, sq, rtol=1e-6)
    np.testing.assert_allclose(got[1], one, rtol=1e-6)
    assert np.asarray(got[2]) == inf
    # grads are optax's, bitwise
    g = jax.jit(jax.grad(jo.tree.norm))(t)
    g_ref = jax.jit(jax.grad(optax.tree.norm))(t)
    assert all(np.array_equal(g[k], g_ref[k]) for k in t)


def test_fenced_fold_is_the_plain_fold_bitwise(monkeypatch):
    t = _many_leaves(450, seed=1)
    flipped = jax.tree.map(jnp.flip, t)

    def results():
        # fresh functions each time: jit caches a trace by function, and the threshold
        # is read while tracing
        fns = {
            "norm2": lambda t: jo.tree.norm(t),
            "norm1": lambda t: jo.tree.norm(t, ord=1),
            "inf": lambda t: jo.tree.norm(t, ord="inf"),
            "sum": lambda t: jo.tree.sum(t),
            "vdot": lambda t: jo.tree.vdot(t, flipped),
        }
        return {k: np.asarray(jax.jit(f)(t)) for k, f in fns.items()}

    fenced = results()
    monkeypatch.setattr(jo.tree, "_FENCED_FOLD_MIN_PARTS", 1 << 62)
    plain = results()
    assert all(np.array_equal(fenced[k], plain[k]) for k in fenced)


def test_fenced_fold_compiles_to_one_conditional_on_cpu_only_above_threshold():
    big, small = _many_leaves(450), _many_leaves(20)
    hlo = jax.jit(jo.tree.norm).lower(big).compile().as_text()
    assert hlo.count(" conditional(") == 1
    hlo = jax.jit(jo.tree.norm).lower(small).compile().as_text()
    assert " conditional(" not in hlo


@pytest.mark.parametrize("where", [0, 7, 449])
@pytest.mark.parametrize("ord", [2, 1, "inf"])
def test_fenced_fold_propagates_nan_from_any_leaf(where, ord):
    t = _many_leaves(450, seed=2)
    k = sorted(t)[where]
    t[k] = t[k].at[0].set(jnp.nan)
    assert np.isnan(jax.jit(lambda t: jo.tree.norm(t, ord=ord))(t))


def test_fenced_fold_under_vmap_and_scan():
    t = _many_leaves(450, seed=3)
    batch = jax.tree.map(lambda x: jnp.stack([x, 2 * x, x.at[0].set(jnp.nan)]), t)
    got = np.asarray(jax.jit(jax.vmap(jo.tree.norm))(batch))
    ref = np.asarray(jax.jit(jo.tree.norm)(t))
    # a batched reduction may order a leaf's own sum differently: last-bit tolerance
    np.testing.assert_allclose(got[:2], [ref, 2 * ref], rtol=1e-6)
    assert np.isnan(got[2])

    def body(c, x):
        return c + jo.tree.norm(x), None

    total, _ = jax.jit(lambda b: jax.lax.scan(body, jnp.zeros([]), b))(batch)
    assert np.isnan(total)


@pytest.mark.parametrize("nan_leaf", [None, 0, 5])
def test_fenced_fold_derivatives_are_the_plain_folds(monkeypatch, nan_leaf):
    """Derivatives come from the plain fold: a NaN in the first leaf must not zero the
    other leaves' gradients or tangents (it did when the conditional was differentiated).
    (ord="inf" is left out: the gradient of its chain of maxima takes minutes to compile
    at this many leaves, fenced or not.)"""
    t = _many_leaves(450, seed=4)
    if nan_leaf is not None:
        k = sorted(t)[nan_leaf]
        t[k] = t[k].at[0].set(jnp.nan)
    ones = jax.tree.map(jnp.ones_like, t)

    def results():
        # fresh functions: the threshold is read while tracing
        grads = {
            "sum": jax.jit(jax.grad(lambda t: jo.tree.sum(t)))(t),
            "norm2": jax.jit(jax.grad(lambda t: jo.tree.norm(t)))(t),
            "vdot": jax.jit(jax.grad(lambda t: jo.tree.vdot(t, t)))(t),
        }
        tangents = {
            o: jax.jit(lambda t, o=o: jax.jvp(lambda t: jo.tree.norm(t, ord=o), (t,), (ones,)))(t)
            for o in (2, 1)
        }
        return grads, tangents

    fenced = results()
    monkeypatch.setattr(jo.tree, "_FENCED_FOLD_MIN_PARTS", 1 << 62)
    plain = results()
    for name in fenced[0]:
        for k in t:
            np.testing.assert_array_equal(fenced[0][name][k], plain[0][name][k])
    for o in fenced[1]:
        np.testing.assert_array_equal(fenced[1][o], plain[1][o])


def test_fenced_fold_gradient_fans_out_without_padding():
    """The gradient of a total hands each leaf the cotangent: no per-leaf padding back to
    the stacked vector (which made vmap(grad) compile in time cubic in the leaves)."""
    t = _many_leaves(450, seed=5)
    assert "platform_index" in str(jax.make_jaxpr(jo.tree.norm)(t))  # the fence is there
    jaxpr = str(jax.make_jaxpr(jax.grad(jo.tree.norm))(t))
    assert " pad[" not in jaxpr
    assert jaxpr.count("f32[450]") < 10  # the stacked vector, not one per leaf
