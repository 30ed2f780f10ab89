r"""Learning-rate schedules: pure functions from the step count to a value.

A `Schedule` maps the step count $t$ (an int32 scalar array or a Python int) to a
float array of the default float dtype (float64 under `jax_enable_x64`, else
float32). No schedule branches in Python on $t$, so all run under `jit`, `vmap`,
`lax.scan` and `grad` (for a float $t$). Arguments are checked once, when the
schedule is built: a bad one raises `ValueError` naming it, its valid range and a
fix. Values that may be traced (`init_value`, rates) are checked only when
concrete; step counts and boundaries are static Python numbers.

Names, keyword arguments and defaults are optax's; the tests compare values with
optax. Where optax silently does something surprising (a non-positive step count, a
zero-length phase), these raise or follow the math; each docstring says where.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_edu.base import Schedule
from jaxopt_edu.hyper import float_dtype

__all__ = [
    "Schedule",
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]

# ----------------------------------------------------------------------------- helpers

_FIX = {  # how to fix a bad argument, by its name
    "transition_steps": "For a value that never changes use constant_schedule.",
    "transition_begin": "Use 0 to start at once.",
    "warmup_steps": "Use 0 for no warmup.",
    "decay_steps": "It is the schedule's length in steps, warmup_steps included.",
    "decay_rate": "Use a rate in (0, 1) to decay, above 1 to grow.",
    "power": "Use 1 for a straight line.",
    "exponent": "Use 1 for a plain cosine.",
    "alpha": "It is the final value divided by init_value.",
    "boundaries_and_scales": "Keys are steps >= 0; scales multiply the current value.",
    "boundaries": "Sort them and drop repeats.",
    "pct_start": "It is a fraction of transition_steps, at most pct_final.",
    "pct_final": "It is a fraction of transition_steps, at least pct_start.",
    "div_factor": "It divides peak_value; 1 keeps it.",
    "final_div_factor": "It divides the start value; 1 keeps it.",
}


def _float(x: Any) -> jax.Array:
    """`x` as an array of the default float dtype (an explicit cast, never a promotion)."""
    return jnp.asarray(x, dtype=float_dtype())


def _concrete(x: Any) -> np.ndarray | None:
    """`x` as a NumPy float array, or None when it is traced (then it is not checked)."""
    try:
        return np.asarray(x, dtype=float)
    except TypeError:  # what jax raises for a tracer
        return None


def _check(fn: str, arg: str, x: Any, lo: float, hi: float = math.inf, lo_open=False) -> None:
    """Raise `ValueError` unless a concrete `x` lies in [lo, hi] (or (lo, hi])."""
    v = _concrete(x)
    if v is None or np.all((v > lo if lo_open else v >= lo) & (v <= hi)):  # NaN fails
        return
    want = f"in [{lo:g}, {hi:g}]" if hi < math.inf else f"{'>' if lo_open else '>='} {lo:g}"
    raise ValueError(f"{fn}: `{arg}` must be {want}, got {x!r}. {_FIX[arg]}")


def _check_exponential(fn, init_name, init, steps, rate, begin, end) -> None:
    _check(fn, "transition_steps", steps, 1)
    _check(fn, "transition_begin", begin, 0)
    _check(fn, "decay_rate", rate, 0, lo_open=True)
    r, i, e = _concrete(rate), _concrete(init), _concrete(end)
    if end is None or r is None or i is None or e is None:
        return
    floor = np.all(r < 1)  # end_value is a floor when decaying, a ceiling when growing
    if not np.all(e <= i if floor else e >= i):
        raise ValueError(
            f"{fn}: `end_value` must be {'<=' if floor else '>='} `{init_name}` when "
            f"decay_rate {'<' if floor else '>='} 1, got end_value={end!r}, {init_name}="
            f"{init!r}. It is where the {'decay' if floor else 'growth'} stops."
        )


def _check_scales(fn: str, boundaries_and_scales: dict | None) -> list[tuple[Any, Any]]:
    items = sorted((boundaries_and_scales or {}).items())
    for boundary, scale in items:
        _check(fn, "boundaries_and_scales", boundary, 0)
        _check(fn, "boundaries_and_scales", scale, 0)
    return items


def _polynomial(init_value, end_value, power, steps, begin) -> Schedule:
    def schedule(count):
        t = jnp.clip(_float(count) - begin, 0, steps)
        frac = (steps - t) / steps  # not 1 - t / steps: under jit that can be -1e-7
        init, end = _float(init_value), _float(end_value)
        value = (init - end) * frac ** _float(power) + end
        # jit's division may be off by an ulp: keep a warmup from 0 from starting at -3e-8
        return jnp.clip(value, jnp.minimum(init, end), jnp.maximum(init, end))

    return schedule


def _half_cosine(count, steps) -> jax.Array:
    """(1 + cos(pi * clip(t, 0, T) / T)) / 2: 1 at t = 0, 0 from t = T on."""
    t = jnp.clip(_float(count), 0, steps)
    return 0.5 * (1.0 + jnp.cos(jnp.pi * t / steps))


def _interpolate(kind: str, knots: Sequence[float], values: Callable) -> Schedule:
    """Linear or cosine interpolation through `(knots[i], values()[i])`, flat outside.

    `knots` are static and non-decreasing; a zero-length piece is skipped (a jump).
    """

    def schedule(count):
        t, vals = _float(count), values()
        out = jnp.broadcast_to(vals[-1], jnp.shape(t))
        for i in reversed(range(len(knots) - 1)):  # the earliest piece holding t wins
            lo, hi, a, b = knots[i], knots[i + 1], vals[i], vals[i + 1]
            if hi > lo:
                pct = jnp.clip((t - lo) / (hi - lo), 0.0, 1.0)
                if kind == "linear":
                    piece = (b - a) * pct + a
                else:
                    piece = b + (a - b) / 2.0 * (jnp.cos(jnp.pi * pct) + 1.0)
                out = jnp.where(t < hi, piece, out)
        return out

    return schedule


def _join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    def schedule(count):
        out = _float(schedules[0](count))
        for boundary, later in zip(boundaries, schedules[1:], strict=True):
            out = jnp.where(count < boundary, out, _float(later(count - boundary)))
        return out

    return schedule


def _warmup_then(init_value, peak_value, warmup_steps: int, decay: Schedule) -> Schedule:
    if warmup_steps == 0:
        return decay
    warmup = _polynomial(init_value, peak_value, 1, warmup_steps, 0)
    return _join([warmup, decay], [warmup_steps])


# ------------------------------------------------------------------- basic schedules


def constant_schedule(value: chex.Numeric) -> Schedule:
    r"""Hold one value at every step.

    $$\eta_t = v$$

    Args:
        value: $v$, returned at every step.

    PyTorch: none (a float `lr`; `ConstantLR` is a temporary factor, not this).
    Pitfall: returns a float array shaped like `count`; optax returns `value` itself.
    Reference: none.
    """
    return lambda count: jnp.broadcast_to(_float(value), jnp.shape(count))


def polynomial_schedule(
    init_value: chex.Numeric,
    end_value: chex.Numeric,
    power: chex.Numeric,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Move from `init_value` to `end_value` along a polynomial, then hold.

    $$\eta_t = (\eta_0 - \eta_1)\Big(1 - \frac{\min(\max(t - B, 0), T)}{T}\Big)^p + \eta_1$$

    Args:
        init_value: $\eta_0$, held until $t = B$.
        end_value: $\eta_1$, held from $t = B + T$; may exceed `init_value`.
        power: $p > 0$; $p > 1$ moves fast at first, $p < 1$ late.
        transition_steps: $T \ge 1$, the length of the transition.
        transition_begin: $B \ge 0$, steps at `init_value` before it starts.

    PyTorch: `torch.optim.lr_scheduler.PolynomialLR` (ends at 0, no begin).
    Pitfall: optax silently turns `transition_steps <= 0` into a constant and a
    negative `transition_begin` into 0; both raise here.
    Reference: none.
    """
    fn = "polynomial_schedule"
    _check(fn, "transition_steps", transition_steps, 1)
    _check(fn, "transition_begin", transition_begin, 0)
    _check(fn, "power", power, 0, lo_open=True)
    return _polynomial(init_value, end_value, power, transition_steps, transition_begin)


def linear_schedule(
    init_value: chex.Numeric,
    end_value: chex.Numeric,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Move from `init_value` to `end_value` along a straight line, then hold.

    $$\eta_t = \eta_0 + (\eta_1 - \eta_0)\,\frac{\min(\max(t - B, 0), T)}{T}$$

    Args:
        init_value: $\eta_0$, held until $t = B$.
        end_value: $\eta_1$, held from $t = B + T$; may exceed `init_value`.
        transition_steps: $T \ge 1$, the length of the transition.
        transition_begin: $B \ge 0$, steps at `init_value` before it starts.

    PyTorch: `torch.optim.lr_scheduler.LinearLR` (factors of a base `lr`, no begin).
    Pitfall: `transition_steps` counts from `transition_begin`, not from 0; optax's
    silent constant for `transition_steps <= 0` raises here.
    Reference: none (`polynomial_schedule` with `power=1`).
    """
    fn = "linear_schedule"
    _check(fn, "transition_steps", transition_steps, 1)
    _check(fn, "transition_begin", transition_begin, 0)
    return _polynomial(init_value, end_value, 1, transition_steps, transition_begin)


def exponential_decay(
    init_value: chex.Numeric,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: chex.Numeric | None = None,
) -> Schedule:
    r"""Multiply by `decay_rate` every `transition_steps` steps, smoothly or in stairs.

    $$\eta_t = \eta_0\, r^{\,p},\qquad p = \max(t - B, 0)/T
    \quad (\lfloor p \rfloor \text{ if staircase}),$$
    clipped at `end_value`: a floor when $r < 1$, a ceiling when $r \ge 1$.

    Args:
        init_value: $\eta_0$, held until $t = B$.
        transition_steps: $T \ge 1$, steps per factor of $r$.
        decay_rate: $r > 0$; below 1 decays, above 1 grows.
        transition_begin: $B \ge 0$, steps at `init_value` before decay starts.
        staircase: if True, the value changes only every $T$ steps.
        end_value: optional bound, beyond `init_value` in the direction of travel.

    PyTorch: `torch.optim.lr_scheduler.ExponentialLR(gamma=r ** (1 / T))`; with
    `staircase=True`, `torch.optim.lr_scheduler.StepLR(step_size=T, gamma=r)`.
    Pitfall: $r$ is the factor per $T$ steps, not per step, and `staircase=True`
    holds `init_value` for $B + T$ steps. optax silently makes `transition_steps <= 0`
    or `decay_rate == 0` a constant; here they raise.
    Reference: none.
    """
    _check_exponential(
        "exponential_decay",
        "init_value",
        init_value,
        transition_steps,
        decay_rate,
        transition_begin,
        end_value,
    )

    def schedule(count):
        p = jnp.maximum(_float(count) - transition_begin, 0.0) / transition_steps
        if staircase:
            p = jnp.floor(p)
        rate = _float(decay_rate)
        value = _float(init_value) * rate**p
        if end_value is None:
            return value
        end = _float(end_value)
        return jnp.where(rate < 1, jnp.maximum(value, end), jnp.minimum(value, end))

    return schedule


def cosine_decay_schedule(
    init_value: chex.Numeric,
    decay_steps: int,
    alpha: chex.Numeric = 0.0,
    exponent: chex.Numeric = 1.0,
) -> Schedule:
    r"""Decay along half a cosine from `init_value` to `alpha * init_value`, then hold.

    $$\eta_t = \eta_0\Big[(1 - \alpha)\Big(\tfrac12\big(1 + \cos\tfrac{\pi \min(t, T)}{T}
    \big)\Big)^p + \alpha\Big]$$

    Args:
        init_value: $\eta_0$, the value at $t = 0$.
        decay_steps: $T \ge 1$, the length of the decay.
        alpha: $\alpha \in [0, 1]$, the final value as a fraction of `init_value`.
        exponent: $p > 0$, bends the curve (1 is a plain cosine).

    PyTorch: `torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=alpha * lr)`
    for $p = 1$; torch's curve rises again after `T_max`, this one holds.
    Pitfall: `decay_steps <= 0` raises (there is no decay to do); `alpha` is a
    fraction of `init_value`, not an absolute minimum.
    Reference: Loshchilov & Hutter, SGDR, https://arxiv.org/abs/1608.03983
    """
    fn = "cosine_decay_schedule"
    _check(fn, "decay_steps", decay_steps, 1)
    _check(fn, "alpha", alpha, 0, 1)
    _check(fn, "exponent", exponent, 0, lo_open=True)

    def schedule(count):
        a, c = _float(alpha), _half_cosine(count, decay_steps)
        return _float(init_value) * ((1.0 - a) * c ** _float(exponent) + a)

    return schedule


# ------------------------------------------------------------------ warmup schedules


def warmup_constant_schedule(
    init_value: chex.Numeric,
    peak_value: chex.Numeric,
    warmup_steps: int,
) -> Schedule:
    r"""Rise linearly from `init_value` to `peak_value`, then hold it.

    $$\eta_t = \eta_0 + (\eta_{peak} - \eta_0)\min(t / W, 1)$$

    Args:
        init_value: $\eta_0$, the value at $t = 0$.
        peak_value: $\eta_{peak}$, reached at $t = W$ and kept.
        warmup_steps: $W \ge 0$; 0 means no warmup: `peak_value` from the start.

    PyTorch: `torch.optim.lr_scheduler.LinearLR(start_factor=init/peak, total_iters=W)`.
    Pitfall: optax holds `init_value` forever when `warmup_steps=0`; here the value
    is `peak_value` from step 0, as the math says.
    Reference: Goyal et al., https://arxiv.org/abs/1706.02677
    """
    _check("warmup_constant_schedule", "warmup_steps", warmup_steps, 0)
    return _warmup_then(init_value, peak_value, warmup_steps, constant_schedule(peak_value))


def warmup_cosine_decay_schedule(
    init_value: chex.Numeric,
    peak_value: chex.Numeric,
    warmup_steps: int,
    decay_steps: int,
    end_value: chex.Numeric = 0.0,
    exponent: chex.Numeric = 1.0,
) -> Schedule:
    r"""Rise linearly to `peak_value`, then decay along half a cosine to `end_value`.

    $$\eta_t = \begin{cases} \eta_0 + (\eta_{peak} - \eta_0)\, t / W & t < W \\
    \eta_{end} + (\eta_{peak} - \eta_{end})\,c(t - W)^p & t \ge W \end{cases},\quad
    c(s) = \tfrac12\big(1 + \cos\tfrac{\pi \min(s, D - W)}{D - W}\big)$$

    Args:
        init_value: $\eta_0$, the value at $t = 0$.
        peak_value: $\eta_{peak}$, reached at $t = W$.
        warmup_steps: $W \ge 0$, the length of the warmup.
        decay_steps: $D > W$, the length of the whole schedule, warmup included.
        end_value: $\eta_{end}$, reached at $t = D$ and kept.
        exponent: $p > 0$, bends the cosine (1 is a plain cosine).

    PyTorch: `torch.optim.lr_scheduler.SequentialLR` of `LinearLR` and
    `CosineAnnealingLR(T_max=D - W, eta_min=end_value)`, milestone $W$.
    Pitfall: `decay_steps` includes the warmup. With `peak_value == 0` optax gives 0
    after the warmup whatever `end_value`; here the formula holds.
    Reference: Goyal et al., https://arxiv.org/abs/1706.02677; SGDR,
    https://arxiv.org/abs/1608.03983
    """
    fn = "warmup_cosine_decay_schedule"
    _check(fn, "warmup_steps", warmup_steps, 0)
    _check(fn, "decay_steps", decay_steps, warmup_steps, lo_open=True)
    _check(fn, "exponent", exponent, 0, lo_open=True)

    def decay(count):
        c = _half_cosine(count, decay_steps - warmup_steps) ** _float(exponent)
        return _float(end_value) + (_float(peak_value) - _float(end_value)) * c

    return _warmup_then(init_value, peak_value, warmup_steps, decay)


def warmup_exponential_decay_schedule(
    init_value: chex.Numeric,
    peak_value: chex.Numeric,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: chex.Numeric,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: chex.Numeric | None = None,
) -> Schedule:
    r"""Rise linearly to `peak_value`, then decay as `exponential_decay` does.

    $$\eta_t = \begin{cases} \eta_0 + (\eta_{peak} - \eta_0)\, t / W & t < W \\
    \eta_{peak}\, r^{\max(t - W - B,\, 0)/T} \text{ (clipped at end\_value)} & t \ge W
    \end{cases}$$

    Args:
        init_value: $\eta_0$, the value at $t = 0$.
        peak_value: $\eta_{peak}$, reached at $t = W$, where the decay starts.
        warmup_steps: $W \ge 0$, the length of the warmup.
        transition_steps: $T \ge 1$, steps per factor of $r$.
        decay_rate: $r > 0$; below 1 decays, above 1 grows.
        transition_begin: $B \ge 0$, steps at `peak_value` after the warmup.
        staircase: if True, the value changes only every $T$ steps.
        end_value: optional bound, as in `exponential_decay`.

    PyTorch: `torch.optim.lr_scheduler.SequentialLR` of `LinearLR` and `ExponentialLR`.
    Pitfall: `transition_begin` counts from the end of the warmup, not from step 0.
    Reference: Goyal et al., https://arxiv.org/abs/1706.02677
    """
    fn = "warmup_exponential_decay_schedule"
    _check(fn, "warmup_steps", warmup_steps, 0)
    _check_exponential(
        fn, "peak_value", peak_value, transition_steps, decay_rate, transition_begin, end_value
    )
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return _warmup_then(init_value, peak_value, warmup_steps, decay)


# --------------------------------------------------------------- piecewise schedules


def piecewise_constant_schedule(
    init_value: chex.Numeric,
    boundaries_and_scales: dict[int, float] | None = None,
) -> Schedule:
    r"""Multiply the value by a scale at each boundary step (step decay).

    $$\eta_t = \eta_0 \prod_{i:\ t \ge b_i} s_i$$

    Args:
        init_value: $\eta_0$, the value before the first boundary.
        boundaries_and_scales: `{b_i: s_i}`, steps $b_i \ge 0$ and scales $s_i \ge 0$.

    PyTorch: `torch.optim.lr_scheduler.MultiStepLR(milestones, gamma)` when every
    scale is the same `gamma`.
    Pitfall: scales compound: `{100: 0.1, 200: 0.1}` gives `0.01 * init_value`
    from step 200 on, not `0.1 * init_value`.
    Reference: He et al., ResNet (step decay), https://arxiv.org/abs/1512.03385
    """
    items = _check_scales("piecewise_constant_schedule", boundaries_and_scales)

    def schedule(count):
        t = _float(count)
        value = jnp.broadcast_to(_float(init_value), jnp.shape(t))
        for boundary, scale in items:
            value = jnp.where(t >= boundary, _float(scale) * value, value)
        return value

    return schedule


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: chex.Numeric,
    boundaries_and_scales: dict[int, float] | None = None,
) -> Schedule:
    r"""Interpolate, linearly or by cosine, between compounded values at boundaries.

    $$v_0 = \eta_0,\ v_i = v_{i-1} s_i;\qquad \eta_t = v_{i-1} + (v_i - v_{i-1})\,
    \phi\Big(\frac{t - b_{i-1}}{b_i - b_{i-1}}\Big),\ \ b_{i-1} \le t < b_i$$
    with $b_0 = 0$, $\phi(x) = x$ or $\frac12(1 - \cos\pi x)$, and $v_n$ after $b_n$.

    Args:
        interpolate_type: `"linear"` or `"cosine"`.
        init_value: $\eta_0$, the value at $t = 0$.
        boundaries_and_scales: `{b_i: s_i}`, steps $b_i \ge 0$ and scales $s_i \ge 0$.

    PyTorch: none (`LambdaLR` with a hand-written function).
    Pitfall: the value glides to $v_i$ and reaches it at $b_i$ (no jump), and the
    scales compound as in `piecewise_constant_schedule`.
    Reference: none.
    """
    fn = "piecewise_interpolate_schedule"
    if interpolate_type not in ("linear", "cosine"):
        raise ValueError(
            f"{fn}: `interpolate_type` must be 'linear' or 'cosine', got "
            f"{interpolate_type!r}. Pick one of the two."
        )
    items = _check_scales(fn, boundaries_and_scales)

    def values():
        vals = [_float(init_value)]
        for _, scale in items:
            vals.append(vals[-1] * _float(scale))
        return vals

    return _interpolate(interpolate_type, [0] + [b for b, _ in items], values)


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    r"""Run `schedules[k]` from `boundaries[k - 1]` on, each counting from 0 there.

    $$\eta_t = S_k(t - b_k)\quad \text{for } b_k \le t < b_{k+1},\ \ b_0 = 0$$

    Args:
        schedules: $S_0, \dots, S_n$, at least one.
        boundaries: $b_1 < \dots < b_n$, steps $\ge 0$, one fewer than `schedules`.

    PyTorch: `torch.optim.lr_scheduler.SequentialLR(schedulers, milestones=boundaries)`.
    Pitfall: each schedule sees the steps since its own boundary, so its
    `transition_begin` and lengths are measured from there.
    Reference: none.
    """
    fn, schedules, boundaries = "join_schedules", list(schedules), list(boundaries)
    if not schedules or not all(callable(s) for s in schedules):
        raise ValueError(
            f"{fn}: `schedules` must be a non-empty list of callables, got {schedules!r}. "
            "Wrap a number in constant_schedule."
        )
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{fn}: `boundaries` must have len(schedules) - 1 = {len(schedules) - 1} "
            f"entries, got {len(boundaries)}. Give one boundary between each pair."
        )
    _check(fn, "boundaries", boundaries, 0)
    if np.any(np.diff(np.asarray(boundaries, dtype=float)) <= 0):
        raise ValueError(
            f"{fn}: `boundaries` must be strictly increasing, got {boundaries!r}. "
            f"{_FIX['boundaries']}"
        )
    return _join(schedules, boundaries)


# ---------------------------------------------------------------- one-cycle and SGDR


def _check_onecycle(fn, transition_steps, pct_start, div_factor, final_div_factor) -> None:
    _check(fn, "transition_steps", transition_steps, 1)
    _check(fn, "pct_start", pct_start, 0, 1)
    _check(fn, "div_factor", div_factor, 0, lo_open=True)
    _check(fn, "final_div_factor", final_div_factor, 0, lo_open=True)


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: chex.Numeric,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    r"""One cycle of three straight lines: up to `peak_value`, back down, then to ~0.

    Linear between the knots $(0, \tfrac{\eta_{peak}}{d})$, $(\lfloor sT \rfloor,
    \eta_{peak})$, $(\lfloor fT \rfloor, \tfrac{\eta_{peak}}{d})$, $(T, \tfrac{\eta_{peak}}
    {d\,d_f})$, and $\eta_t = \tfrac{\eta_{peak}}{d\,d_f}$ for $t \ge T$:
    $$\eta_t = \eta_k + (\eta_{k+1} - \eta_k)\,\frac{t - t_k}{t_{k+1} - t_k},\quad
    t_k \le t < t_{k+1}$$

    Args:
        transition_steps: $T \ge 1$, the length of the cycle.
        peak_value: $\eta_{peak}$, the maximum.
        pct_start: $s \in [0, 1]$, the end of phase 1 as a fraction of $T$.
        pct_final: $f \in [s, 1]$, the end of phase 2.
        div_factor: $d > 0$, the start value is $\eta_{peak}/d$.
        final_div_factor: $d_f > 0$, the end value is $\eta_{peak}/(d\,d_f)$.

    PyTorch: `torch.optim.lr_scheduler.OneCycleLR(anneal_strategy='linear',
    three_phase=True)` (phase 2 always ends at $2s$; knots one step earlier).
    Pitfall: `peak_value` is the maximum (torch's `max_lr`), not the start; the end
    is `peak_value / (d * d_f)`. A phase rounding to zero steps is skipped here;
    optax's dict of knots silently drops one and mis-scales the rest.
    Reference: Smith, https://arxiv.org/abs/1803.09820
    """
    fn = "linear_onecycle_schedule"
    _check_onecycle(fn, transition_steps, pct_start, div_factor, final_div_factor)
    _check(fn, "pct_final", pct_final, pct_start, 1)
    knots = [0, int(pct_start * transition_steps), int(pct_final * transition_steps)]

    def values():
        low = _float(peak_value) / div_factor
        return [low, _float(peak_value), low, low / final_div_factor]

    return _interpolate("linear", knots + [transition_steps], values)


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: chex.Numeric,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    r"""One cycle of two cosine arcs: up to `peak_value`, then down to ~0.

    Knots $(0, \tfrac{\eta_{peak}}{d})$, $(\lfloor sT \rfloor, \eta_{peak})$,
    $(T, \tfrac{\eta_{peak}}{d\,d_f})$; $\eta_t = \tfrac{\eta_{peak}}{d\,d_f}$ for $t \ge T$:
    $$\eta_t = \eta_{k+1} + \frac{\eta_k - \eta_{k+1}}{2}\Big(1 + \cos\frac{\pi(t - t_k)}
    {t_{k+1} - t_k}\Big),\quad t_k \le t < t_{k+1}$$

    Args:
        transition_steps: $T \ge 1$, the length of the cycle.
        peak_value: $\eta_{peak}$, the maximum.
        pct_start: $s \in [0, 1]$, the fraction of the cycle spent rising.
        div_factor: $d > 0$, the start value is $\eta_{peak}/d$.
        final_div_factor: $d_f > 0$, the end value is $\eta_{peak}/(d\,d_f)$.

    PyTorch: `torch.optim.lr_scheduler.OneCycleLR(anneal_strategy='cos')` (its knots
    sit one step earlier, at $sT - 1$ and $T - 1$).
    Pitfall: `peak_value` is the maximum (torch's `max_lr`), not the start; the end
    is `peak_value / (d * d_f)`. With `pct_start=1` optax's dict of knots loses the
    peak; here the value rises to it and drops to the end at $T$.
    Reference: Smith, https://arxiv.org/abs/1803.09820
    """
    fn = "cosine_onecycle_schedule"
    _check_onecycle(fn, transition_steps, pct_start, div_factor, final_div_factor)

    def values():
        low = _float(peak_value) / div_factor
        return [low, _float(peak_value), low / final_div_factor]

    knots = [0, int(pct_start * transition_steps), transition_steps]
    return _interpolate("cosine", knots, values)


def sgdr_schedule(cosine_kwargs: Iterable[dict[str, chex.Numeric]]) -> Schedule:
    r"""SGD with warm restarts: `warmup_cosine_decay_schedule` cycles one after another.

    $$\eta_t = C_k\big(t - \textstyle\sum_{j<k} D_j\big)\quad \text{for }
    \textstyle\sum_{j<k} D_j \le t < \sum_{j \le k} D_j$$
    with $C_k$ = `warmup_cosine_decay_schedule(**cosine_kwargs[k])` of length $D_k$
    = its `decay_steps`; the last cycle's end value holds afterwards.

    Args:
        cosine_kwargs: one dict per cycle: `init_value`, `peak_value`,
            `warmup_steps`, `decay_steps`, optionally `end_value`, `exponent`.

    PyTorch: `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0, T_mult)`
    (no warmup, the same peak every cycle).
    Pitfall: a cycle's `decay_steps` includes its warmup. An empty list raises here
    (optax fails only at the first call).
    Reference: Loshchilov & Hutter, SGDR, https://arxiv.org/abs/1608.03983
    """
    cycles = [dict(kwargs) for kwargs in cosine_kwargs]
    if not cycles:
        raise ValueError(
            "sgdr_schedule: `cosine_kwargs` must hold at least one cycle, got none. "
            "Pass [dict(init_value=..., peak_value=..., warmup_steps=..., decay_steps=...)]."
        )
    schedules, ends = [], [0]
    for i, kwargs in enumerate(cycles):
        if "decay_steps" not in kwargs:
            raise ValueError(
                f"sgdr_schedule: `cosine_kwargs[{i}]` must have `decay_steps`, got "
                f"{kwargs!r}. Add the cycle's length."
            )
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        ends.append(ends[-1] + kwargs["decay_steps"])
    return _join(schedules, ends[1:-1])
