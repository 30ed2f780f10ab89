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
