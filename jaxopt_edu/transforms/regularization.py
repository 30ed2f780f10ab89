"""Regularization: L2 weight decay and two forms of L1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule
from jaxopt_edu.flat import FlatTree
from jaxopt_edu.hyper import NONNEG, Hyper, HyperParams

__all__ = ["RegularizationState", "add_decayed_weights", "add_l1_subgradient", "proximal_l1"]

MaskOrFn = Any | Callable[[Any], Any] | None


class RegularizationState(NamedTuple):
    """State of `add_decayed_weights`, `add_l1_subgradient` and `proximal_l1`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    hyperparams: HyperParams


def _need_params(owner, params):
    if params is None:
        raise ValueError(
            f"{owner} needs the params: call `update(updates, state, params)` with the "
            "current params as third argument."
        )


def _raise_prefix_mismatch(mask_tree, params) -> None:
    """Name the paths that keep `mask_tree` from being a prefix of `params`.

    A mask path is extra when it is no prefix of any params path; a params path is
    uncovered when no mask path is a prefix of it (a mask leaf covers a sub-tree)."""
    keystr = jax.tree_util.keystr
    mask_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(mask_tree)[0]]
    param_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]

    def is_prefix(a, b):
        return len(a) <= len(b) and tuple(b[: len(a)]) == tuple(a)

    extra = [keystr(m) for m in mask_paths if not any(is_prefix(m, q) for q in param_paths)]
    missing = [keystr(q) for q in param_paths if not any(is_prefix(m, q) for m in mask_paths)]
    parts = []
    if extra:
        parts.append(f"`mask` has {', '.join(extra[:5])}, which `params` lacks")
    if missing:
        parts.append(f"no `mask` entry covers {', '.join(missing[:5])} of `params`")
    if parts:
        raise ValueError(
            "; ".join(parts) + ". A mask is a tree of booleans like the params or a prefix "
            "of it (one boolean for a whole sub-tree), describing the original pytree."
        )
    tree.check_match(mask_tree, params, "mask", "params", shapes=False)  # raises, naming it


def _mask_tree(mask: MaskOrFn, params) -> Any:
    """The boolean mask tree (True = regularize this leaf); all True when mask is None."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    m = mask(params) if callable(mask) else mask
    mdef = jax.tree.structure(m)
    try:  # a mask may be a prefix of the params (one bool for a whole sub-tree), as in optax
        subtrees = mdef.flatten_up_to(params)
    except (ValueError, TypeError):
        _raise_prefix_mismatch(m, params)
        raise
    full = [
        jax.tree.map(lambda _, b=b: b, sub)
        for b, sub in zip(jax.tree.leaves(m), subtrees, strict=True)
    ]
    return jax.tree.unflatten(mdef, full)


def _is_flat(node) -> bool:
    return isinstance(node, FlatTree)


def _flat_mask(node: FlatTree, masks: list) -> Any:
    """The per-leaf masks of one FlatTree's original leaves, laid out like its buffers.

    A buffer whose leaves are all True (or all False) gets that Python bool, so the
    masked update costs nothing extra; a mixed buffer gets a boolean array built in
    the program from one `full` per run of equal leaves (no parameter-sized constant
    in the compiled program); traced per-leaf masks are broadcast and concatenated."""
    layout = node.layout
    per_buffer: list[list[tuple[Any, tuple[int, ...]]]] = [[] for _ in layout.sizes]
    for m, (b, _, shape) in zip(masks, layout.slots, strict=True):
        per_buffer[b].append((m, shape))
    out = []
    for parts, buffer_shape in zip(per_buffer, layout.shapes, strict=True):
        values = [m for m, _ in parts]
        if all(m is True for m in values):
            out.append(True)
        elif all(m is False for m in values):
            out.append(False)
        elif all(isinstance(m, bool) for m in values):
            runs: list[list] = []  # [value, length] of consecutive leaves with equal masks
            for m, shape in parts:
                size = int(np.prod(shape, dtype=np.int64))
                if runs and runs[-1][0] is m:
                    runs[-1][1] += size
                else:
                    runs.append([m, size])
            runs_1d = jnp.concatenate([jnp.full((n,), m) for m, n in runs])
            out.append(runs_1d.reshape(buffer_shape))  # 1-D, or (k, *shape) when grouped
        else:
            out.append(
                jnp.concatenate(
                    [
                        jnp.broadcast_to(jnp.asarray(m, bool), shape).reshape(-1)
                        for m, shape in parts
                    ]
                ).reshape(buffer_shape)
            )
    return FlatTree(tuple(out), layout)


def _mask_like_params(mask: MaskOrFn, params) -> Any:
    """`_mask_tree` for params that may hold `FlatTree` nodes.

    The mask (or the function making it) always describes the user's ORIGINAL pytree,
    whatever the layout: inside a FlatTree it is laid out like the buffers."""
    nodes = jax.tree.leaves(params, is_leaf=_is_flat)
    if mask is None or not any(_is_flat(n) for n in nodes):
        return _mask_tree(mask, params)
    user = jax.tree.map(lambda n: n.unravel() if _is_flat(n) else n, params, is_leaf=_is_flat)
    masks = jax.tree.leaves(_mask_tree(mask, user), is_leaf=lambda m: isinstance(m, bool))
    out, i = [], 0
    for node in nodes:
        n = node.layout.num_leaves if _is_flat(node) else 1
        out.append(_flat_mask(node, masks[i : i + n]) if _is_flat(node) else masks[i])
        i += n
    return jax.tree.unflatten(jax.tree.structure(params, is_leaf=_is_flat), out)


def _regularizer(owner, hyper_items, mask, fn) -> GradientTransformation:
    """A stateless per-leaf rule fn(g, p, values) -> update, applied where mask is True."""
    hyper = Hyper(owner, **hyper_items)

    def init_fn(params):
        del params
        return RegularizationState(count=hyper.init_count(), hyperparams=hyper.init())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _need_params(owner, params)
        tree.check_match(updates, params, "updates", "params")
        values = state.hyperparams.values

        def leaf(g, p, m):
            if m is False:  # a static False leaf of the mask: leave it alone
                return g
            dt = tree.promote(tree.compute_dtype(g), tree.compute_dtype(p))
            h = {k: v.astype(dt) for k, v in values.items()}
            new = fn(g.astype(dt), p.astype(dt), h).astype(g.dtype)
            return new if m is True else jnp.where(m, new, g)

        def node(g, p, m):  # g, p: an array or a FlatTree; m: its mask (laid out alike)
            if _is_flat(m):
                return jax.tree.map(leaf, g, p, m)
            return jax.tree.map(lambda gi, pi: leaf(gi, pi, m), g, p)

        masks = _mask_like_params(mask, params)
        out = jax.tree.map(node, updates, params, masks, is_leaf=_is_flat)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        return out, RegularizationState(count, hp_next)

    return GradientTransformation(init_fn, update_fn)


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: MaskOrFn = None
) -> GradientTransformation:
    """Add $\\lambda\\,\\theta$ to the updates (L2 regularization / weight decay).

    $$u_t = g_t + \\lambda\\, \\theta_{t-1}$$

    Placed before an adaptive scaling it is L2 regularization of the loss
    ($\\tfrac{\\lambda}{2}\\|\\theta\\|^2$); placed after it, just before the learning
    rate, it is decoupled weight decay (AdamW).

    Args:
      weight_decay: $\\lambda \\ge 0$.
      mask: a tree of booleans like the params, or a prefix of it (one boolean for
        a whole sub-tree), or a function params -> such a tree; False leaves are
        not decayed (biases, norms' scales).

    PyTorch: `weight_decay=` of `torch.optim.SGD`/`Adam` (before the scaling) and of
    `torch.optim.AdamW` (after it, multiplied by the learning rate).
    Pitfall: in Adam, L2 before the scaling is divided by sqrt(v) and barely
    regularizes weights with large gradients: use AdamW's decoupled form.
    Reference: Loshchilov & Hutter, Decoupled Weight Decay Regularization,
    https://arxiv.org/abs/1711.05101
    """
    return _regularizer(
        "add_decayed_weights",
        {"weight_decay": (weight_decay, NONNEG)},
        mask,
        lambda g, p, h: g + h["weight_decay"] * p,
    )


def add_l1_subgradient(l1_strength: ScalarOrSchedule = 0.0, mask: MaskOrFn = None):
    """Add the subgradient of $\\lambda\\|\\theta\\|_1$ to the updates.

    $$u_t = g_t + \\lambda\\, \\operatorname{sign}(\\theta_{t-1})$$

    Args:
      l1_strength: $\\lambda \\ge 0$.
      mask: as in `add_decayed_weights`.

    PyTorch: none built in (people add `lam * p.abs().sum()` to the loss, which
    gives the same gradient).
    Pitfall: weights oscillate around zero instead of becoming exactly zero; use
    `proximal_l1` when you want real sparsity.
    Reference: Tibshirani, The Lasso, 1996, https://doi.org/10.1111/j.2517-6161.1996.tb02080.x
    """
    return _regularizer(
        "add_l1_subgradient",
        {"l1_strength": (l1_strength, NONNEG)},
        mask,
        lambda g, p, h: g + h["l1_strength"] * jnp.sign(p),
    )


def proximal_l1(
    l1_strength: ScalarOrSchedule, learning_rate: ScalarOrSchedule, mask: MaskOrFn = None
) -> GradientTransformation:
    """Soft-threshold the parameters after the step (proximal gradient for L1).

    Put it LAST in a chain, after the learning rate. With $y = \\theta_{t-1} + u_t$
    (the step the chain proposes) and $\\tau = \\eta\\lambda$:

    $$\\theta_t = \\operatorname{sign}(y)\\max(|y| - \\tau, 0),\\qquad
    u'_t = \\theta_t - \\theta_{t-1}$$

    Args:
      l1_strength: $\\lambda \\ge 0$.
      learning_rate: $\\eta \\ge 0$, the same one the chain uses (a schedule too).
      mask: as in `add_decayed_weights`.

    PyTorch: none.
    Pitfall: the chain now has two `learning_rate`s; `tree.set(state,
    learning_rate=...)` sets both (as it should), and `tree.get` asks you to use
    `tree.get_all_with_path`.
    Reference: Parikh & Boyd, Proximal Algorithms, section 6.5.2,
    https://web.stanford.edu/~boyd/papers/pdf/prox_algs.pdf
    """

    def fn(u, p, h):
        y = p + u
        tau = h["l1_strength"] * h["learning_rate"]
        return jnp.sign(y) * jnp.maximum(jnp.abs(y) - tau, 0) - p

    return _regularizer(
        "proximal_l1",
        {"l1_strength": (l1_strength, NONNEG), "learning_rate": (learning_rate, NONNEG)},
        mask,
        fn,
    )
