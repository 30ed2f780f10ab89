"""Record torch.optim reference trajectories for ``tests/test_torch_reference.py``.

The output, ``tests/reference/torch_trajectories.npz``, is committed so the test suite
never needs torch. Rerun this script ONLY when the problem or the list of cases below
changes (and commit the regenerated ``.npz`` together with the change)::

    pip install torch==2.13.0 numpy   # in a separate venv; do not add torch to the dev env
    python tests/reference/record_torch.py

Problem (float64 throughout, deterministic, smooth and non-convex)::

    loss(w, b) = mean((tanh(X @ w + b) @ c - y) ** 2) + 0.1 * sum(sin(w))

with ``w`` of shape (3, 4) and ``b`` of shape (4,), a fixed data set ``X`` (8, 3),
``y`` (8,), ``c`` (4,), and initial parameters, all drawn from ``np.random.RandomState(1)``.

Contents of the ``.npz``:

* ``X``, ``y``, ``c``, ``w0``, ``b0``: the data and the initial parameters;
* ``num_steps``: the number of optimizer steps recorded (200);
* ``cases``: JSON list of case names, in order;
* ``meta``: JSON with the torch version and the loss formula;
* for each case: ``{case}/w`` (num_steps + 1, 3, 4) and ``{case}/b`` (num_steps + 1, 4),
  the parameters before the first step and after every step; ``{case}/loss``
  (num_steps + 1,), the loss at those points; and ``{case}/hparams``, a JSON string
  ``{"optimizer": <torch.optim class name>, "kwargs": {...}}`` (the exact kwargs passed
  to torch, apart from ``foreach=False``).
"""

import json
import os

import numpy as np
import torch

NUM_STEPS = 200
# Seed 1 because the trajectories must be well conditioned: a rounding-level (1 ulp)
# difference in one step must stay tiny for 200 steps for an rtol=1e-10 comparison to be
# meaningful. Measured with optax standing in for our optimizers: with seed 1 every case
# stays within 1/100 of the rtol=1e-10, atol=1e-12 budget; with seed 0, RMSprop amplified
# rounding differences to ~1e-11 absolute, i.e. ~1e-8 relative on a weight passing near
# zero, and with seed 4 Adadelta diverged by 2e-3.
SEED = 1
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_trajectories.npz")

# case name -> (torch.optim class name, kwargs). Keep in sync with the table in
# tests/test_torch_reference.py.
CASES = {
    "sgd": ("SGD", {"lr": 0.05}),
    "sgd_momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}),
    "sgd_nesterov": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "sgd_momentum_wd": ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    "adam": ("Adam", {"lr": 0.01}),
    "adam_betas_eps_wd": (
        "Adam",
        {"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.01},
    ),
    "adamw": ("AdamW", {"lr": 0.01, "weight_decay": 0.05}),
    "rmsprop": ("RMSprop", {"lr": 0.01}),
    "rmsprop_centered": ("RMSprop", {"lr": 0.01, "centered": True}),
    "rmsprop_momentum": ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    "rmsprop_centered_momentum": ("RMSprop", {"lr": 0.005, "centered": True, "momentum": 0.9}),
    "adagrad": ("Adagrad", {"lr": 0.1}),
    "adagrad_init_acc": ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.1}),
    "adadelta": ("Adadelta", {"lr": 1.0}),
    "adadelta_rho_wd": ("Adadelta", {"lr": 0.5, "rho": 0.95, "weight_decay": 0.01}),
    "adamax": ("Adamax", {"lr": 0.02}),
    "adamax_betas_wd": ("Adamax", {"lr": 0.02, "betas": [0.8, 0.99], "weight_decay": 0.01}),
}


def make_problem():
    rng = np.random.RandomState(SEED)
    X = rng.randn(8, 3)
    y = rng.randn(8)
    c = rng.randn(4)
    w0 = 0.5 * rng.randn(3, 4)
    b0 = 0.1 * rng.randn(4)
    return X, y, c, w0, b0


def loss_fn(w, b, X, y, c):
    # Must match the jax.numpy version in tests/test_torch_reference.py.
    pred = torch.tanh(X @ w + b) @ c
    return torch.mean((pred - y) ** 2) + 0.1 * torch.sum(torch.sin(w))


def run_case(opt_name, kwargs, X, y, c, w0, b0):
    X, y, c = (torch.tensor(a, dtype=torch.float64) for a in (X, y, c))
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    torch_kwargs = dict(kwargs)
    if "betas" in torch_kwargs:
        torch_kwargs["betas"] = tuple(torch_kwargs["betas"])
    opt = getattr(torch.optim, opt_name)([w, b], foreach=False, **torch_kwargs)

    ws, bs, losses = [w.detach().numpy().copy()], [b.detach().numpy().copy()], []
    for _ in range(NUM_STEPS):
        opt.zero_grad()
        loss = loss_fn(w, b, X, y, c)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        ws.append(w.detach().numpy().copy())
        bs.append(b.detach().numpy().copy())
    with torch.no_grad():
        losses.append(loss_fn(w, b, X, y, c).item())
    return np.stack(ws), np.stack(bs), np.asarray(losses)


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float64)
    X, y, c, w0, b0 = make_problem()
    out = {
        "X": X,
        "y": y,
        "c": c,
        "w0": w0,
        "b0": b0,
        "num_steps": np.array(NUM_STEPS),
        "cases": np.array(json.dumps(list(CASES))),
        "meta": np.array(
            json.dumps(
                {
                    "torch_version": torch.__version__,
                    "seed": SEED,
                    "loss": "mean((tanh(X @ w + b) @ c - y) ** 2) + 0.1 * sum(sin(w))",
                }
            )
        ),
    }
    for case, (opt_name, kwargs) in CASES.items():
        ws, bs, losses = run_case(opt_name, kwargs, X, y, c, w0, b0)
        assert np.all(np.isfinite(ws)) and np.all(np.isfinite(bs)), case
        out[f"{case}/w"] = ws
        out[f"{case}/b"] = bs
        out[f"{case}/loss"] = losses
        out[f"{case}/hparams"] = np.array(json.dumps({"optimizer": opt_name, "kwargs": kwargs}))
        print(f"{case:28s} loss {losses[0]:+.6f} -> {losses[-1]:+.6f}")
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
