"""Root-mean-square scalings: RMSprop (plain and centered), AdaGrad and AdaDelta."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule, Updates
from jaxopt_edu.hyper import NONNEG, UNIT, UNIT_OPEN, Hyper, HyperParams

__all__ = [
    "ScaleByAdaDeltaState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "scale_by_adadelta",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
]


class ScaleByRmsState(NamedTuple):
    """State of `scale_by_rms`."""

    count: jax.Array | None  # shape=(), int32; None without `bias_correction` and no schedule
    nu: Updates  # second moment v_t
    hyperparams: HyperParams


class ScaleByRStdDevState(NamedTuple):
    """State of `scale_by_stddev`."""

    count: jax.Array | None  # shape=(), int32; None without `bias_correction` and no schedule
    mu: Updates  # first moment m_t
    nu: Updates  # second moment v_t
    hyperparams: HyperParams


class ScaleByRssState(NamedTuple):
    """State of `scale_by_rss`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    sum_of_squares: Updates  # s_t, the sum of all squared gradients to date
    hyperparams: HyperParams


class ScaleByAdaDeltaState(NamedTuple):
    """State of `scale_by_adadelta`."""

    count: jax.Array | None  # shape=(), int32; None unless a value is a schedule
    e_g: Updates  # E[g^2]_t, running average of squared gradients
    e_x: Updates  # E[dx^2]_t, running average of squared updates
    hyperparams: HyperParams


# ---------------------------------------------------------------- helpers


def _check_init_value(owner: str, name: str, value: Any) -> None:
    """Validate a number used only by `init` (not kept in the state): a scalar >= 0."""
    if isinstance(value, jax.core.Tracer):
        return
    try:
        if callable(value) or isinstance(value, bool | str):
            raise TypeError
        x = np.asarray(value, dtype=float)
        ok = x.shape == () and NONNEG.contains(float(x))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"{owner}: `{name}` must be a number {NONNEG}, got {value!r}. Pass a scalar {NONNEG} "
            "(it only sets the starting accumulator, so it cannot be a schedule)."
        )


def _decay_interval(bias_correction: bool):
    # decay = 1 freezes v at initial_scale: legal, but 1 - decay^t = 0 divides by zero.
    return UNIT_OPEN if bias_correction else UNIT


def _abs_sq(x: jax.Array) -> jax.Array:
    return (x * jnp.conj(x)).real if jnp.iscomplexobj(x) else x * x


def _divide_by_root(updates, nu, eps, eps_in_sqrt, mu=None, guard=False):
    """g / sqrt(v + eps) or g / (sqrt(v) + eps), v = nu - |mu|^2; in each g's dtype.

    With `guard`, a coordinate with v == 0 gets 0 (optax's AdaGrad rule); the double
    `where` keeps gradients through the step finite there.
    """

    def f(g, v, m=None):
        dt = tree.promote(tree.compute_dtype(g), tree.compute_dtype(v))
        v, e = v.astype(dt), eps.astype(dt)
        if m is not None:
            # the variance v - m^2 can round below zero on a steady gradient: clamp it
            v = jnp.maximum(v - _abs_sq(m.astype(dt)).astype(dt), jnp.zeros_like(v))
        if guard:
            pos = jnp.real(v) > 0
            v = jnp.where(pos, v, jnp.ones_like(v))
        den = jnp.sqrt(v + e) if eps_in_sqrt else jnp.sqrt(v) + e
        out = g.astype(dt) / den
        if guard:
            out = jnp.where(pos, out, jnp.zeros_like(out))
        return out.astype(g.dtype)

    if mu is None:
        return jax.tree.map(f, updates, nu)
    return jax.tree.map(f, updates, nu, mu)


def _add_squares(updates, sums):
    """s + |g|^2, leaf by leaf, in each sum's dtype."""

    def f(g, s):
        dt = tree.promote(tree.compute_dtype(g), tree.compute_dtype(s))
        return (s.astype(dt) + _abs_sq(g.astype(dt)).astype(dt)).astype(s.dtype)

    return jax.tree.map(f, updates, sums)


# ---------------------------------------------------------------- transforms


def scale_by_rms(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: chex.Numeric = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Rescale updates by the root of a moving average of squared gradients (RMSprop).

    $$v_t = \rho\, v_{t-1} + (1-\rho)\, g_t^2,\qquad v_0 = v_{init},\qquad
    \hat v_t = v_t \ \text{or}\ \frac{v_t}{1-\rho^t}\ \text{(bias\_correction)}$$
    $$u_t = \frac{g_t}{\sqrt{\hat v_t + \epsilon}}\ \text{(eps\_in\_sqrt)}
    \quad\text{or}\quad u_t = \frac{g_t}{\sqrt{\hat v_t} + \epsilon}$$

    Args:
      decay: $\rho$, the decay of the average, in [0, 1] ([0, 1) with
        `bias_correction`, where 1 would divide by $1-\rho^t = 0$).
      eps: $\epsilon \ge 0$, inside or outside the root (`eps_in_sqrt`).
      initial_scale: $v_0 \ge 0$; used by `init` only, so it is not in the state.
      bias_correction: divide $v_t$ by $1-\rho^t$ (then `eps_in_sqrt=False` gives
        `scale_by_adam(b1=0, b2=decay)` without storing a first moment).
      nu_dtype: storage dtype of $v$ (default: the params' dtype).

    PyTorch: `torch.optim.RMSprop(alpha=decay, eps=eps)` adds eps outside the root:
    `scale_by_rms(decay=alpha, eps=eps, eps_in_sqrt=False)` gives the same numbers
    (mind the defaults: torch's alpha is 0.99); `centered=True` is `scale_by_stddev`.
    Pitfall: eps inside vs outside the root changes the effective step by orders of
    magnitude when $v$ is tiny ($\sqrt{10^{-8}} = 10^{-4}$ vs $10^{-8}$); with
    $v_0 = 0$ and no bias correction the first steps are $1/\sqrt{1-\rho}$ times
    larger than later ones.
    Reference: Hinton, Neural Networks for Machine Learning, lecture 6e,
    http://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf
    """
    owner = "scale_by_rms"
    hyper = Hyper(owner, decay=(decay, _decay_interval(bias_correction)), eps=(eps, NONNEG))
    _check_init_value(owner, "initial_scale", initial_scale)

    def init_fn(params):
        return ScaleByRmsState(
            count=hyper.init_count(bias_correction),
            nu=tree.moment_like(params, nu_dtype, initial_scale),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.nu, "updates", "state.nu")
        h = state.hyperparams.values

        def moment(g, v):
            return tree.update_moment(g, v, h["decay"], 2)

        nu = moment(updates, state.nu)
        # where XLA:CPU can then make one loop of the step (tree.recompute_for_update)
        nu_u = tree.recompute_for_update(moment, nu, updates, state.nu)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        nu_hat = tree.bias_correction(nu_u, h["decay"], count) if bias_correction else nu_u
        out = _divide_by_root(updates, nu_hat, h["eps"], eps_in_sqrt)
        return out, ScaleByRmsState(count, nu, hp_next)

    return GradientTransformation(init_fn, update_fn)


def scale_by_stddev(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: chex.Numeric = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Rescale updates by a moving standard deviation of the gradients (centered RMSprop).

    $$m_t = \rho\, m_{t-1} + (1-\rho)\, g_t,\qquad v_t = \rho\, v_{t-1} + (1-\rho)\, g_t^2,
    \qquad m_0 = 0,\ v_0 = v_{init}$$
    $$u_t = \frac{g_t}{\sqrt{\hat v_t - \hat m_t^2 + \epsilon}}\ \text{(eps\_in\_sqrt)}
    \quad\text{or}\quad u_t = \frac{g_t}{\sqrt{\hat v_t - \hat m_t^2} + \epsilon}$$

    with $\hat m_t, \hat v_t$ divided by $1-\rho^t$ only when `bias_correction`.

    Args:
      decay: $\rho$, shared by both averages, in [0, 1] ([0, 1) with `bias_correction`).
      eps: $\epsilon \ge 0$, inside or outside the root (`eps_in_sqrt`).
      initial_scale: $v_0 \ge 0$; used by `init` only, so it is not in the state.
      bias_correction: divide both moments by $1-\rho^t$.
      mu_dtype: storage dtype of $m$ (default: the params' dtype).
      nu_dtype: storage dtype of $v$ (default: the params' dtype).

    PyTorch: `torch.optim.RMSprop(alpha=decay, eps=eps, centered=True)` is
    `scale_by_stddev(decay=alpha, eps=eps, eps_in_sqrt=False)` (same numbers).
    Pitfall: the centered variance can be ~0 (a coordinate whose gradient is nearly
    constant), so the step becomes $g/\sqrt{\epsilon}$ or $g/\epsilon$: huge. With
    `bias_correction` and $v_0 = 0$ this happens on the very first step (the variance
    of one sample is 0: $u_1 = g_1/\sqrt{\epsilon} = 10^4 g_1$ with the defaults, its
    digits past 1e-9 are rounding noise); warm the learning rate up or use $v_0 > 0$.
    Reference: Graves, Generating Sequences With Recurrent Neural Networks, eq. 38-41,
    https://arxiv.org/abs/1308.0850
    """
    owner = "scale_by_stddev"
    hyper = Hyper(owner, decay=(decay, _decay_interval(bias_correction)), eps=(eps, NONNEG))
    _check_init_value(owner, "initial_scale", initial_scale)

    def init_fn(params):
        return ScaleByRStdDevState(
            count=hyper.init_count(bias_correction),
            mu=tree.zeros_like(params, mu_dtype),
            nu=tree.moment_like(params, nu_dtype, initial_scale),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.nu, "updates", "state.nu")
        h = state.hyperparams.values
        mu = tree.update_moment(updates, state.mu, h["decay"], 1)
        nu = tree.update_moment(updates, state.nu, h["decay"], 2)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        mu_hat, nu_hat = mu, nu
        if bias_correction:
            mu_hat = tree.bias_correction(mu, h["decay"], count)
            nu_hat = tree.bias_correction(nu, h["decay"], count)
        out = _divide_by_root(updates, nu_hat, h["eps"], eps_in_sqrt, mu=mu_hat)
        new = ScaleByRStdDevState(count, mu, nu, hp_next)
        return out, new

    return GradientTransformation(init_fn, update_fn)


def scale_by_rss(
    initial_accumulator_value: chex.Numeric = 0.1,
    eps: ScalarOrSchedule = 1e-7,
    *,
    eps_in_sqrt: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Rescale updates by the root of the sum of all squared gradients to date (AdaGrad).

    $$s_t = s_{t-1} + g_t^2,\qquad s_0 = s_{init}$$
    $$u_t = \frac{g_t}{\sqrt{s_t + \epsilon}}\ \text{(eps\_in\_sqrt, optax)}
    \quad\text{or}\quad u_t = \frac{g_t}{\sqrt{s_t} + \epsilon}\ \text{(torch)},
    \qquad u_t = 0 \ \text{where}\ s_t = 0$$

    Args:
      initial_accumulator_value: $s_0 \ge 0$; used by `init` only, so it is not in
        the state.
      eps: $\epsilon \ge 0$, inside or outside the root (`eps_in_sqrt`).
      eps_in_sqrt: True gives optax's numbers, False torch's.
      nu_dtype: storage dtype of $s$ (default: the params' dtype).

    Where $s_t = 0$ (only when $s_0 = 0$ and every gradient so far was 0) the update
    is 0, as in optax; this also makes `eps=0` safe.

    PyTorch: `torch.optim.Adagrad(eps=eps, initial_accumulator_value=s0)` (lr_decay=0)
    is `scale_by_rss(s0, eps, eps_in_sqrt=False)`; torch's defaults are
    `initial_accumulator_value=0, eps=1e-10`. The one difference: a gradient whose
    square underflows to 0 gets update 0 here, $g/\epsilon$ in torch.
    Pitfall: $s_t$ only grows, so the step only ever shrinks: training can stop
    making progress long before it converges (premature stopping); RMSprop and Adam
    replace the sum by a moving average for that reason.
    Reference: Duchi, Hazan & Singer, Adaptive Subgradient Methods, JMLR 2011,
    https://jmlr.org/papers/v12/duchi11a.html
    """
    owner = "scale_by_rss"
    hyper = Hyper(owner, eps=(eps, NONNEG))
    _check_init_value(owner, "initial_accumulator_value", initial_accumulator_value)

    def init_fn(params):
        return ScaleByRssState(
            count=hyper.init_count(),
            sum_of_squares=tree.moment_like(params, nu_dtype, initial_accumulator_value),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.sum_of_squares, "updates", "state.sum_of_squares")
        h = state.hyperparams.values
        sum_of_squares = _add_squares(updates, state.sum_of_squares)
        # where XLA:CPU can then make one loop of the step (tree.recompute_for_update)
        s_u = tree.recompute_for_update(_add_squares, sum_of_squares, updates, state.sum_of_squares)
        out = _divide_by_root(updates, s_u, h["eps"], eps_in_sqrt, guard=True)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        return out, ScaleByRssState(count, sum_of_squares, hp_next)

    return GradientTransformation(init_fn, update_fn)


def scale_by_adadelta(
    rho: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-6,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Rescale updates by AdaDelta's ratio of update and gradient RMS (Zeiler 2012).

    $$E[g^2]_t = \rho\, E[g^2]_{t-1} + (1-\rho)\, g_t^2$$
    $$u_t = \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t,
    \qquad E[\Delta x^2]_t = \rho\, E[\Delta x^2]_{t-1} + (1-\rho)\, u_t^2$$

    with both averages starting at 0. $u_t$ has the gradient's sign: the descent step
    $\Delta x_t = -\eta\, u_t$ comes from a following `scale_by_learning_rate`
    (Zeiler's method is $\eta = 1$).

    Args:
      rho: $\rho$, the decay of both averages, in [0, 1].
      eps: $\epsilon \ge 0$, inside both roots; it sets the size of the first steps.
      nu_dtype: storage dtype of both averages (default: the params' dtype).

    PyTorch: `torch.optim.Adadelta(lr, rho, eps)` (same numbers, with
    `scale_by_learning_rate(lr)` after it).
    Pitfall: the first steps are about $\sqrt{\epsilon}/|g|$ times the gradient (the
    numerator starts at $\sqrt{\epsilon}$), so progress is slow at first and
    depends on eps, which acts as the initial learning rate. `optax.adadelta` with
    `learning_rate=None` skips the sign flip and climbs the loss.
    Reference: Zeiler, ADADELTA: An Adaptive Learning Rate Method,
    https://arxiv.org/abs/1212.5701
    """
    hyper = Hyper("scale_by_adadelta", rho=(rho, UNIT), eps=(eps, NONNEG))

    def init_fn(params):
        return ScaleByAdaDeltaState(
            count=hyper.init_count(),
            e_g=tree.moment_like(params, nu_dtype),
            e_x=tree.moment_like(params, nu_dtype),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.e_g, "updates", "state.e_g")
        h = state.hyperparams.values
        e_g = tree.update_moment(updates, state.e_g, h["rho"], 2)

        def delta(g, eg, ex):  # sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g
            dt = tree.promote(tree.compute_dtype(g), tree.compute_dtype(eg), tree.compute_dtype(ex))
            e = h["eps"].astype(dt)
            return jnp.sqrt(ex.astype(dt) + e) / jnp.sqrt(eg.astype(dt) + e) * g.astype(dt)

        dx = jax.tree.map(delta, updates, e_g, state.e_x)  # in compute dtype, unrounded
        e_x = tree.update_moment(dx, state.e_x, h["rho"], 2)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        new = ScaleByAdaDeltaState(count, e_g, e_x, hp_next)
        return tree.cast_like(dx, updates), new

    return GradientTransformation(init_fn, update_fn)
