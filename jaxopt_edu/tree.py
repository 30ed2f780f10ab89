"""Tree math and state access.

Transformations do all their work on trees through these helpers (never with
hand-written `jax.tree.map` loops of their own), so one place decides dtypes,
promotion and, later, the flat parameter layout underneath.

Arithmetic rule used throughout: an element is computed in
`compute_dtype(x)`, the promotion of its dtype with float32 (so bfloat16 and
float16 work in float32, float64 stays float64), and stored back in the dtype of
whatever holds it (the update's dtype, or the moment's own `mu_dtype`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import re
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_edu.flat import FlatTree
from jaxopt_edu.hyper import HyperParams

__all__ = [
    "add",
    "bias_correction",
    "cast",
    "check_match",
    "compute_dtype",
    "from_leaf_groups",
    "from_leaf_views",
    "leaf_group_indices",
    "leaf_group_shapes",
    "leaf_groups",
    "leaf_norms",
    "leaf_views",
    "scale_leaves",
    "promote",
    "get",
    "multi_output_fusion",
    "recompute_for_update",
    "get_all_with_path",
    "lerp",
    "map_leaf_groups",
    "moment_like",
    "norm",
    "scale",
    "set",
    "sub",
    "sum",
    "update_infinity_moment",
    "update_moment",
    "vdot",
    "where",
    "zeros_like",
]


def promote(*dtypes: Any) -> np.dtype:
    """JAX's standard promotion of `dtypes`, whatever `jax_numpy_dtype_promotion` says.

    Transformations cast explicitly to this dtype, so they run unchanged under the
    strict promotion mode users (and our tests) turn on.
    """
    with jax.numpy_dtype_promotion("standard"):
        out = dtypes[0]
        for d in dtypes[1:]:
            out = jnp.promote_types(out, d)
        return np.dtype(out)


def compute_dtype(x: chex.Array) -> np.dtype:
    """The dtype arithmetic on `x` runs in: `x.dtype` promoted with float32."""
    return promote(x.dtype, jnp.float32)


def _c(scalar: chex.Numeric, dtype) -> jax.Array:
    """A hyperparameter (any float dtype) cast to the dtype of the arithmetic."""
    if jnp.iscomplexobj(np.zeros((), dtype)):
        dtype = jnp.finfo(dtype).dtype  # real part's dtype: scalars stay real
    return jnp.asarray(scalar).astype(dtype)


def _abs_sq(x: jax.Array) -> jax.Array:
    return (x * jnp.conj(x)).real if jnp.iscomplexobj(x) else x * x


# ---------------------------------------------------------------- arithmetic


def add(*trees: chex.ArrayTree) -> chex.ArrayTree:
    """Leafwise sum of trees of the same structure: $\\sum_i x_i$ (dtype of the first)."""

    def f(x, *ys):
        dt = compute_dtype(x)
        acc = x.astype(dt)
        for y in ys:
            acc = acc + y.astype(dt)
        return acc.astype(x.dtype)

    return jax.tree.map(f, *trees)


def sub(a: chex.ArrayTree, b: chex.ArrayTree) -> chex.ArrayTree:
    """Leafwise difference $a - b$ (dtype of `a`)."""

    def f(x, y):
        dt = promote(compute_dtype(x), compute_dtype(y))
        return (x.astype(dt) - y.astype(dt)).astype(x.dtype)

    return jax.tree.map(f, a, b)


def scale(scalar: chex.Numeric, tree: chex.ArrayTree) -> chex.ArrayTree:
    """Leafwise $c\\,x$, each leaf keeping its dtype; `c` may be an array of any float dtype."""

    def f(x):
        dt = compute_dtype(x)
        return (_c(scalar, dt) * x.astype(dt)).astype(x.dtype)

    return jax.tree.map(f, tree)


def lerp(a: chex.Array, b: chex.Array, t: chex.Numeric) -> chex.Array:
    """$(1 - t)\\,a + t\\,b$ for one leaf, in `a`'s dtype."""
    dt = compute_dtype(a)
    tt = _c(t, dt)
    return (tt * b.astype(dt) + (1 - tt) * a.astype(dt)).astype(a.dtype)


def where(condition: Any, a: chex.ArrayTree, b: chex.ArrayTree) -> chex.ArrayTree:
    """Leafwise `a if condition else b`; `condition` is a boolean scalar or a tree of them."""
    if isinstance(condition, bool | jax.Array | np.ndarray | np.bool_):
        return jax.tree.map(lambda x, y: jnp.where(condition, x, y), a, b)
    return jax.tree.map(lambda c, x, y: jnp.where(c, x, y), condition, a, b)


def zeros_like(tree: chex.ArrayTree, dtype: Any = None) -> chex.ArrayTree:
    """Zeros shaped like each leaf, in `dtype` (default: the leaf's dtype).

    Keeps each leaf's sharding, and works on `jax.ShapeDtypeStruct` leaves too (under
    `jax.eval_shape`), so `init` can run on abstract params.
    """
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype or x.dtype), tree)


def full_like(tree: chex.ArrayTree, value: chex.Numeric, dtype: Any = None) -> chex.ArrayTree:
    """`value` shaped like each leaf, in `dtype` (default: the leaf's dtype), sharding kept."""
    return jax.tree.map(lambda x: jnp.full_like(x, value, dtype=dtype or x.dtype), tree)


def moment_like(tree: chex.ArrayTree, dtype: Any = None, value: chex.Numeric = 0.0):
    """Storage for a second moment (squares of gradients): `value` in `dtype`.

    With `dtype=None` each leaf keeps its dtype, except float16, which gets float32:
    a float16 square underflows below 6e-8 (a gradient of 2e-4), and `eps = 1e-8`
    is zero in float16, so Adam would divide by zero. bfloat16 keeps float32's
    exponent range and stays bfloat16.
    """

    def f(x):
        dt = dtype or (jnp.float32 if x.dtype == jnp.float16 else x.dtype)
        return jnp.full_like(x, value, dtype=dt)

    return jax.tree.map(f, tree)


def cast(tree: chex.ArrayTree, dtype: Any) -> chex.ArrayTree:
    """Every leaf cast to `dtype`; `None` keeps each leaf's dtype."""
    if dtype is None:
        return tree
    return jax.tree.map(lambda x: jnp.asarray(x).astype(dtype), tree)


def cast_like(tree: chex.ArrayTree, like: chex.ArrayTree) -> chex.ArrayTree:
    """Every leaf of `tree` cast to the dtype of the matching leaf of `like`."""
    return jax.tree.map(lambda x, y: x.astype(y.dtype), tree, like)


def _sum_dtype(tree) -> np.dtype:
    leaves = jax.tree.leaves(tree)
    dt = jnp.float32
    for x in leaves:
        dt = promote(dt, compute_dtype(x))
    return jnp.finfo(dt).dtype if jnp.issubdtype(dt, jnp.complexfloating) else dt


# From this many per-leaf scalars up, a total over the leaves is folded inside a
# conditional on a CPU (see `_fold_leaves`). From `benchmarks/bench_leaf_totals.py`: with
# 400 leaves the fenced and the plain fold compiled in the same time, with 512 the fenced
# one was faster.
_FENCED_FOLD_MIN_PARTS = 400


def _fold(parts, combine, init):
    """`combine(...combine(combine(init, parts[0]), parts[1])..., parts[-1])`."""
    acc = init
    for x in parts:
        acc = combine(acc, x)
    return acc


def _fold_leaves(parts: list[jax.Array], combine, init: jax.Array) -> jax.Array:
    """A total of one scalar per leaf, folded left to right from `init`.

    The value is always that sequential fold (optax sums its global norm in the same
    order, so `clip_by_global_norm` rounds as optax does). On a CPU, from
    `_FENCED_FOLD_MIN_PARTS` scalars up, the fold runs inside a `jax.lax.cond`:
    XLA:CPU's fusion pass otherwise grows one fusion out of the chain of scalar
    additions and, for every per-leaf reduction feeding it, recounts the reductions
    already inside, which makes compile time grow with about the cube of the number
    of leaves (a clip step on 2000 small leaves: 21 s, against 8 s with the fold
    fenced off; `benchmarks/bench_leaf_totals.py`). The conditional's predicate,
    `parts[0] == parts[0]`, is false only for a NaN, and then the other branch
    returns that NaN, which is also what the fold gives. Derivatives are those of the
    plain fold (a custom JVP): differentiating the conditional itself would lose the
    other leaves' tangents when the first part is NaN, and its transpose would pad
    each part back to the length of the stacked vector (work and compile time growing
    with the square of the leaves). Elsewhere (an accelerator would read the
    predicate back to the host) the fold is plain.

    Pitfall: the gradient of a fold of maxima (`norm(ord="inf")`) still goes through
    the chain of pairwise maxima, whose compile time on a CPU grows steeply with the
    leaves (100 leaves: 10 s; 450: 4 minutes).
    """
    init = jnp.asarray(init)
    if not jnp.issubdtype(init.dtype, jnp.floating):
        return _fold(parts, combine, init)
    parts = [jnp.asarray(x).astype(init.dtype) for x in parts]
    if len(parts) >= _FENCED_FOLD_MIN_PARTS:
        return _total(combine, init, parts)
    return _fold(parts, combine, init)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _total(combine, init, parts):
    if len(parts) < _FENCED_FOLD_MIN_PARTS:
        return _fold(parts, combine, init)

    def fenced(init, parts):
        stacked = jnp.stack(parts)

        def fold(v):
            return _fold(
                [jax.lax.index_in_dim(v, i, keepdims=False) for i in range(len(parts))],
                combine,
                init,
            )

        def nan(v):
            return combine(init, v[0])

        return jax.lax.cond(stacked[0] == stacked[0], fold, nan, stacked)

    def plain(init, parts):
        return _fold(parts, combine, init)

    return jax.lax.platform_dependent(init, parts, cpu=fenced, default=plain)


@_total.defjvp
def _total_jvp(combine, primals, tangents):
    # the value as `_total` computes it, the tangent as the plain fold's (for a sum it
    # does not read the values, so the plain chain of values is dropped as dead code)
    _, tangent = jax.jvp(lambda i, p: _fold(p, combine, i), primals, tangents)
    return _total(combine, *primals), tangent


def sum(tree: chex.ArrayTree) -> jax.Array:  # noqa: A001 - mirrors jnp.sum
    """$\\sum$ of every element of every leaf, in at least float32.

    Each leaf is summed, then the per-leaf sums are added one leaf after the other in
    the tree's leaf order (on a CPU, with many leaves, apart from the rest of the
    step: the tree page's "Totals over many leaves").

    PyTorch: `sum(t.sum() for t in tensors)`.
    Pitfall: a complex tree gives a complex sum.
    Reference: optax's `optax.tree.sum`.
    """
    leaves = jax.tree.leaves(tree)
    dt = jnp.float32
    for x in leaves:
        dt = promote(dt, compute_dtype(x))
    return _fold_leaves([jnp.sum(x.astype(dt)) for x in leaves], jnp.add, jnp.zeros([], dt))


def vdot(a: chex.ArrayTree, b: chex.ArrayTree) -> jax.Array:
    """Inner product of two trees: $\\sum_i \\langle a_i, b_i\\rangle$ (conjugating `a`).

    One inner product per pair of leaves, added in the tree's leaf order as `sum` does.

    PyTorch: `sum(torch.vdot(x.flatten(), y.flatten()) for x, y in zip(a, b))`.
    Pitfall: `a` is the conjugated side, as in `jnp.vdot`.
    Reference: optax's `optax.tree.vdot`.
    """
    dt = promote(jnp.float32, *(compute_dtype(x) for x in jax.tree.leaves((a, b))))
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return _fold_leaves(
        [jnp.vdot(x.astype(dt).ravel(), y.astype(dt).ravel()) for x, y in pairs],
        jnp.add,
        jnp.zeros([], dt),
    )


def norm(tree: chex.ArrayTree, ord: int | float | str = 2, squared: bool = False) -> jax.Array:
    """Global norm of a tree, as if all leaves were one vector.

    $$\\|x\\|_2 = \\sqrt{\\textstyle\\sum_i |x_i|^2},\\quad \\|x\\|_1 = \\sum_i |x_i|,\\quad
    \\|x\\|_\\infty = \\max_i |x_i|$$

    `ord` is 2, 1 or `"inf"`/`jnp.inf`; `squared=True` returns $\\|x\\|_2^2$. Computed in at
    least float32 whatever the leaf dtypes. A NaN anywhere gives NaN, for every `ord`.
    The per-leaf results are added (or, for `"inf"`, maximized) one leaf after the
    other in the tree's leaf order, as optax does; on a CPU, a tree of many leaves
    has that fold compiled apart from the rest of the step (see the tree page,
    "Totals over many leaves").

    PyTorch: `torch.nn.utils.get_total_norm` (and the norm inside
    `clip_grad_norm_`), which takes the norm of the per-tensor norms instead: the
    same number up to rounding.
    Pitfall: the norm of a tree of complex leaves is real ($|x_i|^2 = x_i \\bar x_i$).
    Reference: optax's `optax.tree.norm`.
    """
    dt = _sum_dtype(tree)
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    zero = jnp.zeros([], dt)
    if ord == 2:
        parts = [jnp.sum(_abs_sq(x.astype(compute_dtype(x)))).astype(dt) for x in leaves]
        sq = _fold_leaves(parts, jnp.add, zero)
        return sq if squared else jnp.sqrt(sq)
    if squared:
        raise ValueError(f"norm: `squared=True` needs ord=2, got ord={ord!r}.")
    if ord == 1:
        return _fold_leaves([jnp.sum(jnp.abs(x).astype(dt)) for x in leaves], jnp.add, zero)
    if ord in ("inf", jnp.inf):
        parts = [jnp.max(jnp.abs(x), initial=0).astype(dt) for x in leaves]
        return _fold_leaves(parts, jnp.maximum, zero)
    raise ValueError(f"norm: `ord` must be 1, 2 or 'inf', got {ord!r}.")


# ---------------------------------------------------------------- moments


def update_moment(
    updates: chex.ArrayTree, moments: chex.ArrayTree, decay: chex.Numeric, order: int
) -> chex.ArrayTree:
    """Exponential moving average of the gradients (order 1) or their squares (order 2).

    $$m_t = \\beta m_{t-1} + (1-\\beta)\\,g_t \\quad\\text{or}\\quad
    v_t = \\beta v_{t-1} + (1-\\beta)\\,|g_t|^2$$

    Each result keeps its moment's dtype (so `mu_dtype=bfloat16` stores bfloat16).
    """
    if order not in (1, 2):
        raise ValueError(f"update_moment: `order` must be 1 or 2, got {order!r}.")

    def f(g, m):
        dt = promote(compute_dtype(g), compute_dtype(m))
        b = _c(decay, dt)
        g = g.astype(dt)
        x = g if order == 1 else _abs_sq(g)
        return ((1 - b) * x + b * m.astype(dt)).astype(m.dtype)

    return jax.tree.map(f, updates, moments)


def update_infinity_moment(
    updates: chex.ArrayTree, moments: chex.ArrayTree, decay: chex.Numeric, eps: chex.Numeric
) -> chex.ArrayTree:
    """Adamax's exponentially weighted infinity norm: $u_t = \\max(\\beta u_{t-1}, |g_t| + \\epsilon)$."""

    def f(g, m):
        dt = promote(compute_dtype(g), compute_dtype(m))
        b, e = _c(decay, dt), _c(eps, dt)
        return jnp.maximum(b * m.astype(dt), jnp.abs(g.astype(dt)) + e).astype(m.dtype)

    return jax.tree.map(f, updates, moments)


def bias_correction(
    moment: chex.ArrayTree, decay: chex.Numeric, count: chex.Array
) -> chex.ArrayTree:
    """Undo the zero initialisation of a moving average: $\\hat m_t = m_t / (1 - \\beta^t)$.

    Returned in each leaf's compute dtype (not rounded back to a low-precision
    `mu_dtype`), ready for the next arithmetic step.
    """
    decay = jnp.asarray(decay)
    correction = 1 - decay ** jnp.asarray(count).astype(decay.dtype)

    def f(m):
        dt = compute_dtype(m)
        return m.astype(dt) / _c(correction, dt)

    return jax.tree.map(f, moment)


# ------------------------------------------------------- one loop per step on a CPU

_MULTI_OUTPUT_FUSION: dict[str, bool] = {}
# a fusion whose result is a tuple of arrays: one loop that writes several outputs
_TUPLE_FUSION = re.compile(r"= \([^()]*\) fusion\(")


def _compile_probe(platform: str) -> bool:
    try:
        device = jax.devices(platform)[0]
    except RuntimeError:  # no such platform here
        return False
    x = jax.ShapeDtypeStruct(
        (1024,), jnp.float32, sharding=jax.sharding.SingleDeviceSharding(device)
    )
    probe = jax.jit(lambda a, b: (a * b, a + b)).lower(x, x).compile().as_text()
    return bool(_TUPLE_FUSION.search(probe))


def multi_output_fusion(platform: str = "cpu") -> bool:
    """Whether XLA:CPU, in this process, fuses sibling loops into one loop with several outputs.

    Two loops are siblings when they read the same arrays and neither reads the
    other's result, like $m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t$ and
    $v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2$. XLA:CPU merges them only when the
    process starts with
    `XLA_FLAGS=--xla_backend_extra_options=xla_cpu_use_multi_output_fusion`
    (an XLA option, off by default in jax 0.10 and 0.11). The answer comes from
    compiling a two-output probe once per process on `platform` (in a thread of its
    own, so that no mesh or trace of the caller's applies to it) and reading its HLO,
    so it says what XLA does, whatever way the option was set; it is `False` when
    `platform` has no device here, or when the probe fails to compile. The library
    asks only about "cpu": XLA:GPU fuses an optimizer's loops into one kernel by its
    own rules, which this probe does not show (a review saw it answer `False` on an
    H100 with jax 0.11).

    PyTorch: none (its `fused=True` optimizers are hand-written single loops).
    Pitfall: the flag is read when JAX starts its CPU backend; setting `XLA_FLAGS`
    after the first computation changes nothing, and this function keeps its first
    answer.
    Reference: XLA's `CpuMultiOutputFusion` pass, https://github.com/openxla/xla
    (`xla/service/cpu/cpu_multi_output_fusion.cc`).
    """
    if platform not in _MULTI_OUTPUT_FUSION:
        # a fresh thread: jax.set_mesh and the caller's trace are thread-local, and a
        # mesh of other devices would refuse a jit pinned to this one
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            try:
                answer = pool.submit(_compile_probe, platform).result()
            except Exception:  # noqa: BLE001 - any failure means: do not rely on it
                answer = False
        _MULTI_OUTPUT_FUSION[platform] = answer
    return _MULTI_OUTPUT_FUSION[platform]


def _barrier_per_leaf(inputs: tuple) -> tuple:
    """`inputs` through optimization barriers, one per leaf position when the trees
    share a structure: one barrier over every leaf would make each leaf's update wait
    for every gradient of the model (and keep them all alive at once)."""
    flat_inputs = [jax.tree.flatten(t) for t in inputs]
    treedef = flat_inputs[0][1] if flat_inputs else None
    if not flat_inputs or any(d != treedef for _, d in flat_inputs):
        return jax.lax.optimization_barrier(inputs)
    columns = zip(*(leaves for leaves, _ in flat_inputs), strict=True)
    rows = list(zip(*(jax.lax.optimization_barrier(c) for c in columns), strict=True))
    if not rows:  # trees without leaves
        return inputs
    return tuple(jax.tree.unflatten(treedef, r) for r in rows)


def recompute_for_update(fn, result: Any, *inputs: Any) -> Any:
    """`result` (which is `fn(*inputs)`), or on a CPU that fuses siblings, `fn` again.

    A transformation computes its new state, say $m_t = f(g_t, m_{t-1})$, and an
    update that reads it, $u_t = h(m_t)$, which `apply_updates` turns into
    $p_t = p_{t-1} + u_t$. XLA:CPU fuses $f$ into one loop that writes $m_t$ and
    $h$ and the parameter update into a second loop that reads $m_t$ back; even
    with multi-output fusion on (`multi_output_fusion`), a loop that reads another's
    result is never merged with it. So, only when XLA:CPU in this process fuses
    siblings, this returns $f$ evaluated again on `inputs` passed through
    `jax.lax.optimization_barrier`, one per leaf (which XLA removes after its
    common-subexpression pass): the two evaluations are then siblings reading $g_{t-1}$ and $m_{t-1}$,
    and XLA makes one loop that reads $g, m, p$ once and writes $m$ and $p$, as
    torch's fused optimizers do. Otherwise, and on every other platform (the choice
    is made per platform with `jax.lax.platform_dependent`), it returns `result`.
    The value is the same expression either way; XLA may round the update differently
    in the last bit, as it may for any change in how it fuses.

    PyTorch: none; `torch.optim.Adam(fused=True)` is a hand-written loop of the same
    shape.
    Pitfall: without multi-output fusion a barrier would make XLA:CPU copy the
    inputs (several times slower), which is why the barrier is used only when the
    probe says siblings are fused.
    Reference: XLA's `CpuMultiOutputFusion` pass, https://github.com/openxla/xla.
    """
    if not callable(fn):
        raise ValueError(
            f"recompute_for_update: `fn` must be the function that computed `result` from "
            f"`inputs`, got {fn!r}."
        )
    if not multi_output_fusion("cpu"):
        return result

    def cpu(result, inputs):
        return fn(*_barrier_per_leaf(inputs))

    def default(result, inputs):
        return result

    return jax.lax.platform_dependent(result, inputs, cpu=cpu, default=default)


# ---------------------------------------------------------------- per-leaf views


def _is_flat(x) -> bool:
    return isinstance(x, FlatTree)


def leaf_views(tree: chex.ArrayTree) -> list[jax.Array]:
    """The user's original leaves, whatever the layout.

    For an ordinary pytree these are its leaves; inside a `jaxopt_edu.flat.FlatTree`
    they are views (slice + reshape) of the flat buffers at the recorded boundaries.
    Per-leaf transformations (trust ratios, per-matrix reshapes) work on these, so
    they run unchanged in both layouts.
    """
    out: list[jax.Array] = []
    for node in jax.tree.leaves(tree, is_leaf=_is_flat):
        out.extend(node.leaves() if _is_flat(node) else [node])
    return out


def from_leaf_views(like: chex.ArrayTree, leaves: list[jax.Array]) -> chex.ArrayTree:
    """Inverse of `leaf_views`: a tree laid out like `like` built from per-leaf arrays."""
    nodes, treedef = jax.tree.flatten(like, is_leaf=_is_flat)
    rebuilt, i = [], 0
    for node in nodes:
        if _is_flat(node):
            n = node.layout.num_leaves
            rebuilt.append(node.with_leaves(leaves[i : i + n]))
            i += n
        else:
            rebuilt.append(leaves[i])
            i += 1
    if i != len(leaves):
        raise ValueError(f"from_leaf_views: got {len(leaves)} leaves for a tree of {i}.")
    return jax.tree.unflatten(treedef, rebuilt)


def leaf_norms(tree: chex.ArrayTree) -> list[jax.Array]:
    """The L2 norm of each original leaf ($\\|x_i\\|_2$), in at least float32, as a list."""
    return [norm(x) for x in leaf_views(tree)]


def scale_leaves(tree: chex.ArrayTree, scalars: list[chex.Numeric]) -> chex.ArrayTree:
    """Multiply each original leaf by its own scalar: $x_i \\mapsto c_i x_i$ (dtypes kept)."""
    views = leaf_views(tree)
    if len(scalars) != len(views):
        raise ValueError(f"scale_leaves: {len(scalars)} scalars for {len(views)} leaves.")
    return from_leaf_views(tree, [scale(c, x) for c, x in zip(scalars, views, strict=True)])


def _units_of(node) -> list[tuple[str, int]]:
    from jaxopt_edu.flat import _units

    return list(_units(node.layout))


def leaf_groups(tree: chex.ArrayTree) -> tuple[list[jax.Array], list[bool]]:
    """The original leaves as work units: `(units, stacked)`, two aligned lists.

    $$\\text{unit} = x_i \\quad\\text{or}\\quad \\text{unit} = [x_{i_1}; \\dots; x_{i_k}]
    \\ (\\text{k leaves of one shape, stacked})$$

    A leaf of an ordinary pytree, or one that shares a buffer with leaves of other
    shapes, is a unit of its own (`stacked` False). A buffer of k leaves of one shape
    (`flat.ravel(..., group_by_shape=True)`; not scalars) is ONE unit, the buffer
    itself, its leaves stacked on the first axis (`stacked` True): `map_leaf_groups` runs per-leaf code
    on it through `jax.vmap`, so the whole group compiles to one set of kernels and
    its reductions read the buffer where it lies, with no slice copied out. Units come
    in the order of their leaves' first appearance; `from_leaf_groups` is the inverse.

    Used by adafactor's pieces, the trust ratio and muon.

    PyTorch: none; the nearest is `torch.func.vmap` over a stacked group of tensors.
    Pitfall: per-unit state must be built from `leaf_group_shapes` (a stacked unit's
    state is stacked too), not from `leaf_views`, or its length will not match.
    Reference: JAX's automatic vectorization, https://docs.jax.dev/en/latest/automatic-vectorization.html
    """
    from jaxopt_edu.flat import _view

    units: list[jax.Array] = []
    stacked: list[bool] = []
    for node in jax.tree.leaves(tree, is_leaf=_is_flat):
        if not _is_flat(node):
            units.append(node)
            stacked.append(False)
            continue
        for kind, i in _units_of(node):
            group = kind == "group"
            units.append(node.buffers[i] if group else _view(node.buffers, node.layout, i))
            stacked.append(group)
    return units, stacked


def leaf_group_shapes(tree: chex.ArrayTree) -> list[tuple[int | None, tuple[int, ...], Any]]:
    """`(k, leaf shape, dtype)` of every unit of `leaf_groups` (k None: a single leaf).

    $$\\operatorname{shape}(\\text{unit}) = (k, s_1, \\dots, s_d)\\ \\text{(stacked)}
    \\quad\\text{or}\\quad (s_1, \\dots, s_d)$$

    A unit's array has shape `(k, *shape)` when stacked, `shape` otherwise. Read from
    shapes and layouts only (nothing is sliced), so `init` can use it on abstract
    params (`jax.ShapeDtypeStruct` leaves).

    PyTorch: none.
    Pitfall: `shape` is ONE leaf's shape; prepend `(k,)` for a stacked unit's state.
    Reference: `jaxopt_edu.flat.Layout` (where the groups are recorded).
    """
    from jaxopt_edu.flat import _groups

    out: list[tuple[int | None, tuple[int, ...], Any]] = []
    for node in jax.tree.leaves(tree, is_leaf=_is_flat):
        if not _is_flat(node):
            out.append((None, tuple(np.shape(node)), np.dtype(node.dtype)))
            continue
        layout, groups = node.layout, _groups(node.layout)
        for kind, i in _units_of(node):
            if kind == "group":
                k, shape = groups[i]
                out.append((k, tuple(shape), np.dtype(layout.dtypes[i])))
            else:
                b, _, shape = layout.slots[i]
                out.append((None, tuple(shape), np.dtype(layout.dtypes[b])))
    return out


def leaf_group_indices(tree: chex.ArrayTree) -> list[list[int]]:
    """For every unit of `leaf_groups`, the indices of its original leaves.

    $$\\text{unit}_u = [x_{i} : i \\in I_u],\\qquad \\textstyle\\bigcup_u I_u = \\{0, \\dots, n-1\\}$$

    Indices count the leaves of the user's original pytree in `jax.tree.leaves`
    order (a `FlatTree` contributes its original leaves), so per-leaf data given
    for that pytree (weight-decay masks, say) can be gathered per unit: one index
    for a single leaf, k for a stacked group, in the group's stacking order.

    PyTorch: none.
    Pitfall: a stacked unit's per-leaf values must be stacked in this order to line
    up with its buffer's first axis.
    Reference: `jaxopt_edu.flat.Layout` (where the groups are recorded).
    """
    out: list[list[int]] = []
    base = 0
    for node in jax.tree.leaves(tree, is_leaf=_is_flat):
        if not _is_flat(node):
            out.append([base])
            base += 1
            continue
        slots = node.layout.slots
        for kind, i in _units_of(node):
            if kind == "group":
                out.append([base + j for j, (b, _, _) in enumerate(slots) if b == i])
            else:
                out.append([base + i])
        base += len(slots)
    return out


def map_leaf_groups(fn, stacked: list[bool], *args: list) -> list:
    """`fn` applied to every original leaf, one call per unit of `leaf_groups`.

    $$\\text{out}_u = f(a_u, b_u, \\dots)\\ \\text{or}\\ \\operatorname{vmap}(f)(a_u, b_u, \\dots)$$

    Each argument is a list aligned with the units (`leaf_groups`'s units, or per-unit
    state); `fn` receives one leaf's values. For a stacked unit it runs under
    `jax.vmap` over the first axis of every argument (a stacked unit's state is
    stacked alike; `None` passes through), and its outputs come back stacked.

    PyTorch: `torch.func.vmap` for the stacked units, a loop for the others.
    Pitfall: `fn` must treat each leaf on its own (shape-dependent Python branches are
    fine: every leaf of a unit has the same shape); values closed over are shared.
    Reference: JAX's automatic vectorization, https://docs.jax.dev/en/latest/automatic-vectorization.html
    """
    for a in args:
        if len(a) != len(stacked):
            raise ValueError(
                f"map_leaf_groups: an argument list of {len(a)} entries for {len(stacked)} units."
            )
    return [
        (jax.vmap(fn) if s else fn)(*values)
        for s, values in zip(stacked, zip(*args, strict=True), strict=True)
    ]


def from_leaf_groups(like: chex.ArrayTree, units: list[jax.Array]) -> chex.ArrayTree:
    """Inverse of `leaf_groups`: a tree laid out like `like`, from one array per unit.

    $$\\operatorname{from\\_leaf\\_groups}(t, \\operatorname{leaf\\_groups}(t)) = t$$

    A stacked unit's array becomes its buffer as it is (no copy); single leaves are
    packed into their buffers as by `from_leaf_views`.

    PyTorch: none.
    Pitfall: the units must come in `leaf_groups(like)`'s order, each with the shape
    of the unit it replaces.
    Reference: `jaxopt_edu.flat.FlatTree` (the buffers it rebuilds).
    """
    from jaxopt_edu.flat import FlatTree, _concat

    nodes, treedef = jax.tree.flatten(like, is_leaf=_is_flat)
    rebuilt, i = [], 0
    for node in nodes:
        if not _is_flat(node):
            rebuilt.append(units[i])
            i += 1
            continue
        layout = node.layout
        kinds = _units_of(node)
        if len(units) < i + len(kinds):
            raise ValueError(
                f"from_leaf_groups: got {len(units)} units; `like` has more. Pass one array "
                "per unit of `leaf_groups(like)`."
            )
        leaves: list[Any] = [None] * layout.num_leaves
        groups: dict[int, jax.Array] = {}
        for (kind, j), x in zip(kinds, units[i : i + len(kinds)], strict=True):
            if kind == "group":
                groups[j] = x
            else:
                leaves[j] = x
        i += len(kinds)
        buffers = _concat(leaves, layout, skip=set(groups))
        rebuilt.append(
            FlatTree(
                tuple(
                    jnp.reshape(groups[b], s) if b in groups else x
                    for b, (x, s) in enumerate(zip(buffers, layout.shapes, strict=True))
                ),
                layout,
            )
        )
    if i != len(units):
        raise ValueError(f"from_leaf_groups: got {len(units)} units for a tree of {i}.")
    return jax.tree.unflatten(treedef, rebuilt)


# ---------------------------------------------------------------- structure checks


def _paths_and_leaves(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)
    return [(jax.tree_util.keystr(p), x) for p, x in flat]


def check_match(
    tree: chex.ArrayTree, reference: chex.ArrayTree, name: str, ref_name: str, shapes: bool = True
) -> None:
    """Raise `ValueError` naming the first path where `tree` and `reference` differ.

    Both structure and (unless `shapes=False`) leaf shapes are compared (at trace time: it costs nothing in a
    compiled step). A `None` leaf in `reference` matches anything in `tree`, and the
    other way round, as `apply_updates` skips them.
    """

    def is_none(x):
        return x is None

    xs, tdef = jax.tree.flatten(tree, is_leaf=is_none)
    ys, rdef = jax.tree.flatten(reference, is_leaf=is_none)
    if tdef != rdef:  # paths are built only on the error path: they are slow on big trees
        a, b = _paths_and_leaves(tree), _paths_and_leaves(reference)
        pa, pb = [p for p, _ in a], [p for p, _ in b]
        extra = [p for p in pa if p not in set(pb)]
        missing = [p for p in pb if p not in set(pa)]
        if missing:
            where_ = f"`{name}` lacks {missing[0] or '<root>'}, which `{ref_name}` has"
        elif extra:
            where_ = f"`{name}` has {extra[0] or '<root>'}, which `{ref_name}` lacks"
        else:  # same paths, different node types (e.g. list vs tuple)
            where_ = "same paths but different container types"
        hint = (
            f"Pass a `{name}` tree built from the same params the optimizer was initialised with."
        )
        if _is_flat(tree) and _is_flat(reference):
            hint += (
                " Both are flat layouts, raveled differently: use the same `max_leaf_size`, "
                "`max_buffer_leaves` and `group_by_shape` in `flat.ravel` for both. "
                "`ravel`'s default `max_leaf_size` is 'auto' (65536 on a CPU, every leaf "
                "packed on an accelerator); a state made when it packed every leaf "
                "matches `flat.ravel(params, max_leaf_size=None)`."
            )
        raise ValueError(
            f"`{name}` does not match the structure of `{ref_name}`: {where_}.\n"
            f"  {name}: {jax.tree.structure(tree)}\n  {ref_name}: {jax.tree.structure(reference)}\n"
            + hint
        )
    if not shapes:
        return
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if x is None or y is None or np.shape(x) == np.shape(y):
            continue
        path = _paths_and_leaves(tree)[i][0]
        raise ValueError(
            f"`{name}` does not match `{ref_name}` at {path or '<root>'}: shape "
            f"{np.shape(x)} vs {np.shape(y)}. "
            f"Pass a `{name}` leaf with the shape of the param it belongs to."
        )


# ---------------------------------------------------------------- hyperparameters


def _hyper_nodes(state: chex.ArrayTree) -> list[tuple[str, HyperParams]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(
        state, is_leaf=lambda x: isinstance(x, HyperParams)
    )
    return [(jax.tree_util.keystr(p), x) for p, x in flat if isinstance(x, HyperParams)]


def _available(state) -> list[str]:
    return sorted({k for _, hp in _hyper_nodes(state) for k in hp.values})


def get_all_with_path(state: chex.ArrayTree, name: str) -> list[tuple[str, jax.Array]]:
    """Every hyperparameter called `name` in an optimizer state, with its path.

    Returns `[(path, value), ...]` (an empty list when there is none). Use it when a
    chain holds the same name twice (`get` refuses to guess which one you mean).
    """
    return [
        (f"{p}.values[{name!r}]", hp.values[name])
        for p, hp in _hyper_nodes(state)
        if name in hp.values
    ]


def get(state: chex.ArrayTree, name: str) -> jax.Array:
    """The value of hyperparameter `name` that the next `update` will use.

    `jaxopt_edu.tree.get(state, "learning_rate")` works on the state of any optimizer
    or chain of this library; for a schedule it is the schedule's value at the
    current step (or the value `set` put there).

    PyTorch: `optimizer.param_groups[0]["lr"]`.
    Pitfall: a chain that holds the name twice raises; use `get_all_with_path`.
    """
    found = get_all_with_path(state, name)
    if not found:
        raise KeyError(
            f"tree.get: no hyperparameter named {name!r} in this state; it has "
            f"{_available(state) or 'none'}. Use one of those names (an optimizer's argument "
            "name); values used only by `init` (e.g. initial_scale) are not kept in the state."
        )
    if len(found) > 1:
        paths = ", ".join(p for p, _ in found)
        raise KeyError(
            f"tree.get: {name!r} appears {len(found)} times in this state ({paths}). "
            "Use tree.get_all_with_path(state, name) and pick one."
        )
    return found[0][1]


def set(state: chex.ArrayTree, **values: chex.Numeric) -> chex.ArrayTree:  # noqa: A001
    """A copy of `state` whose hyperparameters `name=value` take effect from the next update.

    Values are cast to the stored dtype, so a jitted step does not recompile. Every
    occurrence of a name is set (a chain with two learning rates gets both). A
    hyperparameter built from a schedule stops following it and keeps the given value.
    To run many values at once, call it inside `jax.vmap`:
    `states = jax.vmap(lambda lr: tree.set(tx.init(params), learning_rate=lr))(lrs)`
    gives a batch of states (every leaf batched) for `jax.vmap(tx.update)`.
    Values are not range-checked here (they may be traced): an out-of-range value
    (b1 = 1) shows up as NaN updates.

    PyTorch: `for g in optimizer.param_groups: g["lr"] = value`.
    Pitfall: `set` returns a new state; the old one is unchanged (keep the result).
    """
    available = _available(state)
    unknown = [k for k in values if k not in available]
    if unknown:
        raise KeyError(
            f"tree.set: no hyperparameter named {unknown[0]!r} in this state; it has "
            f"{available or 'none'}. Use one of those names."
        )
    for k, v in values.items():
        if callable(v) or isinstance(v, str | bool):
            raise ValueError(
                f"tree.set: `{k}` must be a number or an array of numbers, got {v!r}. "
                "To use a new schedule, build a new optimizer."
            )

    def replace(node):
        if not isinstance(node, HyperParams):
            return node
        new_values, new_sched = dict(node.values), dict(node.scheduled)
        for k, v in values.items():
            if k in new_values:
                new_values[k] = jnp.asarray(v).astype(node.values[k].dtype)
                if k in new_sched:
                    new_sched[k] = jnp.zeros(jnp.shape(new_values[k]), bool)
        return HyperParams(values=new_values, scheduled=new_sched)

    return jax.tree.map(replace, state, is_leaf=lambda x: isinstance(x, HyperParams))
