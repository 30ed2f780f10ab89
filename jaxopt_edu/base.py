"""The two-function gradient transformation and the pieces every transform shares.

A `GradientTransformation` is a pair of pure functions:

* `init(params) -> state` builds the optimizer state for a tree of parameters;
* `update(updates, state, params=None, **extra_args) -> (updates, state)` turns
  gradients into updates and advances the state.

Nothing else is hidden anywhere: no globals, no Python side effects. That is what
lets a step run under `jit`, `vmap`, `lax.scan`, `lax.cond` and `grad`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp

Params = chex.ArrayTree
"""A pytree of arrays holding a model's parameters $\\theta$ (nested dicts, lists, tuples)."""
Updates = chex.ArrayTree
"""A pytree shaped like the params: gradients $g_t$ going into `update`, updates $u_t$ coming out."""
OptState = chex.ArrayTree
"""An optimizer state: the pytree `init` returns and `update` advances (NamedTuples here)."""
Schedule = Callable[[chex.Numeric], chex.Numeric]
"""A pure function of the step count $t$ (an int32 array) to a value, e.g. $\\eta_t$."""
ScalarOrSchedule = float | jax.Array | Schedule
"""A hyperparameter given as a number (held constant) or as a `Schedule` of the step count."""

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "OptState",
    "Params",
    "ScalarOrSchedule",
    "Schedule",
    "Updates",
    "apply_updates",
    "apply_updates_stochastic",
    "identity",
    "incremental_update",
    "periodic_update",
    "set_to_zero",
    "stateless",
    "with_extra_args_support",
]


class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """A pair of pure functions `(init, update)`: the unit everything composes from.

    $$s_0 = \\mathrm{init}(\\theta_0),\\qquad (u_t, s_t) = \\mathrm{update}(g_t, s_{t-1}, \\theta_{t-1})$$

    and the caller applies $\\theta_t = \\theta_{t-1} + u_t$ with `apply_updates`. Every
    transformation of this library also accepts (and ignores) unknown keyword
    arguments in `update`, so it can sit in a chain with one that needs them.

    PyTorch: `torch.optim.Optimizer` keeps the state inside the object and mutates
    the params in `step()`; here the state is a value you pass in and get back.
    Pitfall: forgetting to keep the returned state (`updates, state = ...`) silently
    restarts the optimizer every step.
    Reference: optax's design, https://github.com/google-deepmind/optax
    """

    init: TransformInitFn
    update: TransformUpdateFn


class GradientTransformationExtraArgs(GradientTransformation):
    """A `GradientTransformation` whose `update` is declared to take `**extra_args`.

    Same math and use as `GradientTransformation`; the type tells a chain that the
    transformation wants keyword arguments such as `value` or `grad` (a line search
    does). All transformations built here accept extra arguments, so the difference
    only matters for transformations written elsewhere (see
    `with_extra_args_support`).

    PyTorch: `Optimizer.step(closure)` is the nearest thing.
    Pitfall: a misspelled keyword is ignored, not reported.
    Reference: optax.GradientTransformationExtraArgs.
    """


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none (an empty tuple).

    PyTorch: an optimizer with an empty `state` dict.
    Pitfall: none.
    Reference: optax.EmptyState.
    """


def _accepts_extra_args(fn: Callable) -> bool:
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and odd callables: assume not
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def with_extra_args_support(tx: GradientTransformation) -> GradientTransformationExtraArgs:
    """Wrap a transformation whose `update(updates, state, params)` takes no `**extra_args`.

    $$\\mathrm{update}'(g, s, \\theta, **kw) = \\mathrm{update}(g, s, \\theta)$$

    Use it for a transformation written for an older optax API before chaining it
    with transformations that receive extra arguments. Transformations that already
    accept `**extra_args` are returned unchanged (as the ExtraArgs type).

    PyTorch: none.
    Pitfall: the wrapped update never sees the extra arguments.
    Reference: optax.with_extra_args_support.
    """
    if not callable(getattr(tx, "init", None)) or not callable(getattr(tx, "update", None)):
        raise TypeError(
            f"with_extra_args_support: `tx` must have callable `init` and `update`, got {tx!r}. "
            "Pass a GradientTransformation."
        )
    if _accepts_extra_args(tx.update):
        return GradientTransformationExtraArgs(tx.init, tx.update)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return tx.update(updates, state, params)

    return GradientTransformationExtraArgs(tx.init, update_fn)


def identity() -> GradientTransformation:
    """Pass updates through unchanged: $u_t = g_t$.

    PyTorch: none (an optimizer with lr=1 and no sign flip).
    Pitfall: on its own it climbs the loss; it is a building block, not an optimizer.
    Reference: optax.identity.
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return GradientTransformation(init_fn, update_fn)


def set_to_zero() -> GradientTransformation:
    """Replace every update by zeros: $u_t = 0$ (freezes the params it sees).

    PyTorch: `param.requires_grad_(False)`.
    Pitfall: gradients are still computed; stop them at the source if the cost matters.
    Reference: optax.set_to_zero.
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.zeros_like, updates), state

    return GradientTransformation(init_fn, update_fn)


def stateless(f: Callable[[Updates, Params | None], Updates]) -> GradientTransformation:
    """Turn a function `f(updates, params) -> updates` into a stateless transformation.

    $$u_t = f(g_t, \\theta_{t-1})$$

    PyTorch: none.
    Pitfall: `f` must be traceable (no Python branching on values).
    Reference: optax.stateless.
    """
    if not callable(f):
        raise TypeError(f"stateless: `f` must be callable f(updates, params), got {f!r}.")

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return f(updates, params), state

    return GradientTransformation(init_fn, update_fn)


def _add_keep_dtype(p, u):
    from jaxopt_edu.tree import promote

    dtype = promote(p.dtype, u.dtype)
    return (p.astype(dtype) + u.astype(dtype)).astype(p.dtype)


def apply_updates(params: Params, updates: Updates) -> Params:
    """Return $\\theta + u$, leaf by leaf, each result in its param's dtype.

    $$\\theta_t = \\theta_{t-1} + u_t$$

    The sum is computed in the wider of the two dtypes, then cast back to the
    param's dtype (a bfloat16 param stays bfloat16). `None` leaves of `params` are
    skipped.

    PyTorch: the in-place `param.add_(update)` inside `Optimizer.step()`.
    Pitfall: in bfloat16 a small update can round away entirely.
    Reference: optax.apply_updates.
    """
    from jaxopt_edu import tree as _tree

    _tree.check_match(updates, params, "updates", "params")
    return jax.tree.map(
        lambda p, u: None if p is None else _add_keep_dtype(jnp.asarray(p), jnp.asarray(u)),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


def incremental_update(
    new_tensors: chex.ArrayTree, old_tensors: chex.ArrayTree, step_size: chex.Numeric
) -> chex.ArrayTree:
    """Polyak averaging: $\\bar x = \\tau x_{new} + (1 - \\tau) x_{old}$, leaf by leaf.

    PyTorch: `torch.optim.swa_utils.AveragedModel` with an EMA `avg_fn`.
    Pitfall: `step_size` is the weight of the NEW values (tau = 1 copies them).
    Reference: Polyak & Juditsky 1992, https://doi.org/10.1137/0330046
    """
    from jaxopt_edu import tree as _tree

    _tree.check_match(new_tensors, old_tensors, "new_tensors", "old_tensors")
    return jax.tree.map(
        lambda n, o: _tree.lerp(o, n, step_size),
        new_tensors,
        old_tensors,
    )


def periodic_update(
    new_tensors: chex.ArrayTree,
    old_tensors: chex.ArrayTree,
    steps: chex.Array,
    update_period: int,
) -> chex.ArrayTree:
    """Take `new_tensors` every `update_period` steps, else keep `old_tensors`.

    $$x = x_{new}\\ \\text{if}\\ t \\bmod P = 0\\ \\text{else}\\ x_{old}$$

    PyTorch: none (done by hand for target networks).
    Pitfall: step 0 counts as a multiple of the period, so the first call copies.
    Reference: Mnih et al., DQN target networks, https://doi.org/10.1038/nature14236
    """
    if not isinstance(update_period, int) or update_period < 1:
        raise ValueError(
            f"periodic_update: `update_period` must be a positive int, got {update_period!r}."
        )
    from jaxopt_edu import tree as _tree

    _tree.check_match(new_tensors, old_tensors, "new_tensors", "old_tensors")
    take_new = jnp.mod(steps, update_period) == 0
    return jax.lax.cond(take_new, lambda: new_tensors, lambda: old_tensors)


def _stochastic_round_to_bfloat16(x: jax.Array, key: jax.Array) -> jax.Array:
    """Round float32 `x` to bfloat16 up or down with probability given by the distance."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    noise = jax.random.bits(key, x.shape, jnp.uint32) >> 16  # uniform in [0, 2^16)
    rounded = (bits + noise) & jnp.uint32(0xFFFF0000)  # carry into the kept bits, drop the rest
    finite = jnp.isfinite(x)
    out = jax.lax.bitcast_convert_type(rounded, jnp.float32)
    return jnp.where(finite, out, x).astype(jnp.bfloat16)


def apply_updates_stochastic(params: Params, updates: Updates, key: jax.Array) -> Params:
    """`apply_updates` with stochastic rounding for bfloat16 params.

    The sum $y = \\theta + u$ is computed in float32, then rounded to a neighbouring
    bfloat16 value at random, up with probability equal to $y$'s distance from the
    lower neighbour divided by the gap, so that $\\mathbb{E}[\\mathrm{round}(y)] = y$.
    Updates smaller than half a bfloat16 ulp then still move the params on average,
    instead of being rounded away every step. Leaves of other dtypes are added as in
    `apply_updates`.

    Args:
      params: the params $\\theta$, as in `apply_updates`.
      updates: the updates $u$, a tree like `params`.
      key: a `jax.random` key; use a new one every step (e.g. `fold_in(key, step)`).

    PyTorch: none built in (used by bf16 training recipes and some fused kernels).
    Pitfall: reusing the same key every step correlates the rounding and loses the
    unbiasedness; the result is random, so runs are reproducible only with the same keys.
    Reference: Gupta et al., Deep Learning with Limited Numerical Precision,
    https://arxiv.org/abs/1502.02551
    """
    from jaxopt_edu import tree as _tree

    _tree.check_match(updates, params, "updates", "params")
    leaves, treedef = jax.tree.flatten(params, is_leaf=lambda x: x is None)
    ups = treedef.flatten_up_to(updates)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for p, u, k in zip(leaves, ups, keys, strict=False):
        if p is None:
            out.append(None)
        elif jnp.asarray(p).dtype == jnp.bfloat16:
            y = jnp.asarray(p).astype(jnp.float32) + jnp.asarray(u).astype(jnp.float32)
            out.append(_stochastic_round_to_bfloat16(y, k))
        else:
            out.append(_add_keep_dtype(jnp.asarray(p), jnp.asarray(u)))
    return jax.tree.unflatten(treedef, out)
