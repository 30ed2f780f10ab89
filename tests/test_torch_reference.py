"""Trajectory parity with torch.optim, using recorded reference trajectories.

``tests/reference/torch_trajectories.npz`` holds 200-step float64 trajectories of
torch.optim optimizers on a small smooth non-convex problem (see
``tests/reference/record_torch.py``, the only place torch is needed). Here each case
is rerun with our optimizers and the whole trajectory, every parameter leaf at every
step, must agree with torch to rtol=1e-10.

``TORCH_PARITY`` below is the reference for how a torch.optim configuration maps onto
ours. The hyperparameters themselves come from the ``.npz`` (the exact kwargs given to
torch), completed with torch's defaults from ``TORCH_DEFAULTS``, so every value is
passed explicitly and none of our defaults is relied on.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu

REFERENCE = Path(__file__).parent / "reference" / "torch_trajectories.npz"

# torch.optim defaults (torch 2.13) for the hyperparameters the cases use.
TORCH_DEFAULTS = {
    "SGD": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "Adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "AdamW": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
    "RMSprop": {
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    },
    "Adagrad": {
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    },
    "Adadelta": {"rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    "Adamax": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
}


def _sgd(k):
    # torch's momentum buffer starts at the first gradient, ours (trace) at zero: the
    # same values, since 0 * momentum + g == g. nesterov: g + momentum * buffer.
    return jaxopt_edu.sgd(
        learning_rate=k["lr"], momentum=k["momentum"] or None, nesterov=k["nesterov"]
    )


def _coupled_l2(k, inner):
    # torch's ``weight_decay`` (SGD, Adam, Adamax, ...) is coupled L2: g += wd * p before
    # the optimizer sees the gradient.
    return jaxopt_edu.chain(jaxopt_edu.add_decayed_weights(k["weight_decay"]), inner)


def _adam(k):
    b1, b2 = k["betas"]
    return jaxopt_edu.adam(learning_rate=k["lr"], b1=b1, b2=b2, eps=k["eps"])


def _adamax(k):
    b1, b2 = k["betas"]
    return jaxopt_edu.adamax(learning_rate=k["lr"], b1=b1, b2=b2, eps=k["eps"])


def _adamw(k):
    # Decoupled: torch does p *= 1 - lr * wd, ours adds wd * p to the Adam direction
    # before scaling by -lr; the same step.
    b1, b2 = k["betas"]
    return jaxopt_edu.adamw(
        learning_rate=k["lr"], b1=b1, b2=b2, eps=k["eps"], weight_decay=k["weight_decay"]
    )


def _rmsprop(k):
    # torch: p -= lr * g / (sqrt(v [- m^2 if centered]) + eps), eps OUTSIDE the sqrt,
    # accumulators start at zero, momentum buffer b = momentum * b + g / denom.
    return jaxopt_edu.rmsprop(
        learning_rate=k["lr"],
        decay=k["alpha"],
        eps=k["eps"],
        eps_in_sqrt=False,
        centered=k["centered"],
        momentum=k["momentum"] or None,
    )


def _adagrad(k):
    # torch: p -= lr * g / (sqrt(sum g^2) + eps), eps OUTSIDE the sqrt; optax puts it
    # inside, hence eps_in_sqrt=False. lr_decay == 0 in every case.
    assert k["lr_decay"] == 0.0
    return jaxopt_edu.adagrad(
        learning_rate=k["lr"],
        initial_accumulator_value=k["initial_accumulator_value"],
        eps=k["eps"],
        eps_in_sqrt=False,
    )


def _adadelta(k):
    # Adadelta's weight_decay is coupled L2 in both torch and ours.
    return jaxopt_edu.adadelta(
        learning_rate=k["lr"], rho=k["rho"], eps=k["eps"], weight_decay=k["weight_decay"]
    )


# case -> (torch.optim class, factory taking the completed torch kwargs).
TORCH_PARITY = {
    "sgd": ("SGD", _sgd),
    "sgd_momentum": ("SGD", _sgd),
    "sgd_nesterov": ("SGD", _sgd),
    "sgd_momentum_wd": ("SGD", lambda k: _coupled_l2(k, _sgd(k))),
    "adam": ("Adam", _adam),
    "adam_betas_eps_wd": ("Adam", lambda k: _coupled_l2(k, _adam(k))),
    "adamw": ("AdamW", _adamw),
    "rmsprop": ("RMSprop", _rmsprop),
    "rmsprop_centered": ("RMSprop", _rmsprop),
    "rmsprop_momentum": ("RMSprop", _rmsprop),
    "rmsprop_centered_momentum": ("RMSprop", _rmsprop),
    "adagrad": ("Adagrad", _adagrad),
    "adagrad_init_acc": ("Adagrad", _adagrad),
    "adadelta": ("Adadelta", _adadelta),
    "adadelta_rho_wd": ("Adadelta", _adadelta),
    "adamax": ("Adamax", _adamax),
    "adamax_betas_wd": ("Adamax", lambda k: _coupled_l2(k, _adamax(k))),
}

RTOL = 1e-10
ATOL = 1e-12

with np.load(REFERENCE) as _ref:
    REF = {key: _ref[key] for key in _ref.files}
CASES = json.loads(str(REF["cases"]))
NUM_STEPS = int(REF["num_steps"])


def _torch_kwargs(case):
    hparams = json.loads(str(REF[f"{case}/hparams"]))
    torch_name, _ = TORCH_PARITY[case]
    assert hparams["optimizer"] == torch_name, case
    return {**TORCH_DEFAULTS[torch_name], **hparams["kwargs"]}


def loss_fn(params, data):
    # Identical to loss_fn in tests/reference/record_torch.py.
    X, y, c = data
    pred = jnp.tanh(X @ params["w"] + params["b"][None, :]) @ c
    return jnp.mean((pred - y) ** 2) + 0.1 * jnp.sum(jnp.sin(params["w"]))


def test_table_covers_recorded_cases():
    assert sorted(TORCH_PARITY) == sorted(CASES)


def _max_rel_err(actual, expected):
    return float(np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), ATOL / RTOL)))


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_matches_torch_trajectory(case, x64):
    _, factory = TORCH_PARITY[case]
    opt = factory(_torch_kwargs(case))

    data = tuple(jnp.asarray(REF[name], dtype=jnp.float64) for name in ("X", "y", "c"))
    params = {
        "w": jnp.asarray(REF["w0"], dtype=jnp.float64),
        "b": jnp.asarray(REF["b0"], dtype=jnp.float64),
    }
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(loss_fn)(params, data)
        updates, state = opt.update(grads, state, params)
        return jaxopt_edu.apply_updates(params, updates), state

    trajectory = {name: [np.asarray(leaf)] for name, leaf in params.items()}
    for _ in range(NUM_STEPS):
        params, state = step(params, state)
        for name, leaf in params.items():
            assert leaf.dtype == jnp.float64, (name, leaf.dtype)
            trajectory[name].append(np.asarray(leaf))

    for name, leaves in trajectory.items():
        actual, expected = np.stack(leaves), REF[f"{case}/{name}"]
        assert actual.shape == expected.shape
        print(
            f"\n[torch-reference] {case}/{name}: max rel err {_max_rel_err(actual, expected):.2e}"
        )
        np.testing.assert_allclose(
            actual,
            expected,
            rtol=RTOL,
            atol=ATOL,
            err_msg=f"{case}/{name}: max rel err {_max_rel_err(actual, expected):.3e}",
        )
