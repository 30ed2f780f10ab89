"""Flat parameter layout: one contiguous buffer per dtype, the pytree as a view.

A model's parameters usually come as a pytree of many arrays. An optimizer that
walks that tree leaf by leaf launches one small loop per leaf and compiles one
fusion per leaf: fine for a few big leaves, slow for thousands of small ones. Here
the params (and therefore the gradients and every optimizer moment) live in a
`FlatTree`: one 1-D buffer per dtype, plus a static `Layout` that records where
each original leaf sits. Every elementwise transformation of the library works
on it unchanged (a `FlatTree` is a pytree whose leaves are the buffers), so the
whole Adam step is one fused loop per dtype.

The training loop::

    fparams = flat.ravel(params)                 # once
    opt_state = optimizer.init(fparams)

    @jax.jit
    def step(fparams, opt_state, batch):
        grads = jax.grad(lambda fp: loss(fp.unravel(), batch))(fparams)  # flat grads
        updates, opt_state = optimizer.update(grads, opt_state, fparams)
        return apply_updates(fparams, updates), opt_state

`fp.unravel()` gives the user's pytree as views (slices and reshapes of the
buffers, fused into their consumers by XLA); its gradient is written straight
back into one buffer, so gradients arrive flat.

Per-leaf computations (trust ratios, per-matrix reshapes) see the original leaves
through `jaxopt_edu.tree.leaf_views` and `jaxopt_edu.tree.from_leaf_views`, which
read the recorded boundaries; the same transformation code runs in both layouts.

PyTorch: FSDP's `FlatParameter` and Apex's multi-tensor apply rest on the same idea.
Pitfall: changing the set or the shapes of the params changes the layout; build a
new `FlatTree` (and optimizer state) after such a change.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FlatTree", "FlattenState", "Layout", "flatten", "ravel"]


class Layout(NamedTuple):
    """Where each leaf of the original pytree lives in the flat buffers (static, hashable).

    `slots[i] = (buffer, offset, shape)` for the i-th leaf in `treedef` order;
    `dtypes[b]` and `sizes[b]` describe buffer `b`.
    """

    treedef: Any
    dtypes: tuple[str, ...]
    sizes: tuple[int, ...]
    slots: tuple[tuple[int, int, tuple[int, ...]], ...]

    @property
    def num_leaves(self) -> int:
        return len(self.slots)


def _layout_of(tree: chex.ArrayTree, max_leaf_size: int | None = None) -> Layout:
    """One shared buffer per dtype; a leaf of more than `max_leaf_size` elements gets a
    buffer of its own (a reshape of the leaf: no copy inside `jit`)."""
    leaves, treedef = jax.tree.flatten(tree)
    dtypes: list[str] = []
    sizes: list[int] = []
    shared: dict[str, int] = {}
    slots = []
    for leaf in leaves:
        name = np.dtype(leaf.dtype).name
        size = int(np.prod(leaf.shape, dtype=np.int64))
        if max_leaf_size is not None and size > max_leaf_size:
            dtypes.append(name)
            sizes.append(size)
            slots.append((len(dtypes) - 1, 0, tuple(leaf.shape)))
            continue
        if name not in shared:
            shared[name] = len(dtypes)
            dtypes.append(name)
            sizes.append(0)
        b = shared[name]
        slots.append((b, sizes[b], tuple(leaf.shape)))
        sizes[b] += size
    return Layout(treedef, tuple(dtypes), tuple(sizes), tuple(slots))


def _check_max_leaf_size(owner: str, max_leaf_size) -> None:
    if max_leaf_size is not None and (
        isinstance(max_leaf_size, bool | np.bool_)
        or not isinstance(max_leaf_size, Integral)
        or max_leaf_size < 0
    ):
        raise ValueError(
            f"{owner}: `max_leaf_size` must be None or an integer >= 0, got {max_leaf_size!r}."
        )


@jax.tree_util.register_pytree_node_class
class FlatTree:
    """A pytree stored as one 1-D buffer per dtype, with its `Layout`.

    Its pytree leaves are the buffers, so `jax.tree.map`, `jax.grad`, `jit`,
    `vmap` and every elementwise transformation treat it as a tree of a few large
    arrays. `unravel()` returns the original pytree (views of the buffers).
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers, layout: Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten(self):
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout, buffers):
        return cls(buffers, layout)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{d}[{n}]" for d, n in zip(self.layout.dtypes, self.layout.sizes, strict=True)
        )
        return f"FlatTree({parts}; {self.layout.num_leaves} leaves)"

    def leaves(self) -> list[jax.Array]:
        """The original leaves, each a view (slice + reshape) of its buffer."""
        return _split(self.buffers, self.layout)

    def unravel(self) -> chex.ArrayTree:
        """The original pytree, as views of the buffers (differentiable: grads come back flat)."""
        return jax.tree.unflatten(self.layout.treedef, _unravel_leaves(self.buffers, self.layout))

    def with_leaves(self, leaves) -> FlatTree:
        """A FlatTree of the same layout built from per-leaf arrays (shapes as recorded)."""
        return FlatTree(_concat(leaves, self.layout), self.layout)


def _split(buffers, layout: Layout) -> list[jax.Array]:
    out = []
    for b, off, shape in layout.slots:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(jax.lax.slice_in_dim(buffers[b], off, off + size).reshape(shape))
    return out


def _concat(leaves, layout: Layout) -> tuple[jax.Array, ...]:
    per_buffer: list[list[jax.Array]] = [[] for _ in layout.dtypes]
    for (b, _, _), leaf in zip(layout.slots, leaves, strict=True):
        per_buffer[b].append(jnp.ravel(leaf))
    return tuple(jnp.concatenate(parts) if len(parts) > 1 else parts[0] for parts in per_buffer)


def _unravel_leaves(buffers, layout: Layout):
    return _unravel_with_layout(layout)(tuple(buffers))


def _unravel_with_layout(layout: Layout):
    @jax.custom_vjp
    def unravel(buffers):
        return _split(buffers, layout)

    def fwd(buffers):
        return _split(buffers, layout), None

    def bwd(_, cotangents):
        # the transpose of slicing is writing each leaf's cotangent into its place:
        # one concatenation per buffer (never a sum of zero-padded copies)
        cts = [
            jnp.zeros(shape, layout.dtypes[b]) if ct is None else ct
            for (b, _, shape), ct in zip(layout.slots, cotangents, strict=True)
        ]
        return (_concat(cts, layout),)

    unravel.defvjp(fwd, bwd)
    return unravel


def ravel(tree: chex.ArrayTree, max_leaf_size: int | None = None) -> FlatTree:
    """Copy a pytree of arrays into a `FlatTree` (one buffer per dtype).

    $$\\text{buffer}_d = \\operatorname{concat}(\\operatorname{vec}(x_i) : \\operatorname{dtype}(x_i) = d)$$

    With `max_leaf_size`, a leaf of more than that many elements keeps a buffer of
    its own (a reshape: no copy inside `jit`), and only the smaller leaves are packed
    together, one buffer per dtype: the many small leaves stop costing a kernel each,
    the large ones are never concatenated.

    Works on `jax.ShapeDtypeStruct` leaves (for abstract `init`) through `jax.eval_shape`.

    PyTorch: `torch.nn.utils.parameters_to_vector` (one dtype only, and a copy
    every call; here you ravel once and keep the flat buffers).
    Pitfall: call it once before training, not inside the step: the point is that
    params stay flat.
    Reference: Rajbhandari et al., ZeRO, https://arxiv.org/abs/1910.02054 (flat buffers)
    """
    _check_max_leaf_size("ravel", max_leaf_size)
    layout = _layout_of(tree, max_leaf_size)
    leaves = jax.tree.leaves(tree)
    return FlatTree(_concat([jnp.asarray(x) for x in leaves], layout), layout)


def _ravel_like(
    tree: chex.ArrayTree, layout: Layout, what: str, max_leaf_size: int | None
) -> FlatTree:
    """`ravel(tree)`, checking that it has the layout the state was built for."""
    if isinstance(tree, FlatTree):
        raise ValueError(
            f"flatten: `{what}` is already a FlatTree; `flatten(tx)` takes the user's pytree. "
            "Use `tx` itself on FlatTree params."
        )
    got = _layout_of(tree, max_leaf_size)
    if got != layout:
        if got.treedef != layout.treedef:
            detail = f"tree structure {got.treedef} instead of {layout.treedef}"
        else:
            detail = "leaf shapes or dtypes that differ from the params given to `init`"
        raise ValueError(
            f"flatten: `{what}` has {detail}. Pass {what} shaped like the params of `init`."
        )
    return FlatTree(_concat([jnp.asarray(x) for x in jax.tree.leaves(tree)], layout), layout)


@jax.tree_util.register_pytree_node_class
class FlattenState:
    """State of `flatten(tx)`: `inner`, the wrapped transformation's state built on a
    `FlatTree` of the params, and the params' `layout` (static)."""

    __slots__ = ("inner", "layout")

    def __init__(self, inner: Any, layout: Layout):
        self.inner = inner
        self.layout = layout

    def tree_flatten(self):
        return (self.inner,), self.layout

    @classmethod
    def tree_unflatten(cls, layout, children):
        return cls(children[0], layout)

    def __repr__(self) -> str:
        return f"FlattenState(inner={self.inner!r}, {self.layout.num_leaves} leaves)"


def flatten(inner, max_leaf_size: int | None = None):
    """Run `inner` on flat buffers while the user keeps ordinary pytrees.

    $$\\text{updates} = \\operatorname{unravel}\\big(\\text{inner.update}(
    \\operatorname{ravel}(g),\\ s,\\ \\operatorname{ravel}(\\theta))\\big)$$

    The optimizer state lives in one buffer per dtype (a `FlatTree`), so each
    moment is one array instead of one per leaf; the gradients (and the params,
    when given) are concatenated on every step, and the updates come back as views
    of the flat result. Per-leaf transformations inside still see the original
    leaves (`tree.leaf_views`), unlike `optax.flatten`, which ravels into a single
    vector and loses both the leaf boundaries and the dtypes.

    Args:
      inner: any `GradientTransformation` of this library (or one written with
        `jaxopt_edu.tree`), e.g. `adam(1e-3)`.
      max_leaf_size: None packs every leaf; an int keeps each leaf of more elements
        than that as its own buffer (see `ravel`), so only the small leaves are
        concatenated each step.

    PyTorch: the `foreach`/`fused` implementations group tensors the same way
    inside `torch.optim`; here it is an explicit wrapper.
    Pitfall: every step pays a concatenation of the gradients: on an accelerator,
    where per-leaf kernel launches dominate small leaves, this is usually faster
    than the per-leaf layout; on XLA:CPU the concatenation of large leaves makes a
    step several times slower (docs/benchmarks.md): there pass `max_leaf_size`
    (e.g. 65536) so that only small leaves are packed. Chains that read the params
    (weight decay) cost about one extra full-size copy per step under `flatten` on
    XLA:CPU; the gradients' dtypes must match the params' (no bf16 params with f32
    gradients). For the fastest step keep the
    params themselves flat (`ravel`), which needs no concatenation at all.
    Reference: optax's `flatten` (same contract, single-dtype ravel);
    Rajbhandari et al., ZeRO, https://arxiv.org/abs/1910.02054 (flat buffers)
    """
    from jaxopt_edu.base import GradientTransformationExtraArgs, with_extra_args_support

    if not hasattr(inner, "init") or not hasattr(inner, "update"):
        raise ValueError(f"flatten: `inner` must be a GradientTransformation, got {inner!r}.")
    inner = with_extra_args_support(inner)
    _check_max_leaf_size("flatten", max_leaf_size)

    def init_fn(params):
        fp = ravel(params, max_leaf_size)
        return FlattenState(inner.init(fp), fp.layout)

    def update_fn(updates, state, params=None, **extra_args):
        layout = state.layout
        g = _ravel_like(updates, layout, "updates", max_leaf_size)
        p = None if params is None else _ravel_like(params, layout, "params", max_leaf_size)
        u, inner_state = inner.update(g, state.inner, p, **extra_args)
        return u.unravel(), FlattenState(inner_state, layout)

    return GradientTransformationExtraArgs(init_fn, update_fn)
