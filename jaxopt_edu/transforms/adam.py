"""Adam and its close relatives: AMSGrad and Adamax."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformation, ScalarOrSchedule, Updates
from jaxopt_edu.hyper import NONNEG, UNIT_OPEN, Hyper, HyperParams, safe_increment

__all__ = [
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
]


class ScaleByAdamState(NamedTuple):
    """State of `scale_by_adam` and `scale_by_adamax`."""

    count: jax.Array  # shape=(), int32: updates done so far
    mu: Updates  # first moment m_t
    nu: Updates  # second moment v_t (adamax: the infinity norm u_t)
    hyperparams: HyperParams


class ScaleByAmsgradState(NamedTuple):
    """State of `scale_by_amsgrad`."""

    count: jax.Array  # shape=(), int32
    mu: Updates  # first moment m_t
    nu: Updates  # second moment v_t
    nu_max: Updates  # running maximum of the bias-corrected second moment
    hyperparams: HyperParams


def _ratio(num, den, eps_root, eps, like):
    """num / (sqrt(den + eps_root) + eps), leaf by leaf, in `like`'s dtype."""

    def f(m, v, g):
        dt = tree.promote(m.dtype, v.dtype)
        v = v.astype(dt) + eps_root.astype(dt)
        return (m.astype(dt) / (jnp.sqrt(v) + eps.astype(dt))).astype(g.dtype)

    return jax.tree.map(f, num, den, like)


def _adam_hyper(owner, b1, b2, eps, eps_root):
    return Hyper(
        owner,
        b1=(b1, UNIT_OPEN),
        b2=(b2, UNIT_OPEN),
        eps=(eps, NONNEG),
        eps_root=(eps_root, NONNEG),
    )


def scale_by_adam(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Rescale updates by Adam's bias-corrected moment ratio.

    $$m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\qquad v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2$$
    $$\\hat m_t = \\frac{m_t}{1-\\beta_1^t},\\quad \\hat v_t = \\frac{v_t}{1-\\beta_2^t},\\qquad
    u_t = \\frac{\\hat m_t}{\\sqrt{\\hat v_t + \\epsilon_{root}} + \\epsilon}$$

    With `nesterov=True` (Nadam) the numerator looks one step ahead:
    $\\hat m_t = \\beta_1 m_t/(1-\\beta_1^{t+1}) + (1-\\beta_1) g_t/(1-\\beta_1^t)$.

    Args:
      b1: $\\beta_1 \\in [0, 1)$, the decay rate of the first moment.
      b2: $\\beta_2 \\in [0, 1)$, the decay rate of the second moment.
      eps: $\\epsilon \\ge 0$, added outside the square root.
      eps_root: $\\epsilon_{root} \\ge 0$, added inside it (set it > 0 when
        differentiating through the step: the root's slope at 0 is infinite).
      mu_dtype: storage dtype of $m$ (arithmetic stays at least float32).
      nesterov: use Nadam's look-ahead first moment (Dozat 2016).
      nu_dtype: storage dtype of $v$.

    PyTorch: `torch.optim.Adam` (same numbers); `NAdam` uses a momentum-decay
    schedule and differs from `nesterov=True` unless `momentum_decay=1e3`.
    Pitfall: a large `eps` turns Adam into momentum SGD with a tiny step; b2 close
    to 1 with sparse gradients makes early steps huge (warm the learning rate up).
    Reference: Kingma & Ba, Adam, https://arxiv.org/abs/1412.6980; Dozat, Nadam,
    https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ
    """
    hyper = _adam_hyper("scale_by_adam", b1, b2, eps, eps_root)

    def init_fn(params):
        return ScaleByAdamState(
            count=hyper.init_count(True),
            mu=tree.zeros_like(params, mu_dtype),
            nu=tree.moment_like(params, nu_dtype),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.mu, "updates", "state.mu")
        h = state.hyperparams.values

        def moments(g, m, v):
            return tree.update_moment(g, m, h["b1"], 1), tree.update_moment(g, v, h["b2"], 2)

        mu, nu = moments(updates, state.mu, state.nu)
        # the update from the same moments, recomputed where XLA:CPU can then make
        # one loop of the whole step (see tree.recompute_for_update)
        mu_u, nu_u = tree.recompute_for_update(moments, (mu, nu), updates, state.mu, state.nu)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        mu_hat = tree.bias_correction(mu_u, h["b1"], count)
        if nesterov:
            ahead = tree.bias_correction(mu_u, h["b1"], safe_increment(count))
            now = tree.bias_correction(updates, h["b1"], count)
            b1 = h["b1"]

            def look_ahead(a, g):
                dt = tree.promote(a.dtype, g.dtype)
                b = b1.astype(dt)
                return b * a.astype(dt) + (1 - b) * g.astype(dt)

            mu_hat = jax.tree.map(look_ahead, ahead, now)
        nu_hat = tree.bias_correction(nu_u, h["b2"], count)
        out = _ratio(mu_hat, nu_hat, h["eps_root"], h["eps"], updates)
        return out, ScaleByAdamState(count, mu, nu, hp_next)

    return GradientTransformation(init_fn, update_fn)


def scale_by_amsgrad(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam with a non-decreasing second moment (AMSGrad).

    $$\\hat v^{max}_t = \\max(\\hat v^{max}_{t-1}, \\hat v_t),\\qquad
    u_t = \\frac{\\hat m_t}{\\sqrt{\\hat v^{max}_t + \\epsilon_{root}} + \\epsilon}$$

    with $\\hat m_t, \\hat v_t$ as in `scale_by_adam`. The maximum is taken of the
    bias-corrected $\\hat v_t$ (as optax does). `bias_correction_mu=False` or
    `bias_correction_nu=False` skips the division by $1-\\beta^t$ for that moment.

    PyTorch: `torch.optim.Adam(amsgrad=True)` takes the maximum of the raw $v_t$ and
    bias-corrects afterwards. The trajectories differ, and not only early on: here
    $\\hat v_1 = g_1^2$ enters the maximum, torch's $v_1 = (1-\\beta_2) g_1^2$ is
    1000 times smaller, so a large first gradient holds our denominator up longer.
    Pitfall: one huge gradient pins the denominator for the rest of training.
    Reference: Reddi, Kale & Kumar, On the Convergence of Adam and Beyond,
    https://openreview.net/forum?id=ryQu7f-RZ
    """
    hyper = _adam_hyper("scale_by_amsgrad", b1, b2, eps, eps_root)

    def init_fn(params):
        return ScaleByAmsgradState(
            count=hyper.init_count(True),
            mu=tree.zeros_like(params, mu_dtype),
            nu=tree.moment_like(params, nu_dtype),
            nu_max=tree.moment_like(params, nu_dtype),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.mu, "updates", "state.mu")
        h = state.hyperparams.values
        mu = tree.update_moment(updates, state.mu, h["b1"], 1)
        nu = tree.update_moment(updates, state.nu, h["b2"], 2)
        count, hp_next = hyper.step(state.hyperparams, state.count)
        one = jnp.ones_like(h["b1"])
        mu_hat = tree.bias_correction(mu, h["b1"] if bias_correction_mu else 0 * one, count)
        nu_hat = tree.bias_correction(nu, h["b2"] if bias_correction_nu else 0 * one, count)
        nu_max_hat = jax.tree.map(
            lambda a, b: jnp.maximum(a, b.astype(a.dtype)), nu_hat, state.nu_max
        )
        out = _ratio(mu_hat, nu_max_hat, h["eps_root"], h["eps"], updates)
        nu_max = tree.cast_like(nu_max_hat, state.nu_max)
        new = ScaleByAmsgradState(count, mu, nu, nu_max, hp_next)
        return out, new

    return GradientTransformation(init_fn, update_fn)


def scale_by_adamax(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam with the infinity norm in place of the second moment (Adamax).

    $$m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\qquad
    u_t^{\\infty} = \\max(\\beta_2 u^{\\infty}_{t-1}, |g_t| + \\epsilon),\\qquad
    u_t = \\frac{m_t}{(1-\\beta_1^t)\\, u^{\\infty}_t}$$

    Args:
      b1: $\\beta_1 \\in [0, 1)$, the decay rate of the first moment.
      b2: $\\beta_2 \\in [0, 1)$, the decay rate of the infinity norm.
      eps: $\\epsilon \\ge 0$, added to $|g|$ so the denominator is never zero.
      mu_dtype: storage dtype of $m$.
      nu_dtype: storage dtype of $u^{\\infty}$.

    PyTorch: `torch.optim.Adamax` (same numbers).
    Pitfall: with eps = 0 a coordinate whose gradient has always been zero divides
    0 by 0.
    Reference: Kingma & Ba, Adam, section 7.1, https://arxiv.org/abs/1412.6980
    """
    hyper = Hyper("scale_by_adamax", b1=(b1, UNIT_OPEN), b2=(b2, UNIT_OPEN), eps=(eps, NONNEG))

    def init_fn(params):
        return ScaleByAdamState(
            count=hyper.init_count(True),
            mu=tree.zeros_like(params, mu_dtype),
            nu=tree.moment_like(params, nu_dtype),
            hyperparams=hyper.init(),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        tree.check_match(updates, state.mu, "updates", "state.mu")
        h = state.hyperparams.values
        count, hp_next = hyper.step(state.hyperparams, state.count)
        mu = tree.update_moment(updates, state.mu, h["b1"], 1)
        nu = tree.update_infinity_moment(updates, state.nu, h["b2"], h["eps"])
        mu_hat = tree.bias_correction(mu, h["b1"], count)
        out = jax.tree.map(
            lambda m, v, g: (m / v.astype(m.dtype)).astype(g.dtype), mu_hat, nu, updates
        )
        return out, ScaleByAdamState(count, mu, nu, hp_next)

    return GradientTransformation(init_fn, update_fn)
