"""Muon: momentum orthogonalized by a Newton-Schulz iteration, per weight matrix.

Muon works on each weight MATRIX as a whole (not coordinate by coordinate): it
replaces the momentum $M = U \\Sigma V^\\top$ of a matrix by (nearly) $U V^\\top$,
the closest semi-orthogonal matrix. Which leaves are matrices depends on the
original leaf shapes, so everything here goes through `tree.leaf_views` /
`tree.from_leaf_views` and runs unchanged on ordinary pytrees and on
`jaxopt_edu.flat.FlatTree`. Leaves that are not matrices (biases, norm scales,
scalars, convolution kernels) get Adam instead, as in optax.
"""

from __future__ import annotations

import functools
import math
from numbers import Integral, Real
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule, Updates
from jaxopt_edu.flat import FlatTree
from jaxopt_edu.hyper import NONNEG, UNIT_OPEN, Hyper, HyperParams, safe_increment
from jaxopt_edu.transforms.regularization import _mask_tree

__all__ = ["ScaleByMuonState", "orthogonalize_via_newton_schulz", "scale_by_muon"]

DEFAULT_NS_COEFFS = (3.4445, -4.775, 2.0315)


class ScaleByMuonState(NamedTuple):
    """State of `scale_by_muon`.

    `mu` is laid out like the params (a `FlatTree` stays flat): the Muon momentum
    (decay `beta`) on matrix leaves, Adam's first moment (decay `adam_b1`) on the
    others. `nu` holds Adam's second moment for the non-matrix leaves only, as a
    list in `tree.leaf_groups` order (matrices need none): one entry per leaf, or
    per group of same-shape leaves stacked in one buffer, stacked alike.
    """

    count: jax.Array  # shape=(), int32: updates done so far
    mu: Updates  # momentum / first moment, like the params
    nu: list[jax.Array]  # second moment of each non-matrix leaf
    hyperparams: HyperParams


# ---------------------------------------------------------------- static arguments


def _check_ns(
    owner: str, ns_coeffs: Any, ns_steps: Any, nesterov: Any = True
) -> tuple[float, float, float]:
    """Validate the Python-level settings; return the coefficients as floats."""
    if not isinstance(nesterov, bool | np.bool_):
        raise ValueError(f"{owner}: `nesterov` must be True or False, got {nesterov!r}.")

    def is_number(c):
        return isinstance(c, Real) and not isinstance(c, bool)

    if not (
        isinstance(ns_coeffs, tuple | list)
        and len(ns_coeffs) == 3
        and all(is_number(c) and math.isfinite(c) for c in ns_coeffs)
    ):
        raise ValueError(
            f"{owner}: `ns_coeffs` must be one triple (a, b, c) of finite Python numbers, "
            f"got {ns_coeffs!r}. Per-step lists of triples and presets by name are not "
            "supported here."
        )
    if isinstance(ns_steps, bool | np.bool_) or not isinstance(ns_steps, Integral) or ns_steps < 0:
        raise ValueError(
            f"{owner}: `ns_steps` must be a Python int >= 0, got {ns_steps!r}. "
            "It fixes the number of matrix products at trace time."
        )
    return tuple(float(c) for c in ns_coeffs)  # ns_steps: used as int(ns_steps)


def _is_matrix(x: Any) -> bool:
    return len(x.shape) == 2


def _is_matrix_unit(x: Any, stacked: bool) -> bool:
    """Whether the leaves of a unit of `tree.leaf_groups` are matrices."""
    return len(x.shape) - int(stacked) == 2


def _width_scale(shape: tuple[int, ...]) -> float:
    """$\\sqrt{\\max(1, n/m)}$ for an (m, n) matrix (m inputs, n outputs: `x @ W`)."""
    m, n = shape
    return math.sqrt(max(1.0, n / m)) if m else 1.0  # an empty (0, n) matrix: no scaling


# ---------------------------------------------------------------- Newton-Schulz


def _newton_schulz(x: jax.Array, coeffs, ns_steps: int, eps: chex.Numeric) -> jax.Array:
    """The iteration on one matrix, in x's dtype (already the compute dtype)."""
    real = jnp.finfo(x.dtype).dtype
    tall = x.shape[0] > x.shape[1]
    if tall:  # iterate on X^T, so the Gram matrix A is the small one
        x = x.T
    fro = jnp.sqrt(jnp.sum((x * jnp.conj(x)).real if jnp.iscomplexobj(x) else x * x))
    x = x / (fro + jnp.asarray(eps).astype(real)).astype(x.dtype)
    a, b, c = coeffs
    for _ in range(ns_steps):  # unrolled: ns_steps is a Python int
        gram = x @ jnp.conj(x).T
        poly = b * gram + c * gram @ gram
        x = a * x + poly @ x
    return x.T if tall else x


def orthogonalize_via_newton_schulz(
    x: chex.Array,
    ns_coeffs: tuple[float, float, float] = DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    eps: chex.Numeric = 1e-8,
) -> jax.Array:
    """Map one matrix $G = U\\Sigma V^\\top$ to roughly $U V^\\top$ with a quintic iteration.

    $$X_0 = \\frac{G}{\\|G\\|_F + \\epsilon},\\qquad A_k = X_k X_k^\\top,\\qquad
    X_{k+1} = a X_k + (b A_k + c A_k^2) X_k$$

    Each step maps every singular value $\\sigma$ to $p(\\sigma) = a\\sigma + b\\sigma^3
    + c\\sigma^5$ and leaves the singular vectors alone. Dividing by the Frobenius
    norm puts all $\\sigma \\le 1$; the default coefficients make $p'(0) = a$ large, so
    small singular values grow fast, at the price of not converging exactly: after 5
    steps the singular values not far below $\\|G\\|_F/\\sqrt{\\text{rank}}$ lie
    roughly in [0.7, 1.2] instead of at 1 (much smaller ones, under about
    $10^{-3}\\|G\\|_F$, stay visibly below 0.7). A tall
    matrix (m > n) is transposed first, so $A$ is the smaller $n \\times n$ Gram
    matrix. Arithmetic runs in at least float32; the result has `x`'s dtype.

    Args:
      x: one matrix, shape (m, n).
      ns_coeffs: the triple $(a, b, c)$ (Python numbers), used at every step.
      ns_steps: the number of iterations $k$ (a Python int >= 0).
      eps: $\\epsilon \\ge 0$, keeps a zero matrix at zero instead of 0/0.

    PyTorch: the private `torch.optim._muon._zeropower_via_newtonschulz` (torch
    2.9+) does the same iteration in bfloat16, dividing by
    $\\max(\\|G\\|_F, \\epsilon)$; not compared here.
    Pitfall: it does not return an exactly orthogonal matrix (use an SVD for that),
    and with `eps = 0` a zero gradient gives NaN.
    Reference: Jordan et al. 2024, Muon, https://kellerjordan.github.io/posts/muon/;
    Bernstein & Newhouse, https://arxiv.org/abs/2409.20325
    """
    coeffs = _check_ns("orthogonalize_via_newton_schulz", ns_coeffs, ns_steps)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            f"orthogonalize_via_newton_schulz: `x` must be a matrix (2-D), got shape "
            f"{x.shape}. Reshape it to (fan_in, fan_out) first."
        )
    out = _newton_schulz(x.astype(tree.compute_dtype(x)), coeffs, ns_steps, eps)
    return out.astype(x.dtype)


# ---------------------------------------------------------------- scale_by_muon


def _look_ahead(m, g, decay, count, nesterov: bool) -> jax.Array:
    """Bias-corrected momentum, or with Nesterov its one-step look-ahead (compute dtype).

    $\\hat m_t = m_t/(1-\\beta^t)$, or $\\beta m_t/(1-\\beta^{t+1}) + (1-\\beta) g_t/(1-\\beta^t)$.
    """
    if not nesterov:
        return tree.bias_correction(m, decay, count)
    ahead = tree.bias_correction(m, decay, safe_increment(count))
    now = tree.bias_correction(g, decay, count)
    dt = tree.promote(ahead.dtype, now.dtype)
    b = decay.astype(dt)
    return b * ahead.astype(dt) + (1 - b) * now.astype(dt)


def scale_by_muon(
    ns_coeffs: tuple[float, float, float] = DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    beta: ScalarOrSchedule = 0.95,
    eps: ScalarOrSchedule = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adam_b1: ScalarOrSchedule = 0.9,
    adam_b2: ScalarOrSchedule = 0.999,
    adam_eps_root: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    """Muon's direction: orthogonalized momentum on matrices, Adam on every other leaf.

    For each matrix leaf $W$ of shape (m, n) (a layer used as `x @ W`):

    $$M_t = \\beta M_{t-1} + (1-\\beta) G_t,\\qquad
    \\hat M_t = \\frac{\\beta M_t}{1-\\beta^{t+1}} + \\frac{(1-\\beta) G_t}{1-\\beta^t}
    \\quad\\Big(\\text{or } \\frac{M_t}{1-\\beta^t} \\text{ without Nesterov}\\Big)$$
    $$U_t = \\sqrt{\\max(1, n/m)}\\;\\mathrm{NS}(\\hat M_t)$$

    where NS is `orthogonalize_via_newton_schulz` (so $U_t \\approx$ the polar
    factor of $\\hat M_t$: every singular value near 1). The factor
    $\\sqrt{\\max(1, n/m)}$ is optax's (Keller Jordan's) width scaling. Every leaf
    with `ndim != 2` gets Adam's direction instead (Nadam's look-ahead when
    `nesterov=True`, as optax does) with `adam_b1`, `adam_b2`, `eps`,
    `adam_eps_root`: see `scale_by_adam`. Matrices are the ORIGINAL leaves, also
    in a `FlatTree`. Follow it with weight decay and `scale_by_learning_rate`
    (`jaxopt_edu.muon` does, with separate values for the two kinds of leaves).

    Not supported (optax has them): `adaptive`, `preconditioning` other than
    Frobenius, `weight_dimension_numbers` (only 2-D leaves are matrices), per-step
    coefficient lists. Unlike `optax.contrib.scale_by_muon`, which refuses non-2-D
    leaves and leaves the width scaling to a separate step, this transform covers
    the whole tree, as `optax.contrib.muon` does before weight decay.

    Args:
      ns_coeffs: the Newton-Schulz triple $(a, b, c)$ (Python numbers).
      ns_steps: Newton-Schulz iterations (a Python int >= 0).
      beta: $\\beta \\in [0, 1)$, the momentum decay of matrix leaves.
      eps: $\\epsilon \\ge 0$, both in the Newton-Schulz normalization and in Adam's
        denominator (one value, as in optax).
      mu_dtype: storage dtype of the momentum / first moment.
      nesterov: use the look-ahead momentum (both for matrices and for Adam).
      adam_b1: $\\beta_1 \\in [0, 1)$ of Adam on non-matrix leaves.
      adam_b2: $\\beta_2 \\in [0, 1)$ of Adam on non-matrix leaves.
      adam_eps_root: $\\epsilon_{root} \\ge 0$ of Adam on non-matrix leaves.

    PyTorch: `torch.optim.Muon` (torch 2.9+) takes 2-D params only, keeps no bias
    correction (with Nesterov its early directions differ slightly) and runs
    Newton-Schulz in bfloat16; its `sqrt(max(1, A/B))` for an (out, in) weight is
    the same width rule. Not compared here.
    Pitfall: the step of a matrix has a fixed size (singular values near 1) however
    small the gradient, like a sign method: decay the learning rate to converge.
    Muon assumes `x @ W` layers: an (out, in) weight gets a different width scale.
    Reference: Jordan et al. 2024, Muon, https://kellerjordan.github.io/posts/muon/;
    Bernstein & Newhouse, https://arxiv.org/abs/2409.20325
    """
    coeffs = _check_ns("scale_by_muon", ns_coeffs, ns_steps, nesterov)
    ns_steps = int(ns_steps)
    hyper = Hyper(
        "scale_by_muon",
        beta=(beta, UNIT_OPEN),
        eps=(eps, NONNEG),
        adam_b1=(adam_b1, UNIT_OPEN),
        adam_b2=(adam_b2, UNIT_OPEN),
        adam_eps_root=(adam_eps_root, NONNEG),
    )

    def init_fn(params):
        units, stacked = tree.leaf_groups(params)
        others = [x for x, st in zip(units, stacked, strict=True) if not _is_matrix_unit(x, st)]
        return ScaleByMuonState(
            count=hyper.init_count(True),
            mu=tree.zeros_like(params, mu_dtype),
            nu=tree.moment_like(others),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.mu, "updates", "state.mu")
        h = state.hyperparams.values
        count, hp_next = hyper.step(state.hyperparams, state.count)
        grads, stacked = tree.leaf_groups(updates)
        moms = tree.leaf_groups(state.mu)[0]
        matrix = [_is_matrix_unit(g, st) for g, st in zip(grads, stacked, strict=True)]
        if len(state.nu) != matrix.count(False):
            raise ValueError(
                f"scale_by_muon: the state has {len(state.nu)} second moments but the updates "
                f"have {matrix.count(False)} leaves (or groups of leaves) that are not "
                "matrices. Pass updates laid out like the params given to `init`."
            )
        nus = iter(state.nu)
        nu_units = [None if is_matrix else next(nus) for is_matrix in matrix]

        def one_leaf(g, m, v):
            dt = tree.promote(tree.compute_dtype(g), tree.compute_dtype(m))
            if _is_matrix(g):
                m = tree.update_moment(g, m, h["beta"], 1)
                m_hat = _look_ahead(m, g, h["beta"], count, nesterov).astype(dt)
                u = _newton_schulz(m_hat, coeffs, ns_steps, h["eps"])
                u = u * _width_scale(g.shape)
            else:
                m = tree.update_moment(g, m, h["adam_b1"], 1)
                v = tree.update_moment(g, v, h["adam_b2"], 2)
                m_hat = _look_ahead(m, g, h["adam_b1"], count, nesterov).astype(dt)
                v_hat = tree.bias_correction(v, h["adam_b2"], count)
                real = v_hat.dtype
                den = jnp.sqrt(v_hat + h["adam_eps_root"].astype(real)) + h["eps"].astype(real)
                u = m_hat / den.astype(dt)
            return u.astype(g.dtype), m, v

        results = tree.map_leaf_groups(one_leaf, stacked, grads, moms, nu_units)
        out = [u for u, _, _ in results]
        mu = tree.from_leaf_groups(state.mu, [m for _, m, _ in results])
        new_nu = [v for (_, _, v), is_matrix in zip(results, matrix, strict=True) if not is_matrix]
        new = ScaleByMuonState(count, mu, new_nu, hp_next)
        return tree.from_leaf_groups(updates, out), new

    return GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------- decay and learning rate


class _MuonStepState(NamedTuple):
    """State of the last step of `jaxopt_edu.muon` (weight decay and learning rates)."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    hyperparams: HyperParams


def _unflattened(params):
    """The user's pytree: every `FlatTree` node replaced by its original leaves (views)."""
    return jax.tree.map(
        lambda n: n.unravel() if isinstance(n, FlatTree) else n,
        params,
        is_leaf=lambda n: isinstance(n, FlatTree),
    )


def _muon_decay_and_learning_rate(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    adam_weight_decay: ScalarOrSchedule = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
) -> GradientTransformation:
    """Decoupled weight decay and the descent step, with one setting per kind of leaf.

    The last step of `jaxopt_edu.muon`. For matrix leaves and for the others:

    $$u_W = -\\eta\\,(d_W + \\lambda\\, m_W W),\\qquad
    u_b = -\\eta_{adam}\\,(d_b + \\lambda_{adam}\\, b)$$

    with $m_W$ the `weight_decay_mask` value of the leaf (1 if no mask) and
    $\\eta_{adam} = \\eta$ unless `adam_learning_rate` is given (then the state holds
    `adam_learning_rate` too, else only `learning_rate`, which `tree.set` changes
    for both kinds). The mask is read against the user's pytree, also when the
    params are a `FlatTree` (its original leaves), and only its matrix leaves matter.

    Args:
      learning_rate: $\\eta \\ge 0$ (a number or a schedule).
      weight_decay: $\\lambda \\ge 0$ for matrix leaves.
      weight_decay_mask: a tree of booleans like the params (or a prefix of it, or a
        function params -> such a tree); False leaves are not decayed.
      adam_weight_decay: $\\lambda_{adam} \\ge 0$ for non-matrix leaves (no mask).
      adam_learning_rate: $\\eta_{adam} \\ge 0$, or None to use $\\eta$.

    PyTorch: none (two `param_groups` with their own `lr` and `weight_decay`).
    Pitfall: it needs the params: call `update(updates, state, params)`.
    Reference: Loshchilov & Hutter, https://arxiv.org/abs/1711.05101
    """
    items = {
        "learning_rate": (learning_rate, NONNEG),
        "weight_decay": (weight_decay, NONNEG),
        "adam_weight_decay": (adam_weight_decay, NONNEG),
    }
    if adam_learning_rate is not None:
        items["adam_learning_rate"] = (adam_learning_rate, NONNEG)
    hyper = Hyper("muon", **items)

    def init_fn(params):
        del params
        return _MuonStepState(count=hyper.init_count(), hyperparams=hyper.init())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                "muon needs the params (for weight decay): call `update(updates, state, params)`."
            )
        tree.check_match(updates, params, "updates", "params")
        h = state.hyperparams.values
        lr = h["learning_rate"]
        adam_lr = h.get("adam_learning_rate", lr)
        user_tree = _unflattened(params)
        masks = jax.tree.leaves(_mask_tree(weight_decay_mask, user_tree))

        def one_leaf(u, p, mask):
            dt = tree.promote(tree.compute_dtype(u), tree.compute_dtype(p))
            u32, p32 = u.astype(dt), p.astype(dt)
            if _is_matrix(u):
                decayed = u32 + h["weight_decay"].astype(dt) * p32
                if mask is False:
                    decayed = u32
                elif mask is not True:
                    decayed = jnp.where(mask, decayed, u32)
                new = -lr.astype(dt) * decayed
            else:
                new = -adam_lr.astype(dt) * (u32 + h["adam_weight_decay"].astype(dt) * p32)
            return new.astype(u.dtype)

        units, stacked = tree.leaf_groups(updates)
        p_units = tree.leaf_groups(params)[0]
        members = tree.leaf_group_indices(updates)
        out = []
        for u, p, st, idx in zip(units, p_units, stacked, members, strict=True):
            unit_masks = [masks[i] for i in idx]
            if all(m is True for m in unit_masks) or all(m is False for m in unit_masks):
                mask = unit_masks[0]  # one Python bool: nothing to select at run time
                fn = functools.partial(one_leaf, mask=mask)
                out.append((jax.vmap(fn) if st else fn)(u, p))
                continue
            if st:  # the group's masks, stacked like its leaves
                shape = u.shape[1:]
                mask = jnp.stack(
                    [jnp.broadcast_to(jnp.asarray(m, bool), shape) for m in unit_masks]
                )
                out.append(jax.vmap(one_leaf)(u, p, mask))
            else:
                out.append(one_leaf(u, p, unit_masks[0]))
        count, hp_next = hyper.step(state.hyperparams, state.count)
        new_state = _MuonStepState(count, hp_next)
        return tree.from_leaf_groups(updates, out), new_state

    return GradientTransformation(init_fn, update_fn)
