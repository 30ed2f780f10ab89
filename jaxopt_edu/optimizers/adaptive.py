"""AdaGrad, RMSprop and AdaDelta: per-coordinate steps from squared gradients."""

from __future__ import annotations

from typing import Any

from jaxopt_edu.base import GradientTransformationExtraArgs, ScalarOrSchedule, identity
from jaxopt_edu.combine import chain
from jaxopt_edu.hyper import NONNEG, Hyper, rename
from jaxopt_edu.transforms.momentum import trace
from jaxopt_edu.transforms.regularization import add_decayed_weights
from jaxopt_edu.transforms.rms import (
    scale_by_adadelta,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from jaxopt_edu.transforms.scaling import scale_by_learning_rate

__all__ = ["adadelta", "adagrad", "rmsprop"]


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: ScalarOrSchedule = 1e-7,
    *,
    eps_in_sqrt: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """AdaGrad: divide by the root of the sum of all past squared gradients.

    $$\\theta_t = \\theta_{t-1} - \\eta\\, g_t / \\sqrt{s_t + \\epsilon},\\qquad s_t = s_{t-1} + g_t^2$$

    `chain(scale_by_rss(...), scale_by_learning_rate(...))`; math in `scale_by_rss`.

    PyTorch: `torch.optim.Adagrad` is `adagrad(lr, initial_accumulator_value=0.0,
    eps=1e-10, eps_in_sqrt=False)` (its eps sits outside the root).
    Pitfall: the sum only grows, so the step only shrinks: AdaGrad can stop before
    reaching a minimum (the course's premature-convergence trap).
    Reference: Duchi, Hazan & Singer 2011, https://jmlr.org/papers/v12/duchi11a.html
    """
    return chain(
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    accumulator_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """RMSprop: divide by a moving root-mean-square of the gradients.

    $$v_t = \\rho v_{t-1} + (1-\\rho) g_t^2,\\qquad
    \\theta_t = \\theta_{t-1} - \\eta\\, g_t / \\sqrt{v_t + \\epsilon}$$

    `centered=True` subtracts the squared mean gradient (`scale_by_stddev`);
    `momentum` adds `trace` after the learning rate. Math in `scale_by_rms`.

    PyTorch: `torch.optim.RMSprop(lr, alpha, eps, momentum, centered)` is
    `rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, momentum=momentum or None,
    centered=centered)`; note torch's alpha defaults to 0.99, ours (optax's) decay to 0.9.
    Pitfall: eps inside the root (default) vs outside changes the step by orders of
    magnitude where v is tiny; copy settings between libraries with care.
    Reference: Hinton, Lecture 6e,
    http://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf
    """
    if momentum is None and nesterov:
        raise ValueError("rmsprop: `nesterov=True` needs a `momentum` value (e.g. 0.9).")
    if momentum is not None:
        Hyper("rmsprop", momentum=(momentum, NONNEG))  # validate under the alias's name
    if centered:
        scaler = scale_by_stddev(
            decay,
            eps,
            initial_scale,
            eps_in_sqrt,
            bias_correction,
            mu_dtype=mu_dtype,
            nu_dtype=nu_dtype,
        )
    else:
        scaler = scale_by_rms(
            decay, eps, initial_scale, eps_in_sqrt, bias_correction, nu_dtype=nu_dtype
        )
    return chain(
        scaler,
        scale_by_learning_rate(learning_rate),
        identity()
        if momentum is None
        else rename(trace(momentum, nesterov, accumulator_dtype), decay="momentum"),
    )


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask=None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """AdaDelta: steps whose units match the parameters', no learning rate needed.

    $$\\theta_t = \\theta_{t-1} - \\eta\\,\\frac{\\sqrt{E[\\Delta^2]_{t-1} + \\epsilon}}
    {\\sqrt{E[g^2]_t + \\epsilon}}\\, g_t$$

    `learning_rate=None` means $\\eta = 1$, the paper's method. Math in `scale_by_adadelta`.
    optax differs here: `optax.adadelta()` with its default `learning_rate=None`
    skips the sign flip and climbs the loss; this one descends.

    PyTorch: `torch.optim.Adadelta(lr=1.0, rho, eps, weight_decay)` (same numbers;
    its weight decay is coupled L2, as here).
    Pitfall: the first steps are tiny (of order sqrt(eps)); AdaDelta starts slowly.
    Reference: Zeiler 2012, https://arxiv.org/abs/1212.5701
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps, nu_dtype=nu_dtype),
        scale_by_learning_rate(1.0 if learning_rate is None else learning_rate),
    )
