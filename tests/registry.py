"""One registry of optimizer configurations: every optimizer of the library is here.

Each `Case` names a configuration, builds ours, builds optax's twin (None where optax
has no such thing or is known to be wrong), lists the hyperparameter names its state
must expose, and gives settings under which it converges on the kit's problems.
A new optimizer joins this list or it does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import jaxopt_edu as jo


class Case(NamedTuple):
    name: str
    ours: Callable[[], Any]
    theirs: Callable[[], Any] | None
    hyperparams: tuple[str, ...]
    # convergence on the kit's problems: (factory, steps, tol)
    parabola: tuple[Callable[[], Any], int, float]
    rosenbrock: tuple[Callable[[], Any], int, float] | None


def _decaying_step(count):
    """A hand-written schedule -0.01 / (1 + t / 100), shared by ours and optax's twin."""
    return -0.01 / (1.0 + jnp.asarray(count).astype(jnp.float32) / 100.0)


def _decaying_step_big(count):
    return -0.05 / (1.0 + jnp.asarray(count).astype(jnp.float32) / 100.0)


ADAM_HP = ("learning_rate", "b1", "b2", "eps", "eps_root")

CASES = [
    Case(
        "sgd",
        lambda: jo.sgd(0.05),
        lambda: optax.sgd(0.05),
        ("learning_rate",),
        (lambda: jo.sgd(0.3), 200, 1e-4),
        (lambda: jo.sgd(1e-3), 20000, 5e-2),
    ),
    Case(
        "sgd_momentum",
        lambda: jo.sgd(0.02, momentum=0.9),
        lambda: optax.sgd(0.02, momentum=0.9),
        ("learning_rate", "momentum"),
        (lambda: jo.sgd(0.1, momentum=0.9), 300, 1e-4),
        (lambda: jo.sgd(2e-4, momentum=0.9), 20000, 5e-2),
    ),
    Case(
        "sgd_nesterov",
        lambda: jo.sgd(0.02, momentum=0.9, nesterov=True),
        lambda: optax.sgd(0.02, momentum=0.9, nesterov=True),
        ("learning_rate", "momentum"),
        (lambda: jo.sgd(0.1, momentum=0.9, nesterov=True), 300, 1e-4),
        (lambda: jo.sgd(2e-4, momentum=0.9, nesterov=True), 20000, 5e-2),
    ),
    Case(
        "adagrad",
        lambda: jo.adagrad(0.1),
        lambda: optax.adagrad(0.1),
        ("learning_rate", "eps"),
        (lambda: jo.adagrad(0.5), 500, 1e-3),
        (lambda: jo.adagrad(0.5), 20000, 5e-2),
    ),
    Case(
        "adagrad_torch",
        lambda: jo.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-10, eps_in_sqrt=False),
        None,  # torch parity: checked against recorded torch.optim trajectories
        ("learning_rate", "eps"),
        (lambda: jo.adagrad(0.5, 0.0, 1e-10, eps_in_sqrt=False), 500, 1e-3),
        None,
    ),
    Case(
        "rmsprop",
        lambda: jo.rmsprop(0.01),
        lambda: optax.rmsprop(0.01),
        ("learning_rate", "decay", "eps"),
        (lambda: jo.rmsprop(0.01), 1000, 2e-2),
        (lambda: jo.rmsprop(1e-3), 20000, 5e-2),
    ),
    Case(
        "rmsprop_centered_momentum_nesterov",
        lambda: jo.rmsprop(0.005, centered=True, momentum=0.9, nesterov=True),
        lambda: optax.rmsprop(0.005, centered=True, momentum=0.9, nesterov=True),
        ("learning_rate", "decay", "eps", "momentum"),
        (lambda: jo.rmsprop(0.003, centered=True, momentum=0.9), 1500, 2e-2),
        None,
    ),
    Case(
        "rmsprop_torch_bias_correction",
        # lr 0.003: at 0.01 the bias-corrected steps are sign-like on the oracle problem
        # and a 1-ulp difference (per-step outputs agree exactly) grows to 7e-6 by step 200
        lambda: jo.rmsprop(0.003, decay=0.99, eps_in_sqrt=False, bias_correction=True),
        lambda: optax.rmsprop(0.003, decay=0.99, eps_in_sqrt=False, bias_correction=True),
        ("learning_rate", "decay", "eps"),
        (lambda: jo.rmsprop(0.01, decay=0.99, eps_in_sqrt=False), 1000, 2e-2),
        None,
    ),
    Case(
        "adadelta",
        lambda: jo.adadelta(0.5, weight_decay=0.01),
        lambda: optax.adadelta(0.5, weight_decay=0.01),
        ("learning_rate", "rho", "eps", "weight_decay"),
        (lambda: jo.adadelta(1.0), 3000, 5e-2),  # AdaDelta is slow: see its Pitfall
        None,
    ),
    Case(
        "adam",
        lambda: jo.adam(0.01),
        lambda: optax.adam(0.01),
        ADAM_HP,
        (lambda: jo.adam(0.05), 500, 1e-3),
        (lambda: jo.adam(0.01), 10000, 5e-2),
    ),
    Case(
        "adam_eps_root",
        lambda: jo.adam(0.01, b1=0.8, b2=0.95, eps=1e-6, eps_root=1e-10),
        lambda: optax.adam(0.01, b1=0.8, b2=0.95, eps=1e-6, eps_root=1e-10),
        ADAM_HP,
        (lambda: jo.adam(0.05, b1=0.8, b2=0.95), 500, 1e-2),
        None,
    ),
    Case(
        "adamw",
        lambda: jo.adamw(0.01, weight_decay=0.05),
        lambda: optax.adamw(0.01, weight_decay=0.05),
        ADAM_HP + ("weight_decay",),
        (lambda: jo.adamw(0.05), 500, 1e-3),
        (lambda: jo.adamw(0.01, weight_decay=0.0), 10000, 5e-2),
    ),
    Case(
        "nadam",
        lambda: jo.nadam(0.01),
        lambda: optax.nadam(0.01),
        ADAM_HP,
        (lambda: jo.nadam(0.05), 500, 1e-3),
        (lambda: jo.nadam(0.01), 10000, 5e-2),
    ),
    Case(
        "nadamw",
        lambda: jo.nadamw(0.01, weight_decay=0.05),
        lambda: optax.nadamw(0.01, weight_decay=0.05),
        ADAM_HP + ("weight_decay",),
        (lambda: jo.nadamw(0.05), 500, 1e-3),
        None,
    ),
    Case(
        "amsgrad",
        lambda: jo.amsgrad(0.01),
        lambda: optax.amsgrad(0.01),
        ADAM_HP,
        (lambda: jo.amsgrad(0.05), 500, 1e-3),
        (lambda: jo.amsgrad(0.1), 10000, 5e-2),
    ),
    Case(
        "adamax",
        lambda: jo.adamax(0.02),
        lambda: optax.adamax(0.02),
        ("learning_rate", "b1", "b2", "eps"),
        (lambda: jo.adamax(0.05), 500, 1e-3),
        (lambda: jo.adamax(0.01), 10000, 5e-2),
    ),
    Case(
        "adamaxw",
        lambda: jo.adamaxw(0.02, weight_decay=0.05),
        lambda: optax.adamaxw(0.02, weight_decay=0.05),
        ("learning_rate", "b1", "b2", "eps", "weight_decay"),
        (lambda: jo.adamaxw(0.05), 500, 1e-3),
        None,
    ),
    Case(
        "clip_adamw_warmup_cosine",
        lambda: jo.chain(
            jo.clip_by_global_norm(1.0),
            jo.adamw(jo.warmup_cosine_decay_schedule(1e-3, 0.02, 20, 200, 1e-3)),
        ),
        lambda: optax.chain(
            optax.clip_by_global_norm(1.0),
            # the same schedule function for both: optax's schedules compute in float32
            # even with x64 on; the schedules themselves are compared in test_schedules
            optax.adamw(jo.warmup_cosine_decay_schedule(1e-3, 0.02, 20, 200, 1e-3)),
        ),
        ADAM_HP + ("weight_decay", "max_norm"),
        (
            lambda: jo.chain(
                jo.clip_by_global_norm(1.0),
                jo.adamw(jo.warmup_cosine_decay_schedule(1e-3, 0.05, 20, 600, 1e-3)),
            ),
            600,
            1e-2,
        ),
        None,
    ),
    Case(
        "sign_sgd_exponential_decay",
        lambda: jo.chain(
            jo.scale_by_sign(), jo.scale_by_learning_rate(jo.exponential_decay(0.01, 10, 0.9))
        ),
        lambda: optax.chain(
            optax.scale_by_sign(),
            optax.scale_by_learning_rate(jo.exponential_decay(0.01, 10, 0.9)),
        ),
        ("learning_rate",),
        (
            lambda: jo.chain(
                jo.scale_by_sign(), jo.scale_by_learning_rate(jo.exponential_decay(0.1, 10, 0.9))
            ),
            500,
            1e-2,
        ),
        None,
    ),
    Case(
        "ema_clip_l2",
        lambda: jo.chain(jo.add_decayed_weights(0.01), jo.clip(1.0), jo.ema(0.9), jo.scale(-0.05)),
        lambda: optax.chain(
            optax.add_decayed_weights(0.01), optax.clip(1.0), optax.ema(0.9), optax.scale(-0.05)
        ),
        ("weight_decay", "max_delta", "decay", "step_size"),
        (lambda: jo.chain(jo.ema(0.5), jo.scale(-0.2)), 300, 1e-3),
        None,
    ),
    Case(
        "adam_l1_subgradient",
        lambda: jo.chain(jo.add_l1_subgradient(0.01), jo.adam(0.01)),
        # optax has no L1 transform: its twin writes the equation g + lam * sign(p) by hand
        lambda: optax.chain(
            optax.stateless(
                lambda g, p: jax.tree.map(lambda gi, pi: gi + 0.01 * jnp.sign(pi), g, p)
            ),
            optax.adam(0.01),
        ),
        ADAM_HP + ("l1_strength",),
        (lambda: jo.chain(jo.add_l1_subgradient(1e-4), jo.adam(0.05)), 500, 1e-2),
        None,
    ),
    Case(
        "adam_proximal_l1",
        lambda: jo.chain(jo.adam(0.01), jo.proximal_l1(0.01, 0.01)),
        None,  # no optax twin: checked against the closed-form soft threshold in test_regularization
        ("b1", "b2", "eps", "eps_root", "l1_strength"),
        (lambda: jo.chain(jo.adam(0.05), jo.proximal_l1(1e-4, 0.05)), 500, 1e-2),
        None,
    ),
    Case(
        "lamb_chain_trust_ratio",
        lambda: jo.chain(
            jo.scale_by_adam(eps=1e-6),
            jo.add_decayed_weights(0.01),
            jo.scale_by_trust_ratio(),
            jo.scale_by_learning_rate(0.01),
        ),
        lambda: optax.lamb(0.01, eps=1e-6, weight_decay=0.01),
        # "eps" is in both scale_by_adam and scale_by_trust_ratio: get() asks for a path
        ("learning_rate", "b1", "b2", "weight_decay", "min_norm", "trust_coefficient"),
        (
            lambda: jo.chain(
                jo.scale_by_adam(), jo.scale_by_trust_ratio(), jo.scale_by_learning_rate(0.05)
            ),
            500,
            1e-2,
        ),
        None,
    ),
    Case(
        "adam_scale_by_schedule",
        lambda: jo.chain(jo.scale_by_adam(), jo.scale_by_schedule(_decaying_step)),
        lambda: optax.chain(optax.scale_by_adam(), optax.scale_by_schedule(_decaying_step)),
        ("b1", "b2", "eps", "eps_root", "step_size"),
        (lambda: jo.chain(jo.scale_by_adam(), jo.scale_by_schedule(_decaying_step_big)), 500, 1e-2),
        None,
    ),
    Case(
        "lion",
        lambda: jo.lion(0.01, weight_decay=0.05),
        lambda: optax.lion(0.01, weight_decay=0.05),
        ("learning_rate", "b1", "b2", "weight_decay"),
        # sign steps with a constant lr settle about lr from the minimum (0.005-0.006 here)
        (lambda: jo.lion(0.005), 1500, 2e-2),
        (lambda: jo.lion(1e-3), 10000, 5e-2),
    ),
    Case(
        "adafactor",
        # min_dim_size_to_factor=2: the suites' small matrices take the factored path
        lambda: jo.adafactor(0.003, min_dim_size_to_factor=2),
        # float64 decay_rate: optax computes 1 - t^-c in float32 for a Python float
        lambda: optax.adafactor(0.003, min_dim_size_to_factor=2, decay_rate=jnp.float64(0.8)),
        ("learning_rate", "decay_rate", "eps", "clipping_threshold", "min_scale"),
        (lambda: jo.adafactor(0.1, min_dim_size_to_factor=2), 500, 1e-2),
        (lambda: jo.adafactor(0.01, min_dim_size_to_factor=2), 10000, 5e-2),
    ),
    Case(
        "muon",
        # lr 0.002: at 0.02 Muon oscillates near the oracle problem's minimum, Newton-Schulz
        # amplifies last-bit differences and the 200-step gap to optax grows to 0.15
        lambda: jo.muon(0.002, weight_decay=0.01),
        lambda: optax.contrib.muon(0.002, weight_decay=0.01),
        (
            "learning_rate",
            "beta",
            "eps",
            "weight_decay",
            "adam_b1",
            "adam_b2",
            "adam_eps_root",
            "adam_weight_decay",
        ),
        # a matrix step keeps its size however small the gradient: the rate must decay
        (lambda: jo.muon(jo.cosine_decay_schedule(0.1, 500)), 500, 1e-2),
        (lambda: jo.muon(0.01), 10000, 5e-2),  # rosenbrock is one vector leaf: the Adam path
    ),
]
