"""Lion: sign momentum with decoupled weight decay."""

from __future__ import annotations

from typing import Any

from jaxopt_edu.base import GradientTransformationExtraArgs, ScalarOrSchedule
from jaxopt_edu.combine import chain
from jaxopt_edu.transforms.lion import scale_by_lion
from jaxopt_edu.transforms.regularization import add_decayed_weights
from jaxopt_edu.transforms.scaling import scale_by_learning_rate

__all__ = ["lion"]


def lion(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> GradientTransformationExtraArgs:
    """Lion: a step of fixed length per coordinate, in the sign of a momentum mix.

    $$\\theta_t = \\theta_{t-1} - \\eta\\left(\\operatorname{sign}\\big(\\beta_1 m_{t-1}
    + (1-\\beta_1) g_t\\big) + \\lambda\\, \\theta_{t-1}\\right),\\qquad
    m_t = \\beta_2 m_{t-1} + (1-\\beta_2) g_t$$

    `chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))`; the math is in `scale_by_lion`. It keeps
    one moment where Adam keeps two, so its state is half the size.

    Args:
      learning_rate: $\\eta \\ge 0$, a number or a schedule of the step count.
      b1: $\\beta_1 \\in [0, 1]$, the weight of the momentum in the direction.
      b2: $\\beta_2 \\in [0, 1]$, the decay rate of the momentum.
      mu_dtype: storage dtype of $m$ (arithmetic stays at least float32).
      weight_decay: $\\lambda \\ge 0$, decoupled weight decay (multiplied by $\\eta$).
      mask: a tree of booleans like the params (or a prefix of it, or a function
        params -> such a tree); False leaves are not decayed.

    PyTorch: none (torch.optim has no Lion; `lion-pytorch` is a third-party package).
    Pitfall: do not reuse Adam's settings: take a learning rate 3 to 10 times smaller
    and a weight decay 3 to 10 times larger; with a constant learning rate the
    params never settle closer than about $\\eta$ per coordinate (sign steps do not
    shrink), so decay the learning rate to converge.
    Reference: Chen et al., Symbolic Discovery of Optimization Algorithms, 2023,
    https://arxiv.org/abs/2302.06675
    """
    return chain(
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
