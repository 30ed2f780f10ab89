"""Test problems: functions with known minima, and small learning tasks with generated data.

Every problem is a `Problem`: a start (`init(key)`), a pure training loss
`loss(params, key)` (the key drives dropout; jit-, vmap- and grad-able) and, for
learning tasks, a validation metric. `get_problem(name, **options)` builds one by
name; `list_problems()` lists them. Data are generated with a fixed seed, so every
run of every problem sees the same numbers.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Problem",
    "ackley",
    "beale",
    "bilinear",
    "digits",
    "get_problem",
    "himmelblau",
    "ill_conditioned_quadratic",
    "list_problems",
    "logistic_regression",
    "rastrigin",
    "regression",
    "rosenbrock",
    "saddle",
    "spirals",
]


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """An optimization problem: where to start, what to minimise, how to validate.

    Fields:
      name, description: the registry name and a one-line summary.
      init: `init(key) -> params`, a start point. Test functions start at `start`
        perturbed by the key (use `initial_params(key, seed_index)`, which keeps the
        standard start for seed 0); learning tasks draw random weights.
      loss: `loss(params, key) -> scalar`, the training loss (penalties included;
        the key drives dropout). Pure: works under `jit`, `vmap`, `grad`.
      val_metric: `val_metric(params) -> scalar` on held-out data (no dropout), or None.
      val_metric_name, higher_is_better: what `val_metric` measures and its direction.
      optimum, optimum_value: a known minimiser and the loss there (None if unknown).
      kind: "function" (a test function) or "task" (a learning task with data).
      dim: the number of parameters.
      start: the standard start of a test function (None for tasks).
      options: the options the problem was built with (e.g. `{"dropout": 0.1}`).

    PyTorch: none (a `torch.nn.Module` plus a `DataLoader` play this role).
    Pitfall: `loss` must be called with a key even where it is unused; a task with
    `dropout > 0` gives a noisy loss, so compare its curves over several seeds.
    Reference: Jamil & Yang, A literature survey of benchmark functions for global
    optimisation problems, 2013, https://arxiv.org/abs/1308.4008
    """

    name: str
    description: str
    init: Callable[[jax.Array], Any]
    loss: Callable[[Any, jax.Array], jax.Array]
    val_metric: Callable[[Any], jax.Array] | None
    val_metric_name: str | None
    higher_is_better: bool
    optimum: Any | None
    optimum_value: float | None
    kind: str
    dim: int
    start: Any | None = None
    options: dict = dataclasses.field(default_factory=dict)

    def initial_params(self, key: jax.Array, seed_index: Any = 0) -> Any:
        """The start for seed `seed_index`: `start` for seed 0 of a test function, else `init(key)`.

        `seed_index` may be traced (under `vmap` over seeds).
        """
        params = self.init(key)
        if self.start is None:
            return params
        return jax.tree.map(lambda s, p: jnp.where(seed_index == 0, s, p), self.start, params)


def _dtype() -> np.dtype:
    """Default float dtype: float64 when `jax_enable_x64` is on, else float32."""
    return np.dtype(jnp.asarray(1.0).dtype)


def _function(name, description, f, start, jitter, optimum, optimum_value, **options) -> Problem:
    """A test function of a vector `x` as a Problem (the key is unused by its loss)."""
    dt = _dtype()
    start = jnp.asarray(start, dt)
    opt = None if optimum is None else jnp.asarray(optimum, dt)

    def init(key):
        return start + jitter * jax.random.normal(key, start.shape, dt)

    def loss(params, key=None):
        del key
        return f(params)

    return Problem(
        name, description, init, loss, None, None, False, opt, optimum_value, "function",
        int(start.size), start, options,
    )  # fmt: skip


# ---------------------------------------------------------------- test functions


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Problem:
    """Rosenbrock's banana valley: $f(x, y) = (a - x)^2 + b\\,(y - x^2)^2$.

    Minimum $f = 0$ at $(a, a^2)$; start $(-1.2, 1)$. The valley floor is a curved
    parabola whose walls are $b$ times steeper than its floor: gradient descent
    zig-zags across the walls with a step small enough not to diverge (the Hessian's
    largest eigenvalue near the start is ~1300) and then crawls along the floor.
    Momentum and adaptive methods show their worth here.
    PyTorch: none. Pitfall: a small loss is not the minimum yet: the valley floor is
    nearly flat, so check the distance to $(a, a^2)$ too.
    Reference: Rosenbrock 1960, https://doi.org/10.1093/comjnl/3.3.175
    """

    def f(p):
        x, y = p[0], p[1]
        return (a - x) ** 2 + b * (y - x * x) ** 2

    return _function("rosenbrock", "curved narrow valley, min 0 at (1, 1)", f, [-1.2, 1.0], 0.3,
                     [a, a * a], 0.0, a=a, b=b)  # fmt: skip


def beale() -> Problem:
    """Beale: $f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2$.

    Minimum $f = 0$ at $(3, 0.5)$; start $(1, 1)$. Flat plateaus meet walls rising as
    $y^6$: a step size that is safe on the walls is hopeless on the plateau (and the
    other way round), a test of how an optimizer adapts its scale.
    PyTorch: none. Pitfall: from starts with $|y| > 2$ the walls give huge gradients;
    plain SGD then needs a tiny rate (or clipping).
    Reference: Beale 1958; Jamil & Yang 2013, https://arxiv.org/abs/1308.4008
    """

    def f(p):
        x, y = p[0], p[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return _function("beale", "plateaus and steep walls, min 0 at (3, 0.5)", f, [1.0, 1.0], 0.3,
                     [3.0, 0.5], 0.0)  # fmt: skip


def himmelblau() -> Problem:
    """Himmelblau: $f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2$.

    Four minima, all with $f = 0$: $(3, 2)$ (the one given as `optimum`),
    $(-2.805118, 3.131312)$, $(-3.779310, -3.283186)$, $(3.584428, -1.848126)$; start
    $(0, 0)$. Which minimum a run reaches depends on the start and the optimizer:
    perturbed seeds land in different basins (the course's "premature convergence"
    trap has a benign twin here: several equally good answers).
    PyTorch: none. Pitfall: `optimum` names one of four minima; judge runs by the
    loss, not by the distance to $(3, 2)$.
    Reference: Himmelblau, Applied Nonlinear Programming, 1972.
    """

    def f(p):
        x, y = p[0], p[1]
        return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2

    return _function("himmelblau", "four equal minima, 0 at (3, 2) and three others", f,
                     [0.0, 0.0], 1.0, [3.0, 2.0], 0.0)  # fmt: skip


def rastrigin(dim: int = 2) -> Problem:
    """Rastrigin: $f(x) = 10 n + \\sum_{i=1}^n \\left(x_i^2 - 10\\cos(2\\pi x_i)\\right)$.

    Minimum $f = 0$ at the origin; start $x_i = 2.2$. A bowl covered in ~$10^n$ local
    minima (near the integer points): gradient methods stop in the nearest one,
    the course's premature-convergence trap. A larger learning rate or momentum can
    hop over a few ripples, never reliably; this is a global-optimization problem.
    PyTorch: none. Pitfall: a final loss near 1, 2, 4... is a local minimum, not slow
    convergence: more steps will not help.
    Reference: Rastrigin 1974; https://en.wikipedia.org/wiki/Rastrigin_function
    """
    _check_int("rastrigin", "dim", dim, 1)

    def f(x):
        return 10.0 * dim + jnp.sum(x * x - 10.0 * jnp.cos(2.0 * jnp.pi * x))

    return _function("rastrigin", "many local minima (N-D), min 0 at 0", f, [2.2] * dim, 0.5,
                     [0.0] * dim, 0.0, dim=dim)  # fmt: skip


def ackley() -> Problem:
    """Ackley: $f = -20 e^{-0.2\\sqrt{(x^2+y^2)/2}} - e^{(\\cos 2\\pi x + \\cos 2\\pi y)/2} + e + 20$.

    Minimum $f = 0$ at the origin; start $(2.2, 1.6)$. A nearly flat outer region
    full of shallow local minima around one deep funnel: gradients far out are small
    and point at the nearest ripple (premature convergence, and vanishing updates
    for plain SGD). The root gets a $10^{-30}$ under it so the gradient at 0 is 0,
    not NaN.
    PyTorch: none. Pitfall: the same final loss for every optimizer means they all
    stopped in the same ripple, not that they are equally good.
    Reference: Ackley 1987; https://www.sfu.ca/~ssurjano/ackley.html
    """

    def f(p):
        x, y = p[0], p[1]
        r = jnp.sqrt(0.5 * (x * x + y * y) + 1e-30)
        c = 0.5 * (jnp.cos(2.0 * jnp.pi * x) + jnp.cos(2.0 * jnp.pi * y))
        return -20.0 * jnp.exp(-0.2 * r) - jnp.exp(c) + math.e + 20.0

    return _function("ackley", "flat ripples around one deep funnel, min 0 at 0", f,
                     [2.2, 1.6], 0.5, [0.0, 0.0], 0.0)  # fmt: skip


def saddle() -> Problem:
    """A saddle with no minimum: $f(x, y) = x^2 - y^2$.

    Stationary point (a saddle, not a minimum) at the origin; start $(1, 10^{-3})$,
    right next to the ridge. The loss is unbounded below: there is no `optimum`. What
    it shows is escape: gradient descent leaves the saddle only as fast as
    $|y_t| \\propto (1 + 2\\eta)^t$, from a tiny start, so it lingers; sign-like steps
    (Adam, RMSprop) move $y$ by about $\\eta$ per step however small the gradient, and
    escape at once. Expect the loss to fall without bound: a run that ends with a
    very negative loss escaped; one near 0 is stuck.
    PyTorch: none. Pitfall: here a loss racing to $-\\infty$ (even 'diverged') is
    success; do not read the table's ranking as on other problems.
    Reference: Dauphin et al. 2014, https://arxiv.org/abs/1406.2572
    """

    def f(p):
        return p[0] ** 2 - p[1] ** 2

    return _function("saddle", "x^2 - y^2: no minimum, tests escape from a saddle", f,
                     [1.0, 1e-3], 1e-2, None, None)  # fmt: skip


def ill_conditioned_quadratic(
    dim: int = 10, condition_number: float = 100.0, rotate: bool = True
) -> Problem:
    """An N-D quadratic bowl with a chosen condition number: $f(x) = \\tfrac12 x^\\top H x$.

    $H = Q \\operatorname{diag}(\\lambda) Q^\\top$ with $\\lambda_i$ spaced geometrically
    from 1 to $\\kappa$ (so $L_{max} = \\kappa$, $L_{min} = 1$) and $Q$ a fixed random
    rotation (`rotate=False`: $Q = I$). Minimum $f = 0$ at 0; start $x_i = 1$.
    Gradient descent diverges for $\\eta > 2/L_{max}$ and at best contracts the
    flattest direction by $(1 - 2/(\\kappa+1))$ per step: its step count grows like
    $\\kappa$ (the course's dimension trap: condition numbers grow with dimension).
    Unrotated, diagonal preconditioners (Adam, RMSprop, AdaGrad) undo the
    conditioning; rotated, they cannot, which is the honest test.
    PyTorch: none. Pitfall: `rotate=False` flatters diagonal preconditioners.
    Reference: Nocedal & Wright, Numerical Optimization, 2nd ed., section 3.3.
    """
    _check_int("ill_conditioned_quadratic", "dim", dim, 2)
    if not (isinstance(condition_number, int | float) and condition_number >= 1.0):
        raise ValueError(
            f"ill_conditioned_quadratic: `condition_number` must be a number >= 1, got "
            f"{condition_number!r}."
        )
    lam = np.geomspace(1.0, float(condition_number), dim)
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(dim, dim)))[0] if rotate else np.eye(dim)
    h = jnp.asarray((q * lam[None, :]) @ q.T, _dtype())

    def f(x):
        return 0.5 * jnp.sum(x * (h @ x))

    desc = f"rotated quadratic, condition number {condition_number:g}, min 0 at 0"
    opts = {"dim": dim, "condition_number": condition_number, "rotate": rotate}
    return _function(
        "ill_conditioned_quadratic", desc, f, [1.0] * dim, 0.1, [0.0] * dim, 0.0, **opts
    )


@jax.custom_vjp
def _game(z):
    return 0.5 * jnp.sum(z * z)


def _game_fwd(z):
    return _game(z), z


def _game_bwd(z, g):
    # The field of simultaneous gradient descent-ascent on f(x, y) = x y:
    # (df/dx, -df/dy) = (y, -x). It is not the gradient of any loss (it has curl).
    return (g * jnp.stack([z[1], -z[0]]),)


_game.defvjp(_game_fwd, _game_bwd)


def bilinear() -> Problem:
    """The bilinear game $\\min_x \\max_y\\, x y$, posed as descent on its gradient field.

    Equilibrium at $(0, 0)$; start $(1, 1)$. Simultaneous gradient descent-ascent is
    $(x, y) \\leftarrow (x, y) - \\eta\\,(y, -x)$: a rotation, not a descent. Here
    `jax.grad(loss)` returns exactly that field $(\\partial_x f, -\\partial_y f)$ (a
    `custom_vjp`), so any optimizer of this library plays the game as written, while
    the loss reported is the squared distance to the equilibrium
    $\\tfrac12 (x^2 + y^2)$. Plain GDA multiplies it by $(1 + \\eta^2)$ every step: it
    spirals out, at any learning rate. Momentum makes it worse; averaging the iterates,
    extra-gradient or optimism converge. `optimum_value` is 0 (the distance at the
    equilibrium). Pitfall: the "loss" is not a potential of the gradient; second
    derivatives (`jax.hessian`) are not defined for it.
    PyTorch: none.
    Reference: Gidel et al. 2019, https://arxiv.org/abs/1807.04740 ; Mescheder et al.
    2017, https://arxiv.org/abs/1705.10461
    """
    return _function("bilinear", "min_x max_y xy: descent-ascent spirals out", _game,
                     [1.0, 1.0], 0.3, [0.0, 0.0], 0.0)  # fmt: skip


# ---------------------------------------------------------------- learning tasks


def _check_int(owner, name, value, lo):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{owner}: `{name}` must be an integer >= {lo}, got {value!r}.")


def _check_reg(owner, dropout, l1, l2):
    for name, v in (("dropout", dropout), ("l1", l1), ("l2", l2)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{owner}: `{name}` must be a number, got {v!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{owner}: `dropout` must be in [0, 1), got {dropout!r}.")
    for name, v in (("l1", l1), ("l2", l2)):
        if v < 0:
            raise ValueError(f"{owner}: `{name}` must be >= 0, got {v!r}.")


def _split(x, y, n_val, seed):
    """A fixed train/validation split (the last `n_val` of a seeded permutation).

    Inputs are stored feature-major, shape (features, samples): the layout in which
    XLA:CPU runs a batch (`vmap`) of small MLPs fastest (measured: ~25% less time per
    point in a 64-point sweep than sample-major).
    """
    perm = np.random.default_rng(seed).permutation(len(x))
    dt = _dtype()
    tr, va = perm[:-n_val], perm[-n_val:]
    return tuple(jnp.asarray(a, dt) for a in (x[tr].T, y[tr], x[va].T, y[va]))


def _mlp_init(key, sizes):
    """LeCun-normal weights $W \\sim \\mathcal N(0, 1/\\text{fan-in})$, zero biases."""
    dt = _dtype()
    keys = jax.random.split(key, len(sizes) - 1)
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = jax.random.normal(keys[i], (a, b), dt) / math.sqrt(a)
        params[f"b{i}"] = jnp.zeros((b,), dt)
    return params


def _mlp(params, x, key, dropout):
    """tanh MLP on feature-major inputs `x` (features, samples); returns (outputs, samples).

    Layer $i$: $h \\leftarrow W_i^\\top h + b_i$, tanh between layers; inverted dropout
    (kept units rescaled by $1/(1-p)$) on hidden units when `key` is given.
    """
    n = len(params) // 2
    h = x
    for i in range(n):
        h = params[f"w{i}"].T @ h + params[f"b{i}"][:, None]
        if i < n - 1:
            h = jnp.tanh(h)
            if dropout > 0.0 and key is not None:
                keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - dropout, h.shape)
                h = jnp.where(keep, h / (1.0 - dropout), jnp.zeros_like(h))
    return h


def _penalty(params, l1, l2):
    """$\\ell_1 \\sum |W| + \\ell_2 \\sum W^2$ over weight matrices (biases excluded)."""
    ws = [v for k, v in params.items() if k.startswith("w")]
    out = jnp.zeros([], ws[0].dtype)
    if l1:
        out = out + l1 * sum(jnp.sum(jnp.abs(w)) for w in ws)
    if l2:
        out = out + l2 * sum(jnp.sum(w * w) for w in ws)
    return out


def _bce(logits, y):
    """Mean binary cross-entropy from logits: $\\text{softplus}(z) - y z$."""
    return jnp.mean(jax.nn.softplus(logits) - y * logits)


def _task(name, description, sizes, data, kind, dropout, l1, l2, options) -> Problem:
    """An MLP (or linear model when `sizes` has two entries) on fixed data."""
    xtr, ytr, xva, yva = data

    def init(key):
        return _mlp_init(key, sizes)

    def loss(params, key):
        out = _mlp(params, xtr, key, dropout)
        if kind == "binary":
            data_loss = _bce(out[0], ytr)
        elif kind == "multiclass":
            logp = jax.nn.log_softmax(out, axis=0)
            data_loss = -jnp.mean(jnp.take_along_axis(logp, ytr[None, :].astype(jnp.int32), 0))
        else:
            data_loss = jnp.mean((out[0] - ytr) ** 2)
        return data_loss + _penalty(params, l1, l2)

    def val_metric(params):
        out = _mlp(params, xva, None, 0.0)
        if kind == "binary":
            return jnp.mean(((out[0] > 0) == (yva > 0.5)).astype(out.dtype))
        if kind == "multiclass":
            return jnp.mean((jnp.argmax(out, 0) == yva.astype(jnp.int32)).astype(out.dtype))
        return jnp.mean((out[0] - yva) ** 2)

    metric = "val_mse" if kind == "regression" else "val_accuracy"
    dim = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return Problem(name, description, init, loss, val_metric, metric, kind != "regression",
                   None, None, "task", dim, None, dict(options))  # fmt: skip


def logistic_regression(dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0) -> Problem:
    """Logistic regression on 400 generated points in 10-D (300 train, 100 validation).

    $$L(w, b) = \\frac1n \\sum_i \\operatorname{softplus}(z_i) - y_i z_i
    + \\ell_1 \\|w\\|_1 + \\ell_2 \\|w\\|_2^2,\\qquad z_i = x_i^\\top w + b$$

    Labels are drawn from a logistic model with a fixed true $w$ (seed 0), so the
    problem is convex, with a unique minimiser when `l2 > 0`. Dropout (on the inputs
    here) acts as an adaptive L2 penalty. Validation metric: accuracy.
    PyTorch: none (a `torch.nn.Sequential` of `Linear` and `Tanh` is the model).
    Pitfall: the data are noisy, so validation accuracy saturates near 0.9 whatever the
    optimizer; compare losses, not accuracies.
    Reference: Wager, Wang & Liang 2013, https://arxiv.org/abs/1307.1493 (dropout as
    regularization).
    """
    _check_reg("logistic_regression", dropout, l1, l2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 10))
    w_true = rng.normal(size=10)
    y = (rng.uniform(size=400) < 1.0 / (1.0 + np.exp(-x @ w_true))).astype(float)
    data = _split(x, y, 100, 1)
    problem = _task("logistic_regression", "convex classifier, 10 features", [10, 1], data,
                    "binary", 0.0, l1, l2, {"dropout": dropout, "l1": l1, "l2": l2})  # fmt: skip
    if dropout == 0.0:
        return problem
    xtr, ytr = data[0], data[1]

    def loss(params, key):  # dropout on the inputs of the linear model
        keep = jax.random.bernoulli(key, 1.0 - dropout, xtr.shape)
        xd = jnp.where(keep, xtr / (1.0 - dropout), jnp.zeros_like(xtr))
        z = (params["w0"].T @ xd)[0] + params["b0"]
        return _bce(z, ytr) + _penalty(params, l1, l2)

    return dataclasses.replace(problem, loss=loss)


def spirals(hidden: int = 32, dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0) -> Problem:
    """Two interleaved spirals, classified by a 2-`hidden`-`hidden`-1 tanh MLP.

    300 points (150 per arm, radius and angle $t \\in [0.25, 3\\pi]$, noise 0.05),
    240 train and 60 validation. Loss: mean binary cross-entropy plus
    $\\ell_1\\|W\\|_1 + \\ell_2\\|W\\|_2^2$ on the weight matrices; dropout on hidden units.
    Validation metric: accuracy. A classic hard case for gradient descent: long flat
    stretches while the network finds the spiral, then fast progress.
    PyTorch: none (a `torch.nn.Sequential` of `Linear` and `Tanh` is the model).
    Pitfall: full-batch training here; with `dropout > 0` the loss is noisy.
    Reference: Lang & Witbrock 1988, Learning to tell two spirals apart.
    """
    _check_int("spirals", "hidden", hidden, 1)
    _check_reg("spirals", dropout, l1, l2)
    rng = np.random.default_rng(0)
    t = np.sqrt(rng.uniform(size=150)) * (3 * np.pi - 0.25) + 0.25
    arm = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + 0.05 * rng.normal(size=(300, 2))
    y = np.concatenate([np.zeros(150), np.ones(150)])
    opts = {"hidden": hidden, "dropout": dropout, "l1": l1, "l2": l2}
    return _task("spirals", "two-spirals MLP classifier (2-D inputs)", [2, hidden, hidden, 1],
                 _split(x, y, 60, 1), "binary", dropout, l1, l2, opts)  # fmt: skip


def regression(hidden: int = 32, dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0) -> Problem:
    """A 1-D nonlinear regression, fitted by a 1-`hidden`-`hidden`-1 tanh MLP.

    $y = \\sin(2x) + 0.3x + 0.1\\,\\varepsilon$ for 200 points $x \\in [-3, 3]$ (150 train,
    50 validation). Loss: mean squared error plus $\\ell_1\\|W\\|_1 + \\ell_2\\|W\\|_2^2$.
    Validation metric: validation MSE (lower is better; the noise floor is 0.01).
    PyTorch: none (a `torch.nn.Sequential` of `Linear` and `Tanh` is the model).
    Pitfall: training MSE below 0.01 is overfitting the noise; watch validation.
    Reference: Bishop, Pattern Recognition and Machine Learning, 2006, ch. 5.
    """
    _check_int("regression", "hidden", hidden, 1)
    _check_reg("regression", dropout, l1, l2)
    rng = np.random.default_rng(0)
    x = rng.uniform(-3.0, 3.0, size=(200, 1))
    y = np.sin(2 * x[:, 0]) + 0.3 * x[:, 0] + 0.1 * rng.normal(size=200)
    opts = {"hidden": hidden, "dropout": dropout, "l1": l1, "l2": l2}
    return _task("regression", "1-D curve fit by an MLP (MSE)", [1, hidden, hidden, 1],
                 _split(x, y, 50, 1), "regression", dropout, l1, l2, opts)  # fmt: skip


def digits(hidden: int = 64, dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0) -> Problem:
    """scikit-learn's 8x8 handwritten digits, classified by a 64-`hidden`-10 tanh MLP.

    1797 images (pixels scaled to [0, 1]), 1437 train and 360 validation. Loss: mean
    softmax cross-entropy plus $\\ell_1\\|W\\|_1 + \\ell_2\\|W\\|_2^2$; dropout on hidden
    units. Validation metric: accuracy. Needs scikit-learn (`pip install scikit-learn`).
    PyTorch: none (a `torch.nn.Sequential` of `Linear` and `Tanh` is the model).
    Pitfall: full batch (1437 images) per step; the smallest real-data task here.
    Reference: Alpaydin & Kaynak 1998, UCI Optical Recognition of Handwritten Digits.
    """
    _check_int("digits", "hidden", hidden, 1)
    _check_reg("digits", dropout, l1, l2)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "The 'digits' problem needs scikit-learn, which is not installed. "
            "Install it with `pip install scikit-learn`, or pick another problem."
        ) from None
    ds = load_digits()
    opts = {"hidden": hidden, "dropout": dropout, "l1": l1, "l2": l2}
    return _task("digits", "8x8 digits MLP classifier (needs scikit-learn)", [64, hidden, 10],
                 _split(ds.data / 16.0, ds.target, 360, 1), "multiclass", dropout, l1, l2, opts)  # fmt: skip


# ---------------------------------------------------------------- registry

_REGISTRY: dict[str, tuple[Callable[..., Problem], str]] = {
    "rosenbrock": (rosenbrock, "curved narrow valley, min 0 at (1, 1)"),
    "beale": (beale, "plateaus and steep walls, min 0 at (3, 0.5)"),
    "himmelblau": (himmelblau, "four equal minima, 0 at (3, 2) and three others"),
    "rastrigin": (rastrigin, "many local minima (N-D, option dim), min 0 at 0"),
    "ackley": (ackley, "flat ripples around one deep funnel, min 0 at 0"),
    "saddle": (saddle, "x^2 - y^2: no minimum, tests escape from a saddle"),
    "ill_conditioned_quadratic": (
        ill_conditioned_quadratic,
        "rotated N-D quadratic (options dim, condition_number), min 0 at 0",
    ),
    "bilinear": (bilinear, "min_x max_y xy: gradient descent-ascent spirals out"),
    "logistic_regression": (logistic_regression, "convex linear classifier on 10 features"),
    "spirals": (spirals, "two-spirals MLP classifier"),
    "regression": (regression, "1-D curve fit by a small MLP (MSE)"),
    "digits": (digits, "8x8 handwritten digits MLP classifier (needs scikit-learn)"),
}


def list_problems() -> dict[str, str]:
    """Every problem `get_problem` knows: `{name: one-line description}`.

    PyTorch: none. Pitfall: `digits` is listed even without scikit-learn; building it
    then raises an ImportError saying what to install.
    Reference: Jamil & Yang 2013, https://arxiv.org/abs/1308.4008
    """
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def get_problem(name: str, **options: Any) -> Problem:
    """Build the problem called `name`, with its `options` (e.g. `dim=5`, `dropout=0.1`).

    Raises `ValueError` for an unknown name (listing the valid ones), an option the
    problem does not take (listing those it does), or an option out of range.

    PyTorch: none. Pitfall: options are per problem: `hidden` exists only for the MLP
    tasks, `dim` for rastrigin and the quadratic; see `list_problems()`.
    Reference: Jamil & Yang 2013, https://arxiv.org/abs/1308.4008
    """
    if isinstance(name, Problem):
        return name
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"get_problem: unknown problem {name!r}; choose one of: {', '.join(_REGISTRY)}."
        )
    builder = _REGISTRY[name][0]
    accepted = list(inspect.signature(builder).parameters)
    for opt in options:
        if opt not in accepted:
            raise ValueError(
                f"get_problem({name!r}): unknown option `{opt}`; this problem takes "
                f"{', '.join(accepted) if accepted else 'no options'}."
            )
    return builder(**options)
