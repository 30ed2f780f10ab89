"""Composing transformations: `chain` and `named_chain`."""

from __future__ import annotations

from jaxopt_edu.base import (
    GradientTransformation,
    GradientTransformationExtraArgs,
    with_extra_args_support,
)

__all__ = ["chain", "named_chain"]


def _checked(txs, owner, labels):
    out = []
    for label, tx in zip(labels, txs, strict=True):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"{owner}: element {label} is {tx!r}, not a GradientTransformation. "
                "Pass transformations (e.g. jaxopt_edu.scale_by_adam()), not factories or "
                "numbers: did you forget the call parentheses?"
            )
        out.append(with_extra_args_support(tx))
    return out


def chain(*transforms: GradientTransformation) -> GradientTransformationExtraArgs:
    """Apply transformations one after the other; the state is the tuple of their states.

    $$u_t = T_n(\\cdots T_2(T_1(g_t)))$$

    Extra keyword arguments of `update` reach every element.

    PyTorch: none (one optimizer class bakes the whole chain in).
    Pitfall: order matters: weight decay before `scale_by_adam` is L2, after it is
    AdamW; clipping must come before the scaling it is meant to protect.
    Reference: optax.chain.
    """
    txs = _checked(transforms, "chain", [f"#{i}" for i in range(len(transforms))])

    def init_fn(params):
        return tuple(tx.init(params) for tx in txs)

    def update_fn(updates, state, params=None, **extra_args):
        if isinstance(state, list):  # e.g. restored from a checkpoint format without tuples
            state = tuple(state)
        if not isinstance(state, tuple) or len(state) != len(txs):
            raise ValueError(
                f"chain: the state has {len(state) if isinstance(state, tuple) else 'no'} "
                f"elements for {len(txs)} transformations. Pass the state this chain's "
                "`init` returned."
            )
        new_state = []
        for tx, s in zip(txs, state, strict=True):
            updates, s = tx.update(updates, s, params, **extra_args)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformationExtraArgs(init_fn, update_fn)


def named_chain(*transforms: tuple[str, GradientTransformation]) -> GradientTransformationExtraArgs:
    """`chain` whose state is a dict keyed by the names you give.

    `named_chain(("clip", clip_by_global_norm(1.0)), ("adam", adam(1e-3)))` has
    state `{"clip": ..., "adam": ...}`, easy to read and to restore by name.

    PyTorch: none.
    Pitfall: names must be unique (checked).
    Reference: optax.named_chain.
    """
    names = []
    for i, item in enumerate(transforms):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"named_chain: element #{i} must be a (name, transformation) pair, got {item!r}."
            )
        names.append(item[0])
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"named_chain: names must be unique; repeated: {dupes}.")
    txs = _checked([t for _, t in transforms], "named_chain", names)

    def init_fn(params):
        return {n: tx.init(params) for n, tx in zip(names, txs, strict=True)}

    def update_fn(updates, state, params=None, **extra_args):
        if not isinstance(state, dict) or sorted(state) != sorted(names):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"named_chain: state keys {got} do not match names {names}.")
        new_state = {}
        for n, tx in zip(names, txs, strict=True):
            updates, new_state[n] = tx.update(updates, state[n], params, **extra_args)
        return updates, new_state

    return GradientTransformationExtraArgs(init_fn, update_fn)
