"""Flat parameter layout: one contiguous buffer per dtype (small leaves), the pytree as a view.

A model's parameters usually come as a pytree of many arrays. An optimizer that
walks that tree leaf by leaf launches one small loop per leaf and compiles one
fusion per leaf: fine for a few big leaves, slow for thousands of small ones. Here
the params (and therefore the gradients and every optimizer moment) live in a
`FlatTree`: one buffer per dtype (1-D, or the leaf's own shape when a buffer
holds a single leaf; on a CPU, by default, each leaf of more than 65536 elements
is such a buffer), plus a static `Layout` that records where
each original leaf sits. Every elementwise transformation of the library works
on it unchanged (a `FlatTree` is a pytree whose leaves are the buffers), so the
whole Adam step is a few fused loops, not a few per leaf.

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

import weakref
from numbers import Integral
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FlatTree", "FlattenState", "Layout", "flatten", "ravel"]


class Layout:
    """Where each leaf of the original pytree lives in the flat buffers (static, hashable).

    `slots[i] = (buffer, offset, shape)` for the i-th leaf in `treedef` order;
    `dtypes[b]`, `sizes[b]` and `shapes[b]` describe buffer `b`: a buffer of several
    leaves is 1-D, `(sizes[b],)`, or `(k, *shape)` when it stacks k leaves of one
    shape (`ravel(..., group_by_shape=True)`); a buffer holding a single leaf keeps
    that leaf's shape, so XLA updates a donated leaf in place (read through a
    reshaped view, a donated parameter is copied whole by XLA:CPU before its update).

    A `Layout` is the static part of every `FlatTree`, so `jit` hashes and compares
    it on each call. Layouts are interned (equal layouts are one object) and keep
    their hash, so those checks cost nanoseconds; comparing two 2000-leaf layouts
    field by field costs about 80 us, paid several times per step otherwise. A
    `Layout` is immutable.
    """

    treedef: Any
    dtypes: tuple[str, ...]
    sizes: tuple[int, ...]
    slots: tuple[tuple[int, int, tuple[int, ...]], ...]
    shapes: tuple[tuple[int, ...], ...]

    __slots__ = ("treedef", "dtypes", "sizes", "slots", "shapes", "_hash", "_groups", "__weakref__")
    _interned: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def __new__(
        cls, treedef: Any, dtypes: tuple, sizes: tuple, slots: tuple, shapes: tuple | None = None
    ):
        if shapes is None:
            shapes = tuple((n,) for n in sizes)
        for n, shape in zip(sizes, shapes, strict=True):
            if int(np.prod(shape, dtype=np.int64)) != n:
                raise ValueError(f"Layout: buffer shape {shape} does not hold {n} elements.")
        fields = (treedef, tuple(dtypes), tuple(sizes), tuple(slots), tuple(shapes))
        # PyTreeDef equality ignores the type of dict keys and node data ({1: x} equals
        # {1.0: x}); the text tells them apart, so each treedef keeps its own layout
        key = (str(treedef), *fields)
        found = cls._interned.get(key)
        if found is not None:
            return found
        self = super().__new__(cls)
        names = ("treedef", "dtypes", "sizes", "slots", "shapes")
        for name, value in zip(names, fields, strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_hash", hash(fields))
        cls._interned[key] = self
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Layout is immutable: cannot set `{name}`")

    def __reduce__(self):
        return (Layout, self._key())

    def _key(self) -> tuple:
        return (self.treedef, self.dtypes, self.sizes, self.slots, self.shapes)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Layout):
            return NotImplemented
        return self._hash == other._hash and self._key() == other._key()

    def __repr__(self) -> str:
        return f"Layout({self.num_leaves} leaves, buffers {list(zip(self.dtypes, self.sizes, strict=True))})"

    @property
    def num_leaves(self) -> int:
        return len(self.slots)


def _layout_of(
    tree: chex.ArrayTree,
    max_leaf_size: int | None = None,
    max_buffer_leaves: int | None = None,
    group_by_shape: bool = False,
) -> Layout:
    """Shared buffers per dtype; a leaf of more than `max_leaf_size` elements gets a
    buffer of its own (the leaf itself, in its own shape), and a shared
    buffer holds at most `max_buffer_leaves` leaves (then the next one starts).
    With `group_by_shape`, leaves share a buffer only with leaves of the same dtype
    and shape: k of them make a buffer of shape (k, *shape), leaf j at index j."""
    leaves, treedef = jax.tree.flatten(tree)
    dtypes: list[str] = []
    sizes: list[int] = []
    shared: dict[Any, int] = {}  # dtype (and shape, when grouping) -> buffer being filled
    count: dict[int, int] = {}  # shared buffer -> leaves in it
    slots = []
    for leaf in leaves:
        name = np.dtype(leaf.dtype).name
        size = int(np.prod(leaf.shape, dtype=np.int64))
        if max_leaf_size is not None and size > max_leaf_size:
            dtypes.append(name)
            sizes.append(size)
            slots.append((len(dtypes) - 1, 0, tuple(leaf.shape)))
            continue
        key = (name, tuple(leaf.shape)) if group_by_shape else name
        b = shared.get(key)
        if b is None or (max_buffer_leaves is not None and count[b] >= max_buffer_leaves):
            b = shared[key] = len(dtypes)
            count[b] = 0
            dtypes.append(name)
            sizes.append(0)
        slots.append((b, sizes[b], tuple(leaf.shape)))
        sizes[b] += size
        count[b] += 1
    # a buffer of one leaf keeps the leaf's shape; a buffer of several is 1-D, or
    # (k, *shape) for k leaves grouped by shape
    alone = {b: shape for b, _, shape in slots if count.get(b, 1) == 1}
    first = {}
    for b, _, shape in slots:
        first.setdefault(b, shape)
    shapes = tuple(
        alone[b] if b in alone else (count[b], *first[b]) if group_by_shape else (n,)
        for b, n in enumerate(sizes)
    )
    return Layout(treedef, tuple(dtypes), tuple(sizes), tuple(slots), shapes)


def _groups(layout: Layout) -> tuple[tuple[int, tuple[int, ...]] | None, ...]:
    """For each buffer, `(k, shape)` when it stacks k >= 2 leaves of one shape along a
    new first axis (`ravel(..., group_by_shape=True)`), else None.

    Leaves of shape () are never a group: k scalars stacked are `(k,)`, the shape of
    the default layout's shared 1-D buffer too, so they stay single leaves in both."""
    found = getattr(layout, "_groups", None)
    if found is not None:
        return found
    per_buffer: dict[int, list[tuple[int, ...]]] = {}
    for b, _, shape in layout.slots:
        per_buffer.setdefault(b, []).append(shape)
    out = []
    for b, bshape in enumerate(layout.shapes):
        shapes = per_buffer.get(b, [])
        k = len(shapes)
        ok = (
            k >= 2
            and len(shapes[0]) >= 1
            and all(s == shapes[0] for s in shapes)
            and bshape == (k, *shapes[0])
        )
        out.append((k, shapes[0]) if ok else None)
    found = tuple(out)
    object.__setattr__(layout, "_groups", found)
    return found


def _units(layout: Layout) -> tuple[tuple[str, int], ...]:
    """The per-leaf work units of a layout, in the order of its leaves' first slots:
    `("group", b)` for a buffer stacking same-shape leaves (one unit for all of them),
    `("leaf", i)` for the i-th leaf otherwise."""
    groups = _groups(layout)
    out, seen = [], set()
    for i, (b, _, _) in enumerate(layout.slots):
        if groups[b] is None:
            out.append(("leaf", i))
        elif b not in seen:
            seen.add(b)
            out.append(("group", b))
    return tuple(out)


def _check_layout_args(owner: str, max_leaf_size, max_buffer_leaves) -> None:
    for name, value, least in (
        ("max_leaf_size", max_leaf_size, 0),
        ("max_buffer_leaves", max_buffer_leaves, 1),
    ):
        if value is not None and (
            isinstance(value, bool | np.bool_) or not isinstance(value, Integral) or value < least
        ):
            raise ValueError(
                f"{owner}: `{name}` must be None or an integer >= {least}, got {value!r}."
            )


def _check_auto_layout_args(owner: str, max_leaf_size, max_buffer_leaves) -> None:
    """`_check_layout_args` for a `max_leaf_size` that may also be "auto"."""
    if isinstance(max_leaf_size, str) and max_leaf_size != "auto":
        raise ValueError(
            f"{owner}: `max_leaf_size` must be 'auto', None or an integer >= 0, "
            f"got {max_leaf_size!r}."
        )
    _check_layout_args(owner, None if max_leaf_size == "auto" else max_leaf_size, max_buffer_leaves)


@jax.tree_util.register_pytree_node_class
class FlatTree:
    """A pytree stored as a few buffers (by default one per dtype for the small leaves,
    and on a CPU one per leaf of more than 65536 elements), with its `Layout`: 1-D for
    several leaves, the leaf's own shape for a buffer of one leaf.

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


def _view(buffers, layout: Layout, i: int) -> jax.Array:
    """The i-th original leaf: its buffer reshaped, or a slice of it."""
    b, off, shape = layout.slots[i]
    size = int(np.prod(shape, dtype=np.int64))
    buf = buffers[b]
    if size == layout.sizes[b]:  # the buffer is this leaf: no slice
        return buf.reshape(shape)
    if buf.ndim == 1 + len(shape) and buf.shape[1:] == shape:  # grouped: leaf j at [j]
        return jax.lax.index_in_dim(buf, off // max(size, 1), keepdims=False)
    return jax.lax.slice_in_dim(buf.reshape(-1), off, off + size).reshape(shape)


def _split(buffers, layout: Layout) -> list[jax.Array]:
    return [_view(buffers, layout, i) for i in range(layout.num_leaves)]


def _concat(leaves, layout: Layout, skip=()) -> tuple[jax.Array | None, ...]:
    """The buffers holding `leaves` (one per slot); a buffer in `skip` is None, and its
    leaves are not read."""
    per_buffer: list[list[jax.Array]] = [[] for _ in layout.dtypes]
    for (b, _, _), leaf in zip(layout.slots, leaves, strict=True):
        if b not in skip:
            per_buffer[b].append(leaf)
    return tuple(
        None
        if b in skip
        else jnp.concatenate([jnp.ravel(x) for x in parts]).reshape(s)
        if len(parts) > 1
        else jnp.reshape(parts[0], s)
        for b, (parts, s) in enumerate(zip(per_buffer, layout.shapes, strict=True))
    )


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


def ravel(
    tree: chex.ArrayTree,
    max_leaf_size: int | str | None = "auto",
    max_buffer_leaves: int | None = None,
    group_by_shape: bool = False,
) -> FlatTree:
    """Copy a pytree of arrays into a `FlatTree` (one buffer per dtype for the small leaves).

    $$\\text{buffer}_d = \\operatorname{concat}(\\operatorname{vec}(x_i) : \\operatorname{dtype}(x_i) = d)$$

    With `max_leaf_size`, a leaf of more than that many elements keeps a buffer of
    its own, in the leaf's own shape (no copy; XLA updates it in place, where a
    reshaped view of a donated parameter makes XLA:CPU copy it), and only the
    smaller leaves are packed together, one buffer per dtype: the many small leaves
    stop costing a kernel each, the large ones are never concatenated. The default,
    `"auto"`, is 65536 when the leaves live on a CPU and None (every leaf packed) on
    an accelerator, as in `flatten`; pass None for one buffer per dtype everywhere.
    With `max_buffer_leaves`, at most that many leaves share a buffer.

    With `group_by_shape=True`, leaves share a buffer only with leaves of the same
    dtype and shape: k of them are stacked into a buffer of shape `(k, *shape)` (the
    same matrix of every layer, say; scalars share a 1-D buffer and are not a
    group). Elementwise chains run as before; per-leaf transformations written
    with `tree.leaf_groups` (adafactor, muon, the block RMS scalings, the trust
    ratio) run once per group under `jax.vmap`, so a group is
    one set of kernels and its per-leaf reductions read the buffer in place. From a
    buffer of leaves of mixed shapes, XLA:CPU first copies each leaf it reduces into
    a new array, and compiles separate kernels for each leaf's offset.

    Works on `jax.ShapeDtypeStruct` leaves (for abstract `init`) through `jax.eval_shape`.

    PyTorch: `torch.nn.utils.parameters_to_vector` (one dtype only, and a copy
    every call; here you ravel once and keep the flat buffers).
    Pitfall: call it once before training, not inside the step: the point is that
    params stay flat. The layout depends on where the params live ("auto"): a flat
    state saved on a CPU does not fit params raveled on a GPU, and a state made
    before the default became "auto" (when every leaf was packed) fits
    `ravel(params, max_leaf_size=None)`; pass an explicit `max_leaf_size` when a
    state must move between them. On a CPU a loss that reads a large leaf in a matmul through a
    slice of a shared buffer pays for a copy of it every step (XLA:CPU copies a slice
    before reducing it): on an MLP of four 2048 x 2048 layers a whole Adam training
    step took 1.51x as long with every leaf in one buffer as with the default, which
    keeps those matrices apart (`benchmarks/bench_mlp_step.py`, 2-core CPU;
    docs/benchmarks.md). `unravel()` inside the loss takes one slice per leaf, and
    XLA's compile time grows faster than linearly with the slices taken from one
    buffer: on 2000 small leaves a whole training step (loss, grad, Adam) compiled
    about 4x faster with `max_buffer_leaves=64` than with one buffer, for no slower
    a step, while the optimizer step alone is fastest with one buffer
    (`benchmarks/bench_train_step.py`; docs/api/flat.md). Pass
    `max_buffer_leaves=64` for models with many hundreds of leaves. For per-leaf
    optimizers pass `group_by_shape=True` (adafactor on the GPT-like tree of
    docs/benchmarks.md, 2-core CPU: compile 0.82 s instead of 9.8 s, step 112 ms instead
    of 228 ms; pytree mode 2.6 s and 103 ms); for elementwise chains
    keep the default: on a CPU, several small buffers cost more kernels than one.
    Reference: Rajbhandari et al., ZeRO, https://arxiv.org/abs/1910.02054 (flat buffers)
    """
    _check_auto_layout_args("ravel", max_leaf_size, max_buffer_leaves)
    max_leaf_size = _resolve_max_leaf_size(max_leaf_size, tree)
    if not isinstance(group_by_shape, bool | np.bool_):
        raise ValueError(f"ravel: `group_by_shape` must be True or False, got {group_by_shape!r}.")
    layout = _layout_of(tree, max_leaf_size, max_buffer_leaves, bool(group_by_shape))
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    buffers = _concat(leaves, layout)
    # a buffer of one leaf can be that very array: copy it, so that donating the flat
    # params never deletes the arrays of the user's tree
    buffers = tuple(jnp.copy(b) if any(b is x for x in leaves) else b for b in buffers)
    return FlatTree(buffers, layout)


def _ravel_like(tree: chex.ArrayTree, layout: Layout, what: str) -> FlatTree:
    """`tree` copied into `layout`, checking that it has the leaves the state was built for."""
    if isinstance(tree, FlatTree):
        raise ValueError(
            f"flatten: `{what}` is already a FlatTree; `flatten(tx)` takes the user's pytree. "
            "Use `tx` itself on FlatTree params."
        )
    leaves, treedef = jax.tree.flatten(tree)
    if treedef != layout.treedef:
        raise ValueError(
            f"flatten: `{what}` has tree structure {treedef} instead of {layout.treedef}. "
            f"Pass {what} shaped like the params of `init`."
        )
    paths = None
    for i, (leaf, (b, _, shape)) in enumerate(zip(leaves, layout.slots, strict=True)):
        dtype = np.dtype(leaf.dtype).name
        if tuple(leaf.shape) != shape or dtype != layout.dtypes[b]:
            paths = paths or [jax.tree_util.keystr(k) for k, _ in jax.tree.leaves_with_path(tree)]
            raise ValueError(
                f"flatten: `{what}` leaf {paths[i]} is {dtype}{list(leaf.shape)}, but the params "
                f"given to `init` had {layout.dtypes[b]}{list(shape)} there. Pass {what} with the "
                "leaf shapes and dtypes of the params of `init`."
            )
    return FlatTree(_concat([jnp.asarray(x) for x in leaves], layout), layout)


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


AUTO_CPU_MAX_LEAF = 65536
"""`flatten(max_leaf_size="auto")` on a CPU: larger leaves keep buffers of their own."""


def _platforms(tree) -> set[str]:
    """The platforms the leaves of `tree` live on, where that is known (concrete arrays,
    `ShapeDtypeStruct`s with a sharding); empty for tracers and numpy arrays."""
    found: set[str] = set()
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer):
            found.update(d.platform for d in leaf.devices())
        elif isinstance(leaf, jax.ShapeDtypeStruct) and leaf.sharding is not None:
            found.update(d.platform for d in leaf.sharding.device_set)
    return found


def _resolve_max_leaf_size(max_leaf_size, params) -> int | None:
    """ "auto": 65536 when the params live on a CPU (when that is not known, as for
    tracers, when the default backend is one), else None (pack every leaf)."""
    if not isinstance(max_leaf_size, str):
        return max_leaf_size
    platforms = _platforms(params) or {jax.default_backend()}
    return AUTO_CPU_MAX_LEAF if platforms == {"cpu"} else None


def flatten(
    inner: Any,
    max_leaf_size: int | str | None = "auto",
    max_buffer_leaves: int | None = 64,
    group_by_shape: bool = False,
):
    """Run `inner` on flat buffers while the user keeps ordinary pytrees.

    $$\\text{updates} = \\operatorname{unravel}\\big(\\text{inner.update}(
    \\operatorname{ravel}(g),\\ s,\\ \\operatorname{ravel}(\\theta))\\big)$$

    The optimizer state lives in a few flat buffers (`FlatTree`s) instead of one
    array per leaf; the gradients (and the params, when given) are concatenated
    into them on every step, and the updates come back as views of the flat
    result. Per-leaf transformations inside still see the original leaves
    (`tree.leaf_views`), unlike `optax.flatten`, which ravels into a single vector
    and loses both the leaf boundaries and the dtypes.

    Args:
      inner: any `GradientTransformation` of this library (or one written with
        `jaxopt_edu.tree`), e.g. `adam(1e-3)`.
      max_leaf_size: a leaf of more elements than this keeps a buffer of its own
        (in its own shape, never concatenated). None packs every leaf. "auto" (default):
        65536 when the params live on a CPU, where concatenating large leaves
        costs more than it saves, and None on an accelerator, where every leaf
        left apart costs kernel launches. Where the params live is read from the
        arrays given to `init` (or the sharding of `ShapeDtypeStruct`s); for
        tracers and numpy arrays it is the default backend.
      max_buffer_leaves: at most this many leaves share one buffer (default 64).
        XLA's compile time grows faster than linearly with the number of slices
        taken from one buffer: on this project's 2-core CPU, 2000 small leaves, a
        training step with one shared buffer compiled in about 2x optax's time,
        with buffers of 64 leaves in about 0.55x, for the same step time
        (`benchmarks/bench_train_step.py`, docs/benchmarks.md). On an H200 with 500
        leaves it went the other way (one buffer 0.53x optax, 64 per buffer 1.05x):
        there each extra buffer adds GPU kernels to compile. None: one shared
        buffer per dtype.
      group_by_shape: pack only leaves of the same dtype and shape together, stacked
        (`ravel`'s argument): per-leaf transformations inside then run once per group
        of leaves. Off by default.

    PyTorch: the `foreach`/`fused` implementations group tensors the same way
    inside `torch.optim`; here it is an explicit wrapper.
    Pitfall: every step concatenates the gradients of the packed leaves, so the
    step's peak memory holds one more buffer of their size (Adam on 2000 small
    leaves: 1.25x params + grads + state on the CPU) and, for chains that read the
    params (weight decay), one more copy of the packed params. The gradients' dtypes must match the params' (no bf16
    params with f32 gradients). On the CPU, trees of large leaves gain nothing
    (the per-leaf step is already one loop per leaf); the gain is on many small
    leaves and on accelerators. For the fastest step keep the params themselves
    flat (`ravel`), which needs no concatenation at all. With "auto" the state's
    layout depends on where `init` ran: a checkpoint of the state written on a
    CPU does not load into a state built on a GPU; pass an int or None to
    `max_leaf_size` when the state must move between them.
    Reference: optax's `flatten` (same contract, single-dtype ravel);
    Rajbhandari et al., ZeRO, https://arxiv.org/abs/1910.02054 (flat buffers)
    """
    from jaxopt_edu.base import GradientTransformationExtraArgs, with_extra_args_support

    if not hasattr(inner, "init") or not hasattr(inner, "update"):
        raise ValueError(f"flatten: `inner` must be a GradientTransformation, got {inner!r}.")
    inner = with_extra_args_support(inner)
    _check_auto_layout_args("flatten", max_leaf_size, max_buffer_leaves)
    if not isinstance(group_by_shape, bool | np.bool_):
        raise ValueError(
            f"flatten: `group_by_shape` must be True or False, got {group_by_shape!r}."
        )

    def init_fn(params):
        fp = ravel(
            params,
            _resolve_max_leaf_size(max_leaf_size, params),
            max_buffer_leaves,
            bool(group_by_shape),
        )
        return FlattenState(inner.init(fp), fp.layout)

    def update_fn(updates, state, params=None, **extra_args):
        layout = state.layout
        g = _ravel_like(updates, layout, "updates")
        p = None if params is None else _ravel_like(params, layout, "params")
        u, inner_state = inner.update(g, state.inner, p, **extra_args)
        return u.unravel(), FlattenState(inner_state, layout)

    return GradientTransformationExtraArgs(init_fn, update_fn)
