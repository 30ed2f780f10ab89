"""Property checks for any gradient transformation: ours, optax's or your own.

Each `check_*` function tests one property of a transformation (anything with
`init(params)` and `update(updates, state, params=None, **extra_args)`) and raises
`AssertionError` when it does not hold. The message starts with the property's name
in brackets, says what went wrong and ends with how to fix it, e.g.
`[no_recompile] the second update compiled again: ...`. Call the checks from your
own tests; `check_all` runs every one of them:

    import jax
    import jax.numpy as jnp
    from jaxopt_edu.base import GradientTransformation
    from jaxopt_edu import testing

    def sign_sgd(learning_rate):  # u = -lr * sign(g)
        def init(params):
            return {"count": jnp.zeros([], jnp.int32)}

        def update(updates, state, params=None, **extra_args):
            updates = jax.tree.map(lambda g: -learning_rate * jnp.sign(g), updates)
            return updates, {"count": state["count"] + 1}

        return GradientTransformation(init, update)

    def test_sign_sgd():
        testing.check_all(sign_sgd(0.01), steps=1000, tol=0.05)

The checks need only jax and chex. By default they run on a small two-leaf tree of
float32 (shapes (3,) and (2, 2)); pass `params=` to use your own (real or complex
floats). They work under `jax_numpy_dtype_promotion="strict"` and
`jax_numpy_rank_promotion="raise"` as long as the transformation does.
"""

from __future__ import annotations

import builtins
import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_edu import tree
from jaxopt_edu.base import apply_updates

__all__ = [
    "CHECKS",
    "check_abstract_init",
    "check_all",
    "check_cond_stable",
    "check_converges",
    "check_descends_on_quadratic",
    "check_dtypes",
    "check_extra_args",
    "check_jit_matches_eager",
    "check_no_aliasing",
    "check_no_recompile",
]

CHECKS = (
    "extra_args",
    "abstract_init",
    "no_recompile",
    "cond_stable",
    "jit_matches_eager",
    "dtypes",
    "descends_on_quadratic",
    "converges",
    "no_aliasing",
)
"""Names of the properties, in the order `check_all` runs them (names for its `skip`)."""

_FIX_AVALS = (
    "create every state leaf in `init` with exactly the shape, dtype and weak type that "
    "`update` returns: e.g. `jnp.zeros([], jnp.int32)` for a step count (not `0`, `0.0` or "
    "`jnp.asarray(0.0)`), and cast new values back with `.astype(old.dtype)`."
)


# ---------------------------------------------------------------- helpers


def _fail(prop: str, what: str, fix: str) -> None:
    raise AssertionError(f"[{prop}] {what}\nHow to fix: {fix}")


@contextlib.contextmanager
def _reported_as(prop: str, what: str, fix: str, catch: Any = AssertionError) -> Iterator[None]:
    """Re-raise `catch` (a chex assertion by default) as a `[prop]` AssertionError."""
    try:
        yield
    except catch as e:
        raise AssertionError(f"[{prop}] {what}: {type(e).__name__}: {e}\nHow to fix: {fix}") from e


def _default_params() -> dict[str, jax.Array]:
    return {
        "w": jnp.array([1.0, -2.0, 3.0], jnp.float32),
        "b": jnp.array([[0.5, -1.5], [2.0, -0.25]], jnp.float32),
    }


def _params(params: chex.ArrayTree | None) -> chex.ArrayTree:
    return _default_params() if params is None else params


def _copy(values: chex.ArrayTree) -> chex.ArrayTree:
    """Fresh buffers for every leaf (donation deletes its inputs)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), values)


def _loss_dtype(leaves: Sequence[Any]) -> np.dtype:
    dt = tree.promote(jnp.float32, *(tree.compute_dtype(x) for x in leaves))
    return jnp.finfo(dt).dtype  # the real dtype, for complex params too


def _parabola(params: chex.ArrayTree) -> jax.Array:
    """$f(x) = \\tfrac12 \\sum_i a_i |x_i|^2$, curvatures $a_i$ spread over [1, 3] in each leaf."""
    leaves = jax.tree.leaves(params)
    dt = _loss_dtype(leaves)

    def leaf(x):
        x = x.astype(tree.compute_dtype(x))
        sq = (jnp.real(x) ** 2 + jnp.imag(x) ** 2).astype(dt)
        a = jnp.linspace(1.0, 3.0, x.size, dtype=dt).reshape(x.shape)
        return 0.5 * jnp.sum(a * sq)

    return builtins.sum((leaf(x) for x in leaves), jnp.zeros([], dt))


def _rosenbrock(params: chex.ArrayTree) -> jax.Array:
    """$f(z) = \\sum_i (1 - z_i)^2 + 100 (z_{i+1} - z_i^2)^2$ over all elements, in order."""
    leaves = jax.tree.leaves(params)
    dt = _loss_dtype(leaves)
    z = jnp.concatenate([jnp.real(x).astype(dt).ravel() for x in leaves])
    x, y = z[:-1], z[1:]
    return jnp.sum((1 - x) ** 2 + 100 * (y - x**2) ** 2)


class _Problem(NamedTuple):
    loss: Callable[[chex.ArrayTree], jax.Array]
    minimum: float  # every coordinate's value at the minimum
    start: Callable[[], chex.ArrayTree]
    steps: int
    tol: float


_PROBLEMS = {
    "parabola": _Problem(_parabola, 0.0, _default_params, 500, 1e-2),
    "rosenbrock": _Problem(
        _rosenbrock, 1.0, lambda: {"xy": jnp.array([-1.2, 1.0], jnp.float32)}, 5000, 1e-2
    ),
}


@jax.jit
def _grads(params: chex.ArrayTree) -> chex.ArrayTree:
    return jax.grad(_parabola)(params)


def _make_step(tx: Any, loss: Callable = _parabola) -> Callable:
    """One training step on `loss`: returns (new params, new state, updates)."""

    def step(params, state):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return apply_updates(params, updates), state, updates

    return step


def _aval(x: Any) -> tuple[tuple[int, ...], np.dtype, bool]:
    if isinstance(x, jax.ShapeDtypeStruct):
        return tuple(x.shape), np.dtype(x.dtype), bool(x.weak_type)
    typeof = getattr(jax, "typeof", None) or jax.core.get_aval
    a = typeof(x)
    return tuple(a.shape), np.dtype(a.dtype), bool(getattr(a, "weak_type", False))


def _fmt(aval: tuple[tuple[int, ...], np.dtype, bool]) -> str:
    shape, dtype, weak = aval
    return f"{'~' if weak else ''}{dtype.name}[{','.join(map(str, shape))}]"


def _aval_diff(a: chex.ArrayTree, b: chex.ArrayTree, name: str, when: tuple[str, str]) -> str:
    """Where the avals of `a` and `b` first differ ('' if nowhere)."""
    ta, tb = jax.tree.structure(a), jax.tree.structure(b)
    if ta != tb:
        return f"the structure of `{name}` changed:\n  {when[0]}: {ta}\n  {when[1]}: {tb}"
    flat, _ = jax.tree_util.tree_flatten_with_path(a)
    for (path, x), y in zip(flat, jax.tree.leaves(b), strict=True):
        ax, ay = _aval(x), _aval(y)
        if ax != ay:
            where = f"{name}{jax.tree_util.keystr(path)}"
            note = " (~ marks a weak type)" if ax[2] or ay[2] else ""
            return f"{where} is {_fmt(ax)} {when[0]} but {_fmt(ay)} {when[1]}{note}"
    return ""


def _as_numpy(values: chex.ArrayTree) -> chex.ArrayTree:
    """Leaves as float64/complex128 numpy arrays, so bool and int leaves compare too."""

    def f(x):
        x = np.asarray(x)
        return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)

    return jax.tree.map(f, values)


def _rtol(values: chex.ArrayTree) -> float:
    """A tight tolerance for the least precise float leaf of `tree`."""
    leaves = [x for x in jax.tree.leaves(values) if jnp.issubdtype(x.dtype, jnp.inexact)]
    eps = [float(jnp.finfo(x.dtype).eps) for x in leaves]
    return max([1e-5] + [8 * e for e in eps])


# ---------------------------------------------------------------- the checks


def check_descends_on_quadratic(
    tx: Any,
    *,
    learning_rate_free: bool = True,
    steps: int = 5,
    params: chex.ArrayTree | None = None,
) -> None:
    """The updates go downhill on $f(x) = \\tfrac12\\sum_i a_i x_i^2$, $a_i \\in [1, 3]$.

    Checks that the first update has a negative inner product with the gradient
    ($\\langle u_1, g_1\\rangle < 0$) and that `steps` updates lower the loss. With
    `learning_rate_free=True` each update is rescaled to a small fixed length (1% of
    $\\|x_0\\|$) before it is applied, so only its direction counts and any learning rate
    passes; with `False` the updates are applied as they are (the learning rate must
    suit the problem).

    Why it matters: updates are ADDED to the params, so a descent method must return
    minus a multiple of the gradient. Pitfall caught: the forgotten sign flip (a chain
    ending in `scale_by_adam()` or `scale(+lr)` climbs the loss).
    """
    prop = "descends_on_quadratic"
    params = _params(params)
    length = 0.01 * float(tree.norm(params)) or 0.01

    @jax.jit
    def step(x, state):
        grads = jax.grad(_parabola)(x)
        updates, state = tx.update(grads, state, x)
        inner = jnp.real(tree.vdot(updates, grads))
        if learning_rate_free:  # keep the direction, drop the length
            n = tree.norm(updates)
            updates = tree.scale(jnp.where(n > 0, length / n, 0.0), updates)
        x = apply_updates(x, updates)
        return x, state, inner, _parabola(x)

    x, state, losses = params, tx.init(params), [float(_parabola(params))]
    for t in range(steps):
        x, state, inner, loss = step(x, state)
        losses.append(float(loss))
        if t == 0:
            with _reported_as(
                prop,
                f"the first update does not point downhill: <update, grad> = {float(inner):.3g} "
                "(must be < 0)",
                "updates are added to the params, so return minus a multiple of the gradient: "
                "end the chain with `scale_by_learning_rate(lr)` (it flips the sign) or "
                "`scale(-lr)`.",
            ):
                chex.assert_scalar_negative(float(inner))
    if not losses[-1] < losses[0]:
        hint = (
            "the update directions stop pointing downhill after the first step: check the "
            "state's recursion (moments, momentum sign)."
            if learning_rate_free
            else "lower the learning rate, or pass `learning_rate_free=True` to test only "
            "the direction of the updates."
        )
        with _reported_as(prop, f"{steps} updates did not lower the loss: {losses}", hint):
            chex.assert_scalar_negative(losses[-1] - losses[0])


def check_jit_matches_eager(
    tx: Any, steps: int = 3, *, params: chex.ArrayTree | None = None
) -> None:
    """`jax.jit(update)` gives the same updates and states as calling `update` eagerly.

    Runs `steps` training steps both ways and compares them to a tight tolerance
    (1e-5 relative in float32). Why it matters: every real training loop is jitted,
    and a function that is pure gives the same numbers either way. Pitfall caught:
    Python side effects (a captured counter, a global, `np.random`) run once at
    trace time under `jit`, so the compiled step keeps reusing the first value.
    """
    params = _params(params)
    step = _make_step(tx)
    runs = []
    for fn in (step, jax.jit(step)):
        p, s, out = params, tx.init(params), []
        for _ in range(steps):
            p, s, u = fn(p, s)
            out.append((u, s))
        runs.append(out)
    rtol = _rtol(params)
    for t, (eager, jitted) in enumerate(zip(*runs, strict=True), start=1):
        with _reported_as(
            "jit_matches_eager",
            f"update {t} of {steps} differs between jax.jit and eager execution",
            "make `init` and `update` pure functions of their arguments: no Python counters, "
            "globals, `np.random` or other side effects; keep everything that changes in the "
            "state.",
        ):
            chex.assert_trees_all_close(
                _as_numpy(jitted), _as_numpy(eager), rtol=rtol, atol=rtol / 10
            )


def check_no_recompile(tx: Any, steps: int = 3, *, params: chex.ArrayTree | None = None) -> None:
    """A jitted step compiles once: the state's avals after `update` equal those after `init`.

    Counts how often `jax.jit` traces a training step over `steps` steps (it must be
    once) and compares shape, dtype and weak type of every state leaf before and
    after. Why it matters: a second compilation costs seconds to minutes on a big
    model, on every run. Pitfall caught: a leaf that changes type in `update`, e.g. an
    int32 step count that becomes float32, or a Python `0.0` that becomes a float32
    array.
    """
    params = _params(params)
    state0 = tx.init(params)
    traces = []

    def step(p, s):
        traces.append(None)  # runs only while jax traces (compiles) the step
        return _make_step(tx)(p, s)

    jitted = jax.jit(step)
    p, s = params, state0
    for _ in range(steps):
        p, s, _ = jitted(p, s)
    diff = _aval_diff(state0, s, "state", ("after init", f"after {steps} updates"))
    with _reported_as(
        "no_recompile",
        f"the second update compiled again: jax.jit traced the step {len(traces)} times in "
        f"{steps} updates. {diff or 'The state avals look equal: look for Python values.'}",
        _FIX_AVALS,
    ):
        chex.assert_equal(len(traces), 1)
    with _reported_as("no_recompile", f"the state's avals changed in update: {diff}", _FIX_AVALS):
        chex.assert_trees_all_equal_shapes_and_dtypes(state0, s)
        chex.assert_equal(diff, "")  # weak types too, which chex does not compare


def check_cond_stable(tx: Any, *, params: chex.ArrayTree | None = None) -> None:
    """`lax.cond(pred, update, identity)` traces: the state keeps its types through `update`.

    Traces `lax.cond(pred, lambda: tx.update(g, s, p), lambda: (g, s))`, the pattern
    that skips a step (non-finite gradients, gradient accumulation, a warmup gate).
    Why it matters: `lax.cond`, `lax.scan` and `fori_loop` need both branches (or the
    carry) to have identical types. Pitfall caught: a state dtype that changes between
    `init` and `update` (an int32 count becoming float32), or updates returned in a
    different dtype than the gradients.
    """
    params = _params(params)
    state, grads = tx.init(params), _grads(params)

    def skip_or_step(pred, g, s, p):
        return jax.lax.cond(pred, lambda: tx.update(g, s, p), lambda: (g, s))

    try:
        jax.eval_shape(skip_or_step, True, grads, state, params)
    except TypeError as e:
        new_updates, new_state = jax.eval_shape(tx.update, grads, state, params)
        when = ("from init", "from update")
        diff = _aval_diff(state, new_state, "state", when) or _aval_diff(
            grads, new_updates, "updates", ("as gradients", "from update")
        )
        raise AssertionError(
            f"[cond_stable] lax.cond(pred, update, identity) does not trace: {diff or e}\n"
            f"How to fix: {_FIX_AVALS} Return updates in the gradients' dtype."
        ) from e


def check_extra_args(tx: Any, *, params: chex.ArrayTree | None = None) -> None:
    """`update(g, s, p, some_unknown_arg=1.0)` is accepted (and ignored).

    Why it matters: a chain passes keyword arguments meant for one member (a line
    search's `value`, `grad`, `value_fn`) to every member. Pitfall caught: an `update`
    written as `update(updates, state, params=None)` with no `**extra_args`.
    """
    params = _params(params)
    state, grads = tx.init(params), _grads(params)
    with _reported_as(
        "extra_args",
        "update(updates, state, params, some_unknown_arg=1.0) raised",
        "give `update` a `**extra_args` parameter and ignore what it does not use, or wrap "
        "the transformation: `jaxopt_edu.with_extra_args_support(tx)`.",
        catch=TypeError,
    ):
        jax.eval_shape(
            lambda g, s, p: tx.update(g, s, p, some_unknown_arg=1.0), grads, state, params
        )


def check_dtypes(
    tx: Any,
    dtypes: Sequence[Any] = (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64),
    *,
    params: chex.ArrayTree | None = None,
) -> None:
    """Params and gradients of each dtype give finite updates of that dtype and shape.

    For every dtype in `dtypes` (64-bit ones are skipped unless `jax_enable_x64` is
    on), casts the params, takes one update and checks the updates' dtypes and shapes,
    that they are finite, and that the state's avals did not change. Why it matters:
    mixed-precision training feeds bfloat16/float16 gradients, and an update of a
    wider dtype doubles memory and changes the params' dtype downstream. Pitfall
    caught: arithmetic with a float32 hyperparameter silently promoting bfloat16
    updates to float32; an `eps` that underflows to 0 in float16 (0/0 = NaN).
    """
    base = _params(params)
    for dtype in dtypes:
        name = np.dtype(dtype).name
        if jax.dtypes.canonicalize_dtype(dtype) != np.dtype(dtype):
            continue  # e.g. float64 while jax_enable_x64 is off
        p = jax.tree.map(lambda x, dtype=dtype: x.astype(dtype), base)
        state = tx.init(p)
        # ordinary gradients, then tiny ones (1e-4: their squares underflow in float16)
        for scale in (1.0, 1e-4):
            grads = jax.tree.map(
                lambda g, s=scale: (g.astype(jnp.float32) * s).astype(g.dtype), _grads(p)
            )
            updates, new_state = jax.jit(tx.update)(grads, state, p)
            _check_update_dtypes(name, scale, updates, grads, state, new_state)


def _check_update_dtypes(name, scale, updates, grads, state, new_state) -> None:
    """The `dtypes` property for one dtype and gradient scale."""
    with _reported_as(
        "dtypes",
        f"{name} gradients (scale {scale:g}) gave updates of another dtype or shape",
        "compute in float32 if you like, but cast each update back to its gradient's "
        "dtype (`.astype(g.dtype)`); cast hyperparameters to the leaf's dtype before "
        "multiplying.",
    ):
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, grads)
    with _reported_as(
        "dtypes",
        f"{name} gradients (scale {scale:g}) gave non-finite updates",
        "compute in at least float32 and keep `eps` above the dtype's smallest normal "
        "number (float16: 6e-5).",
    ):
        chex.assert_tree_all_finite(updates)
    diff = _aval_diff(state, new_state, "state", ("after init", "after update"))
    if diff:
        _fail("dtypes", f"with {name} params the state changed: {diff}.", _FIX_AVALS)


def check_abstract_init(tx: Any, *, params: chex.ArrayTree | None = None) -> None:
    """`init` runs on `jax.ShapeDtypeStruct` params and gives the same avals as on arrays.

    Runs `jax.eval_shape(tx.init, abstract_params)` and compares shapes, dtypes and
    weak types with `tx.init(params)`. Why it matters: large models build the
    optimizer state abstractly to plan sharding and memory before allocating
    anything. Pitfall caught: an `init` that reads param VALUES in Python (`float(...)`,
    `np.asarray(p)`, `if p.sum() > 0`), which fails on abstract values.
    """
    params = _params(params)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), params
    )
    with _reported_as(
        "abstract_init",
        "init failed on jax.ShapeDtypeStruct params (jax.eval_shape(tx.init, ...))",
        "build the state from the params' shapes and dtypes only (`jnp.zeros(p.shape, "
        "p.dtype)`), never from their values in Python.",
        catch=Exception,
    ):
        abstract_state = jax.eval_shape(tx.init, abstract)
    concrete_state = tx.init(params)
    diff = _aval_diff(concrete_state, abstract_state, "state", ("on arrays", "on abstract params"))
    with _reported_as(
        "abstract_init",
        f"init gives different state avals on abstract params: {diff}",
        "derive every state leaf's shape and dtype from the param's shape and dtype.",
    ):
        chex.assert_trees_all_equal_shapes_and_dtypes(concrete_state, abstract_state)
        chex.assert_equal(diff, "")


def check_converges(
    tx: Any,
    problem: str = "parabola",
    steps: int | None = None,
    tol: float | None = None,
    *,
    params: chex.ArrayTree | None = None,
) -> None:
    """`steps` updates in a jitted `lax.fori_loop` end within `tol` of the minimum.

    Problems: `"parabola"`, $\\tfrac12\\sum_i a_i x_i^2$ with minimum 0 (default start:
    the default params; 500 steps, tol 1e-2), and `"rosenbrock"`,
    $\\sum_i (1-z_i)^2 + 100(z_{i+1}-z_i^2)^2$ with minimum (1, ..., 1) (default start
    (-1.2, 1); 5000 steps, tol 1e-2). The distance is the Euclidean norm over all
    leaves. You choose the learning rate (in `tx`), `steps` and `tol`. Why it matters:
    it catches wrong math that still points downhill at first. Pitfall caught: a
    learning rate too large (divergence, NaN) or a step that never shrinks.
    """
    if problem not in _PROBLEMS:
        raise ValueError(
            f"check_converges: `problem` must be one of {list(_PROBLEMS)}, got {problem!r}."
        )
    prob = _PROBLEMS[problem]
    p0 = prob.start() if params is None else params
    steps = prob.steps if steps is None else steps
    tol = prob.tol if tol is None else tol
    step = _make_step(tx, prob.loss)

    def run(p, s):
        return jax.lax.fori_loop(0, steps, lambda _, c: step(*c)[:2], (p, s))

    with _reported_as(
        "converges",
        "the optimizer cannot run inside a jitted lax.fori_loop",
        _FIX_AVALS + " See also check_no_recompile and check_cond_stable.",
        catch=TypeError,
    ):
        p, _ = jax.jit(run)(p0, tx.init(p0))
    dist = float(tree.norm(jax.tree.map(lambda x: x - prob.minimum, p)))
    with _reported_as(
        "converges",
        f"after {steps} steps on {problem} the distance to the minimum is {dist:.3g} "
        f"(tol {tol:g}); the loss went from {float(prob.loss(p0)):.3g} to "
        f"{float(prob.loss(p)):.3g}",
        "if the loss grew or is NaN, lower the learning rate; if it fell slowly, raise "
        "the learning rate or `steps`; a fixed-size step (sign methods) needs a `tol` "
        "above its step size or a decaying schedule.",
    ):
        chex.assert_scalar_in(dist, 0.0, tol)  # NaN fails too


def _buffers(x: Any) -> builtins.set[int]:
    """Addresses of the device buffers behind a jax array (empty for anything else)."""
    if not isinstance(x, jax.Array) or x.size == 0:
        return builtins.set()
    try:
        return {s.data.unsafe_buffer_pointer() for s in x.addressable_shards}
    except Exception:  # deleted arrays or backends without raw pointers
        return builtins.set()


def _assert_no_alias(state: chex.ArrayTree, params: chex.ArrayTree, when: str) -> None:
    param_leaves = jax.tree.leaves(params)
    param_buffers = builtins.set().union(*(_buffers(p) for p in param_leaves))
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if any(leaf is p for p in param_leaves) or _buffers(leaf) & param_buffers:
            _fail(
                "no_aliasing",
                f"the state {when} shares a buffer with a param: state"
                f"{jax.tree_util.keystr(path)}. Donating params and state "
                "(`jax.jit(step, donate_argnums=...)`) then fails or corrupts the state.",
                "store a copy (`jnp.array(p, copy=True)` or `jnp.zeros_like(p)`), never the "
                "param itself; note `p.astype(p.dtype)` returns `p` unchanged.",
            )


def check_no_aliasing(tx: Any, *, params: chex.ArrayTree | None = None) -> None:
    """The state never shares a buffer with the params, so donating both is safe.

    Checks that no state leaf (after `init` and after one `update`) is a param leaf
    or shares its device buffer, then runs two steps of
    `jax.jit(step, donate_argnums=(0, 1))` (params and state donated) and compares
    them with the same steps without donation. Why it matters: donation lets XLA
    update params and state in place, halving the memory of a training step.
    Pitfall caught: a state that keeps the params themselves (`init = lambda p:
    {"z": p}`, or `p.astype(p.dtype)`, which is `p`): donation then fails with
    "Attempt to donate the same buffer twice", or reads a deleted buffer.
    """
    params = _copy(_params(params))
    state = tx.init(params)
    _assert_no_alias(state, params, "after init")
    _, state = tx.update(_grads(params), state, params)
    _assert_no_alias(state, params, "after update")

    step = _make_step(tx)

    def two_steps(fn):
        p = _copy(params)
        s = tx.init(p)
        for _ in range(2):
            p, s, _ = fn(p, s)
        return p, s

    want = two_steps(jax.jit(step))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*donated buffers were not usable")
        with _reported_as(
            "no_aliasing",
            "two steps of jax.jit(step, donate_argnums=(0, 1)) failed",
            "never return or keep an input buffer (a param or an old state leaf) in the new "
            "state; store copies.",
            catch=Exception,
        ):
            got = two_steps(jax.jit(step, donate_argnums=(0, 1)))
    with _reported_as(
        "no_aliasing",
        "donating params and state changed the numbers",
        "the state must not share buffers with the params or read a donated input after "
        "the step; store copies.",
    ):
        chex.assert_trees_all_close(_as_numpy(got), _as_numpy(want), rtol=1e-6, atol=1e-7)


def check_all(
    tx: Any,
    *,
    skip: Sequence[str] = (),
    converge_on: Sequence[str] = ("parabola",),
    steps: int | Mapping[str, int] | None = None,
    tol: float | Mapping[str, float] | None = None,
    learning_rate_free: bool = True,
    params: chex.ArrayTree | None = None,
) -> None:
    """Run every check (in the order of `CHECKS`) except those named in `skip`.

    Args:
      tx: the transformation, built with the learning rate `check_converges` uses.
      skip: names from `CHECKS` to leave out (e.g. `"dtypes"` for a float32-only method).
      converge_on: the problems of `check_converges` ("parabola", "rosenbrock").
      steps: for `check_converges`; a number, or a dict keyed by problem.
      tol: for `check_converges`; a number, or a dict keyed by problem.
      learning_rate_free: passed to `check_descends_on_quadratic`.
      params: the tree every check starts from (Rosenbrock keeps its own start).

    Raises the first failing check's `AssertionError` (`[name] what... How to fix`).
    Pitfall: one transformation rarely suits both problems with the same learning
    rate and step count; give per-problem `steps`/`tol` or check them separately.
    """
    skip = (skip,) if isinstance(skip, str) else tuple(skip)
    unknown = [s for s in skip if s not in CHECKS]
    if unknown:
        raise ValueError(
            f"check_all: unknown names in `skip`: {unknown}. Valid names: {list(CHECKS)}."
        )

    def pick(value, problem):
        return value.get(problem) if isinstance(value, Mapping) else value

    for name in (n for n in CHECKS if n not in skip):
        if name == "converges":
            for problem in converge_on:
                start = params if problem == "parabola" else None
                check_converges(tx, problem, pick(steps, problem), pick(tol, problem), params=start)
        elif name == "descends_on_quadratic":
            check_descends_on_quadratic(tx, learning_rate_free=learning_rate_free, params=params)
        else:
            globals()[f"check_{name}"](tx, params=params)
