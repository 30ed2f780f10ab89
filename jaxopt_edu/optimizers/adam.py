"""Adam and its family: AdamW, Nadam, NadamW, AMSGrad, Adamax, AdamaxW."""

from __future__ import annotations

from typing import Any

from jaxopt_edu.base import GradientTransformationExtraArgs, ScalarOrSchedule
from jaxopt_edu.combine import chain
from jaxopt_edu.transforms.adam import scale_by_adam, scale_by_adamax, scale_by_amsgrad
from jaxopt_edu.transforms.regularization import add_decayed_weights
from jaxopt_edu.transforms.scaling import scale_by_learning_rate

__all__ = ["adam", "adamax", "adamaxw", "adamw", "amsgrad", "nadam", "nadamw"]


def adam(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Adam: momentum divided by a running root-mean-square, both bias-corrected.

    $$\\theta_t = \\theta_{t-1} - \\eta\\, \\frac{\\hat m_t}{\\sqrt{\\hat v_t + \\epsilon_{root}} + \\epsilon}$$

    `chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))`; the full math
    and the meaning of b1, b2, eps are in `scale_by_adam`.

    PyTorch: `torch.optim.Adam(lr, betas=(b1, b2), eps)` (same numbers); its
    `weight_decay` is `chain(add_decayed_weights(wd), adam(...))`.
    Pitfall: the default learning rate of 1e-3 is a start, not an answer; b2 = 0.999
    adapts slowly to changes in gradient scale (try 0.99 or 0.95 for transformers).
    Reference: Kingma & Ba, https://arxiv.org/abs/1412.6980
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """AdamW: Adam plus weight decay applied outside the adaptive scaling.

    $$\\theta_t = \\theta_{t-1} - \\eta\\left(\\frac{\\hat m_t}{\\sqrt{\\hat v_t} + \\epsilon}
    + \\lambda\\, \\theta_{t-1}\\right)$$

    `chain(scale_by_adam, add_decayed_weights(weight_decay, mask), scale_by_learning_rate)`.

    PyTorch: `torch.optim.AdamW(lr, betas, eps, weight_decay)` (same numbers; torch's
    default weight_decay is 1e-2, ours 1e-4 as optax's).
    Pitfall: the decay is multiplied by the learning rate, so a schedule that lowers
    the learning rate also lowers the decay; mask out biases and norm scales.
    Reference: Loshchilov & Hutter, https://arxiv.org/abs/1711.05101
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Nadam: Adam with a Nesterov look-ahead first moment (`adam(nesterov=True)`).

    $$\\hat m_t = \\frac{\\beta_1 m_t}{1-\\beta_1^{t+1}} + \\frac{(1-\\beta_1) g_t}{1-\\beta_1^t}$$

    PyTorch: `torch.optim.NAdam` warms $\\beta_1$ up with a momentum-decay schedule
    ($\\psi = 0.004$), so its default numbers differ; `torch.optim.NAdam(lr, betas,
    eps, momentum_decay=1e3)` switches the warm-up off and gives the same numbers.
    Pitfall: the look-ahead amplifies noisy gradients; it helps most with large batches.
    Reference: Dozat 2016, https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ
    """
    return adam(
        learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype
    )


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """NadamW: Nadam with decoupled weight decay (`adamw(nesterov=True)`).

    $$\\theta_t = \\theta_{t-1} - \\eta\\,(\\text{nadam direction} + \\lambda\\theta_{t-1})$$

    PyTorch: `torch.optim.NAdam(decoupled_weight_decay=True)` has a momentum-decay
    schedule; with `momentum_decay=1e3` it gives the same numbers.
    Pitfall: as for `adamw`, mask biases and norm scales out of the decay.
    Reference: Dozat 2016; Loshchilov & Hutter, https://arxiv.org/abs/1711.05101
    """
    return adamw(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        weight_decay,
        mask,
        nesterov=nesterov,
        nu_dtype=nu_dtype,
    )


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """AMSGrad: Adam whose denominator never shrinks. Math in `scale_by_amsgrad`.

    $$\\theta_t = \\theta_{t-1} - \\eta\\, \\hat m_t / (\\sqrt{\\max_{s \\le t} \\hat v_s} + \\epsilon)$$

    PyTorch: `torch.optim.Adam(amsgrad=True)` maximises the uncorrected $v_t$, so its
    numbers differ from optax's and ours, and not only in the first steps.
    Pitfall: one gradient spike fixes a large denominator for good: steps stay small.
    Reference: Reddi, Kale & Kumar 2018, https://openreview.net/forum?id=ryQu7f-RZ
    """
    return chain(
        scale_by_amsgrad(
            b1,
            b2,
            eps,
            eps_root,
            mu_dtype,
            bias_correction_mu=bias_correction_mu,
            bias_correction_nu=bias_correction_nu,
            nu_dtype=nu_dtype,
        ),
        scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Adamax: Adam with an infinity norm in the denominator. Math in `scale_by_adamax`.

    $$\\theta_t = \\theta_{t-1} - \\frac{\\eta}{1-\\beta_1^t}\\, \\frac{m_t}{u_t},\\qquad
    u_t = \\max(\\beta_2 u_{t-1}, |g_t| + \\epsilon)$$

    PyTorch: `torch.optim.Adamax(lr, betas, eps)` (same numbers).
    Pitfall: the max-norm reacts to a single large gradient at once and forgets it
    slowly (rate b2).
    Reference: Kingma & Ba, section 7.1, https://arxiv.org/abs/1412.6980
    """
    return chain(
        scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """AdamaxW: Adamax with decoupled weight decay.

    $$\\theta_t = \\theta_{t-1} - \\eta\\left(\\frac{m_t}{(1-\\beta_1^t) u_t} + \\lambda\\theta_{t-1}\\right)$$

    PyTorch: none (torch's Adamax has only coupled L2 `weight_decay`).
    Pitfall: as for `adamw`, mask biases and norm scales out of the decay.
    Reference: Kingma & Ba; Loshchilov & Hutter, https://arxiv.org/abs/1711.05101
    """
    return chain(
        scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
