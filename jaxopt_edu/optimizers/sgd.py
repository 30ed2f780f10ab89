"""Stochastic gradient descent, with optional (Nesterov) momentum."""

from __future__ import annotations

from typing import Any

from jaxopt_edu.base import GradientTransformationExtraArgs, ScalarOrSchedule, identity
from jaxopt_edu.combine import chain
from jaxopt_edu.hyper import NONNEG, Hyper, rename
from jaxopt_edu.transforms.momentum import trace
from jaxopt_edu.transforms.scaling import scale_by_learning_rate

__all__ = ["sgd"]


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Gradient descent, with heavy-ball or Nesterov momentum when `momentum` is given.

    $$\\theta_t = \\theta_{t-1} - \\eta\\, b_t,\\qquad b_t = g_t + \\mu\\, b_{t-1}$$

    `chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))`; the
    math is in `trace`. Hyperparameters in the state: `learning_rate`, `momentum`.

    PyTorch: `torch.optim.SGD(lr, momentum, nesterov=...)` with dampening=0 (same
    numbers); its `weight_decay` is `chain(add_decayed_weights(wd), sgd(...))`.
    Pitfall: one step size for every direction: the largest stable learning rate is
    set by the steepest direction, so on ill-conditioned problems SGD zig-zags across
    steep directions and crawls along flat ones (momentum helps). It is still the
    baseline every adaptive method has to beat.
    Reference: Robbins & Monro 1951, https://doi.org/10.1214/aoms/1177729586
    """
    if momentum is None and nesterov:
        raise ValueError("sgd: `nesterov=True` needs a `momentum` value (e.g. momentum=0.9).")
    if momentum is not None:
        Hyper("sgd", momentum=(momentum, NONNEG))  # validate under the alias's name
    moment = (
        identity()
        if momentum is None
        else rename(trace(momentum, nesterov, accumulator_dtype), decay="momentum")
    )
    return chain(moment, scale_by_learning_rate(learning_rate))
