"""Adafactor: adaptive steps with a factored (sublinear-memory) second moment."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxopt_edu import tree
from jaxopt_edu.base import GradientTransformationExtraArgs, ScalarOrSchedule, stateless
from jaxopt_edu.combine import chain
from jaxopt_edu.hyper import NONNEG, POSITIVE, UNIT, Hyper, rename
from jaxopt_edu.transforms.factored import (
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)
from jaxopt_edu.transforms.momentum import ema
from jaxopt_edu.transforms.regularization import MaskOrFn, add_decayed_weights
from jaxopt_edu.transforms.scaling import scale_by_learning_rate

__all__ = ["adafactor"]


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: ScalarOrSchedule = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: ScalarOrSchedule | None = 1.0,
    momentum: ScalarOrSchedule | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: ScalarOrSchedule = 1e-30,
    factored: bool = True,
    weight_decay_mask: MaskOrFn = None,
) -> GradientTransformationExtraArgs:
    """Adafactor: RMS-normalised steps whose second moment costs $n+m$ numbers per matrix.

    With $\\hat V_t$ the (factored) second moment of `scale_by_factored_rms`:

    $$U_t = \\frac{g_t}{\\sqrt{\\hat V_t}},\\qquad
    \\hat U_t = \\frac{U_t}{\\max(1, \\operatorname{RMS}(U_t)/d)},\\qquad
    \\Delta_t = \\eta_t\\, \\max(\\epsilon_2, \\operatorname{RMS}(\\theta_{t-1}))\\, \\hat U_t$$

    $$m_t = \\beta_1 m_{t-1} + (1-\\beta_1)\\Delta_t \\ (\\text{if momentum}),\\qquad
    \\theta_t = \\theta_{t-1} - (m_t \\text{ or } \\Delta_t) - \\lambda\\, \\theta_{t-1}$$

    RMS is taken per parameter leaf, $\\epsilon_2 = 10^{-3}$. It is the chain
    `scale_by_factored_rms`, `clip_by_block_rms(d)` (if `clipping_threshold`),
    `scale_by_learning_rate(eta, flip_sign=False)` (if `learning_rate`),
    `scale_by_param_block_rms()` (if `multiply_by_parameter_scale`),
    `ema(momentum, debias=False)` (if `momentum`), `add_decayed_weights` (if
    `weight_decay_rate`) and a sign flip: optax's order, so the momentum averages
    steps that already include the learning rate, and the weight decay $\\lambda$ is
    NOT multiplied by the learning rate. State names: `learning_rate`, `decay_rate`,
    `eps`, `clipping_threshold`, `min_scale`, `momentum`, `weight_decay_rate`.

    Args:
      learning_rate: $\\eta \\ge 0$ or a schedule; None: no learning-rate factor (with
        the parameter scale on, the step is then the RMS of the weights itself).
      min_dim_size_to_factor: factor a leaf's second moment only when its two largest
        dims are at least this (a Python int).
      decay_rate: $c \\in [0, 1]$ in $\\hat\\beta_{2,t} = 1 - t^{-c}$.
      decay_offset: a Python int $t_0 \\ge 0$: the decay schedule counts from step $t_0$.
      multiply_by_parameter_scale: multiply steps by $\\max(\\epsilon_2, \\operatorname{RMS}(\\theta))$.
      clipping_threshold: $d > 0$ for block-RMS clipping, or None for none.
      momentum: $\\beta_1 \\in [0, 1]$, or None for no momentum (saves a full-size buffer).
      dtype_momentum: storage dtype of the momentum buffer (float32 as optax).
      weight_decay_rate: $\\lambda \\ge 0$, or None for no weight decay.
      eps: $\\epsilon_1 \\ge 0$, added to $g^2$ in the second moment.
      factored: use the factored second moment for large matrices (False: full $V$).
      weight_decay_mask: which leaves decay, as the `mask` of `add_decayed_weights`.

    PyTorch: `torch.optim.Adafactor` (torch >= 2.5) is a different parametrisation:
    its step is $\\min(\\text{lr}, 1/\\sqrt t)\\max(10^{-3}, \\operatorname{RMS}(\\theta))$,
    its eps1 (squared) clamps $\\hat V$ instead of being added to $g^2$, it factors the
    last two dims of every tensor of 2+ dims (no minimum size), multiplies its weight
    decay by lr and has no momentum; the numbers are not compared here.
    Pitfall: the learning rate is RELATIVE to the weights' RMS (with the default
    `multiply_by_parameter_scale=True`): 1e-2 moves each matrix by about 1% per step,
    Adam's learning rates (1e-4) are far too small, and the default `learning_rate=None`
    (optax's) steps by the weights' whole RMS, which usually diverges: pass one. Weights
    near 0 move by only $\\eta\\,\\epsilon_2$; `momentum` adds a full-size buffer.
    In the flat layout (`jaxopt_edu.flat`) ravel with `group_by_shape=True`: the
    leaves of one shape are then stacked in a buffer of their own and the factored
    moments, the RMS clipping and the parameter scale run once per group (vmapped),
    reading it in place. From one buffer of leaves of mixed shapes each leaf is
    sliced out and put back, and XLA:CPU copies every slice it reduces and compiles
    a kernel per leaf: on the GPT-like tree of docs/benchmarks.md (2-core CPU) that
    step took 2.2x pytree mode's time and compiled in 9.8 s; grouped by shape it took
    1.09x and compiled in 0.82 s (pytree mode: 2.6 s), and on 2000 small leaves it
    compiled in 0.21 s (optax: 75 s) and stepped in 0.03x optax's time.
    Reference: Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear
    Memory Cost, https://arxiv.org/abs/1804.04235
    """
    owner = "adafactor"
    checks = {
        "learning_rate": (learning_rate, NONNEG),
        "decay_rate": (decay_rate, UNIT),
        "clipping_threshold": (clipping_threshold, POSITIVE),
        "momentum": (momentum, UNIT),
        "weight_decay_rate": (weight_decay_rate, NONNEG),
        "eps": (eps, NONNEG),
    }
    # validate under adafactor's own argument names (the members would name theirs)
    Hyper(owner, **{k: v for k, v in checks.items() if v[0] is not None})
    for name, value in (
        ("multiply_by_parameter_scale", multiply_by_parameter_scale),
        ("factored", factored),
    ):
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{owner}: `{name}` must be True or False, got {value!r}.")
    for name, value in (
        ("min_dim_size_to_factor", min_dim_size_to_factor),
        ("decay_offset", decay_offset),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{owner}: `{name}` must be a Python integer >= 0, got {value!r}.")

    txs = [
        rename(
            scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps),
            epsilon="eps",
        )
    ]
    if clipping_threshold is not None:
        txs.append(rename(clip_by_block_rms(clipping_threshold), threshold="clipping_threshold"))
    if learning_rate is not None:
        txs.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        txs.append(scale_by_param_block_rms())
    if momentum is not None:
        txs.append(
            rename(ema(momentum, debias=False, accumulator_dtype=dtype_momentum), decay="momentum")
        )
    if weight_decay_rate is not None:
        txs.append(
            rename(
                add_decayed_weights(weight_decay_rate, weight_decay_mask),
                weight_decay="weight_decay_rate",
            )
        )
    txs.append(stateless(lambda updates, params: tree.scale(-1.0, updates)))  # descend
    return chain(*txs)
