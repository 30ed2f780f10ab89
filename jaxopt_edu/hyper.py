"""Hyperparameters that live in the optimizer state.

Every numeric hyperparameter (learning rate, betas, eps, weight decay...) is kept in
the state as an array, in a `HyperParams` record, instead of being captured in a
closure. Three things follow:

* changing one (`jaxopt_edu.tree.set(state, learning_rate=1e-4)`) never recompiles a
  jitted step, because only an array's value changed;
* `jax.vmap` over states built with different values runs many optimizers at once;
* a schedule's current value can be read back (`jaxopt_edu.tree.get`).

A hyperparameter given as a schedule (a function of the step count) is evaluated
by the transformation itself: the stored value is always the one the NEXT update
will use, and `set` replaces the schedule by the value you give.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["HyperParams", "Interval", "float_dtype"]


class HyperParams(NamedTuple):
    """The numeric hyperparameters of one transformation, kept in its state.

    `values[name]` is the value the next `update` uses; `scheduled[name]` (only for
    names built from a schedule) is a boolean array, True while the value follows
    the schedule and False once `jaxopt_edu.tree.set` has overridden it.

    PyTorch: `optimizer.param_groups[i]["lr"]` and friends.
    Pitfall: read and write them with `jaxopt_edu.tree.get`/`set`; editing `values`
    by hand with a Python float changes the dtype and recompiles the step. Do not wrap
    our optimizers in `optax.inject_hyperparams`: they already keep their
    hyperparameters in the state and read them from there, so values injected from
    outside are ignored. `get` returns the value the NEXT update uses (optax's
    `inject_hyperparams` shows the one the last update used).
    Reference: optax's `inject_hyperparams` (opt-in there, built in here).
    """

    values: dict[str, jax.Array]
    scheduled: dict[str, jax.Array]


def float_dtype() -> np.dtype:
    """Default float dtype: float64 when `jax_enable_x64` is on, else float32."""
    return jnp.asarray(1.0).dtype


class Interval(NamedTuple):
    """A closed, open or half-open range of valid values, used to validate arguments."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, x: float) -> bool:
        if math.isnan(x):
            return False
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below

    def __str__(self) -> str:
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.lo == -math.inf:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"in {left}{self.lo:g}, {self.hi:g}{right}"


NONNEG = Interval(0.0)
POSITIVE = Interval(0.0, lo_open=True)
UNIT_OPEN = Interval(0.0, 1.0, hi_open=True)  # [0, 1)
UNIT = Interval(0.0, 1.0)  # [0, 1]
ANY = Interval()


def _concrete_float(x: Any) -> float | None:
    """The Python float of a concrete scalar, or None for a tracer."""
    if isinstance(x, jax.core.Tracer):
        return None
    arr = np.asarray(x)
    if arr.shape != ():
        raise ValueError(f"expected a scalar, got an array of shape {arr.shape}")
    return float(arr)


def _check_scalar(owner: str, name: str, value: Any, interval: Interval, where: str) -> None:
    """A concrete value must be a scalar inside `interval`; a traced one passes unchecked."""
    try:
        x = _concrete_float(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{owner}: `{name}`{where}: {e}. Pass a scalar.") from None
    if x is not None and not interval.contains(x):
        raise ValueError(
            f"{owner}: `{name}` must be {interval}, got {x!r}{where}. "
            f"Pass a value {interval} (or a schedule returning such values)."
        )


class Hyper:
    """Construction-time description of a transformation's hyperparameters.

    `Hyper("adam", b1=(0.9, UNIT_OPEN), ...)` validates each value (a number or a
    schedule) at once, raising `ValueError` that names the argument and its range;
    `init()` builds the `HyperParams` for the state; `advance(hp, count)` moves the
    scheduled ones to the value for step `count`.
    """

    def __init__(self, owner: str, **items: tuple[Any, Interval]):
        self.owner = owner
        self.constants: dict[str, Any] = {}
        self.schedules: dict[str, Callable] = {}
        for name, (value, interval) in items.items():
            if callable(value):
                self._check_schedule(owner, name, value, interval)
                self.schedules[name] = value
                continue
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.number | np.ndarray | jax.Array
            ):
                raise ValueError(
                    f"{owner}: `{name}` must be a number or a schedule (a function of the "
                    f"step count), got {value!r} of type {type(value).__name__}."
                )
            _check_scalar(owner, name, value, interval, "")
            self.constants[name] = value

    @staticmethod
    def _check_schedule(owner: str, name: str, fn: Callable, interval: Interval) -> None:
        """Call the schedule at step 0: it must take a count and give a valid scalar."""
        try:
            first = fn(jnp.zeros([], jnp.int32))
        except Exception as e:  # a schedule that cannot be called with a step count
            raise ValueError(
                f"{owner}: `{name}` is callable but calling it with a step count failed "
                f"({type(e).__name__}: {e}). A schedule is a function count -> value."
            ) from None
        _check_scalar(owner, name, first, interval, " (its schedule's value at step 0)")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.constants) + tuple(self.schedules)

    def init(self) -> HyperParams:
        dtype = float_dtype()
        zero = jnp.zeros([], jnp.int32)
        values = {k: jnp.asarray(v, dtype=dtype) for k, v in self.constants.items()}
        values.update({k: jnp.asarray(f(zero), dtype=dtype) for k, f in self.schedules.items()})
        scheduled = {k: jnp.ones([], bool) for k in self.schedules}
        return HyperParams(values=values, scheduled=scheduled)

    def advance(self, hp: HyperParams, count: jax.Array) -> HyperParams:
        """Values for the update at step `count` (a schedule unless overridden)."""
        if not self.schedules:
            return hp
        values = dict(hp.values)
        for k, f in self.schedules.items():
            old = values[k]
            values[k] = jnp.where(hp.scheduled[k], jnp.asarray(f(count), old.dtype), old)
        return HyperParams(values=values, scheduled=hp.scheduled)

    def init_count(self, needed: bool = False) -> jax.Array | None:
        """The step count for the state: an int32 zero when the transformation's math
        needs it (`needed`, e.g. bias correction) or a hyperparameter is a schedule;
        else None. A count nothing reads would still cross `jit` at every call, and on
        a GPU its increment is a kernel launch of its own (optax's `trace` and
        constant-learning-rate scaling keep no count either)."""
        return jnp.zeros([], jnp.int32) if needed or self.schedules else None

    def step(self, hp: HyperParams, count: jax.Array | None):
        """`(count + 1, hyperparameters for the next update)`; a None count stays None."""
        if count is None:
            return None, hp
        count = safe_increment(count)
        return count, self.advance(hp, count)


def safe_increment(count: jax.Array) -> jax.Array:
    """count + 1, saturating at the int32 maximum instead of wrapping negative."""
    limit = jnp.iinfo(count.dtype).max
    return jnp.where(count < limit, count + 1, limit).astype(count.dtype)


def rename(tx, **mapping: str):
    """`tx` with its hyperparameters renamed `old=new` in the state.

    Aliases use it so a hyperparameter carries the name of the alias's argument:
    `sgd(momentum=0.9)` keeps `trace`'s `decay` under the name `momentum`.
    """
    from jaxopt_edu.base import GradientTransformation

    back = {v: k for k, v in mapping.items()}

    def relabel(state, table):
        def node(x):
            if not isinstance(x, HyperParams):
                return x
            return HyperParams(
                values={table.get(k, k): v for k, v in x.values.items()},
                scheduled={table.get(k, k): v for k, v in x.scheduled.items()},
            )

        return jax.tree.map(node, state, is_leaf=lambda x: isinstance(x, HyperParams))

    def init_fn(params):
        return relabel(tx.init(params), mapping)

    def update_fn(updates, state, params=None, **extra_args):
        updates, state = tx.update(updates, relabel(state, back), params, **extra_args)
        return updates, relabel(state, mapping)

    return GradientTransformation(init_fn, update_fn)
