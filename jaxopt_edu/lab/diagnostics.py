"""Diagnostics: watch an optimizer at work, then name the trap a run fell into.

Two halves, one per moment of a run:

* during the run, `monitor(opt)` wraps any optimizer and keeps in its state the
  numbers that tell how a step went (gradient norm before and after clipping,
  update norm, update/param ratio, learning rate, non-finite steps), read with
  `monitor_values(state)`;
* after the run, `diagnose(history)` reads the per-step record of those numbers
  and names the course's traps it shows (divergence, plateau, premature
  convergence, vanishing updates, oscillation, overfitting, a diverging game),
  each as a `Finding`
  with the evidence and a concrete fix; `format_findings` prints them.

    opt = monitor(jo.adam(1e-3), clip_norm=1.0)
    state = opt.init(params)
    ...
    updates, state = opt.update(grads, state, params)
    row = monitor_values(state)          # {"grad_norm": ..., "update_ratio": ...}
    ...
    print(format_findings(diagnose(history)))

The lab uses only the public API of `jaxopt_edu`.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_edu as jo

__all__ = ["Finding", "MonitorState", "diagnose", "format_findings", "monitor", "monitor_values"]

_F32 = jnp.float32
_VALUE_FIELDS = (
    "count",
    "grad_norm",
    "clipped_grad_norm",
    "update_norm",
    "param_norm",
    "update_ratio",
    "learning_rate",
    "nonfinite_count",
)

# ================================================================ monitor


class MonitorState(NamedTuple):
    """State of `monitor`: the inner optimizer's state and the latest step's numbers.

    Every number describes the most recent `update` (zeros before the first one,
    except `learning_rate`, which is then the value the first update will use).
    """

    inner_state: chex.ArrayTree  # the wrapped optimizer's state (hyperparameters live here)
    count: jax.Array  # shape=(), int32: updates done so far
    grad_norm: jax.Array  # float32: ||g_t|| as received, before clipping
    clipped_grad_norm: jax.Array  # float32: ||clip(g_t)|| (= grad_norm without clip_norm)
    update_norm: jax.Array  # float32: ||u_t||, the update returned
    param_norm: jax.Array  # float32: ||theta_{t-1}|| (0 when params is None)
    update_ratio: jax.Array  # float32: ||u_t|| / ||theta_{t-1}|| (0 when params is None)
    learning_rate: jax.Array  # float32: the learning rate step t used (NaN if unknown)
    nonfinite_count: jax.Array  # shape=(), int32: steps whose gradients held inf or NaN


def _saturating_increment(count: jax.Array) -> jax.Array:
    limit = jnp.iinfo(jnp.int32).max
    return jnp.where(count < limit, count + 1, count).astype(jnp.int32)


def _norm(tree: chex.ArrayTree) -> jax.Array:
    # Diagnostics are not part of the math: stop gradients so that meta-gradients
    # through a monitored step never meet d sqrt(x)/dx at x = 0 (inf * 0 = NaN).
    return jo.tree.norm(jax.lax.stop_gradient(tree)).astype(_F32)


def _has_nonfinite(tree: chex.ArrayTree) -> jax.Array:
    bad = jnp.zeros([], bool)
    for x in jax.tree.leaves(tree):
        bad = bad | ~jnp.all(jnp.isfinite(jnp.asarray(x)))
    return bad


def _learning_rate(inner_state: chex.ArrayTree) -> jax.Array:
    """The inner state's `learning_rate` when exactly one exists, else NaN (float32)."""
    found = jo.tree.get_all_with_path(inner_state, "learning_rate")
    if len(found) == 1:  # static: decided at trace time from the state's structure
        return jnp.asarray(found[0][1]).astype(_F32)
    return jnp.full([], jnp.nan, _F32)


def monitor(
    inner: jo.GradientTransformation, *, clip_norm: float | None = None
) -> jo.GradientTransformationExtraArgs:
    """Wrap an optimizer so its state records how every step went.

    For gradients $g_t$, params $\\theta_{t-1}$ and the update $u_t$ the wrapped
    optimizer returns, the state (`MonitorState`) keeps

    $$\\|g_t\\|_2,\\quad \\|\\tilde g_t\\|_2 \\ (\\tilde g_t = g_t \\min(1, c/\\|g_t\\|)),\\quad
    \\|u_t\\|_2,\\quad \\|\\theta_{t-1}\\|_2,\\quad r_t = \\frac{\\|u_t\\|_2}{\\|\\theta_{t-1}\\|_2},$$

    the learning rate $\\eta_t$ the step used and the running count of steps whose
    gradients held an inf or a NaN. All norms are global (over every leaf).
    The update ratio $r_t$ is the number to watch: Karpathy's rule of thumb (CS231n)
    wants it near $10^{-3}$; $10^{-1}$ and up means the step rewrites the
    weights (learning rate too high), $10^{-6}$ and below means nothing moves.

    The updates are those of `inner` (of `chain(clip_by_global_norm(clip_norm),
    inner)` when `clip_norm` is given): the monitor changes nothing else. Its
    `inner_state` is that optimizer's state, so `jaxopt_edu.tree.get(state,
    "learning_rate")` and `tree.set(...)` work through the monitor. Works under
    `jit`, `vmap`, `lax.scan` and `lax.cond` (the state's avals never change).

    Args:
      inner: the optimizer to watch (any `(init, update)` pair).
      clip_norm: if given, clip the gradients to this global norm $c > 0$ before
        `inner` sees them (the hyperparameter `max_norm` in the state).

    PyTorch: `torch.nn.utils.clip_grad_norm_(params, c)` returns $\\|g_t\\|$ (the
    norm before clipping); the other numbers are usually computed by hand in the
    training loop or with hooks and TensorBoard.
    Pitfalls: `update_ratio` needs `params` in `update(...)` (it is 0 without them,
    and +inf when every param is exactly zero but the update is not). The learning
    rate is NaN when the inner state holds no `learning_rate`, or several (a chain
    with two: read them with `tree.get_all_with_path`). The numbers carry no
    gradient (they are stopped), so meta-learning through the step is unaffected.
    Reference: Karpathy, CS231n notes, "ratio of weights:updates",
    https://cs231n.github.io/neural-networks-3/#ratio ; Pascanu, Mikolov & Bengio
    2013 (clipping), https://arxiv.org/abs/1211.5063
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"monitor: `inner` must be a GradientTransformation, got {inner!r}. Pass an "
            "optimizer such as jo.adam(1e-3) (with the call parentheses)."
        )
    inner = jo.with_extra_args_support(inner)
    clipper = None
    if clip_norm is not None:
        try:
            clipper = jo.clip_by_global_norm(clip_norm)
        except ValueError as e:
            raise ValueError(f"monitor: invalid `clip_norm` ({e}). Pass None or c > 0.") from None

    def init_fn(params):
        inner_state = inner.init(params)
        if clipper is not None:  # the state layout of chain(clipper, inner)
            inner_state = (clipper.init(params), inner_state)
        zero, izero = jnp.zeros([], _F32), jnp.zeros([], jnp.int32)
        lr = _learning_rate(inner_state)
        return MonitorState(inner_state, izero, zero, zero, zero, zero, zero, lr, izero)

    def update_fn(updates, state, params=None, **extra_args):
        lr = _learning_rate(state.inner_state)  # the value this update uses
        grads = updates
        if clipper is None:
            clipped = grads
            updates, inner_state = inner.update(grads, state.inner_state, params, **extra_args)
        else:
            clip_state, in_state = state.inner_state
            clipped, clip_state = clipper.update(grads, clip_state, params, **extra_args)
            updates, in_state = inner.update(clipped, in_state, params, **extra_args)
            inner_state = (clip_state, in_state)
        u_norm = _norm(updates)
        if params is None:  # static: no params, no ratio
            p_norm = ratio = jnp.zeros([], _F32)
        else:  # r = ||u|| / ||theta||, with 0/0 = 0 and x/0 = +inf
            p_norm = _norm(params)
            safe_p = jnp.where(p_norm > 0, p_norm, jnp.ones([], _F32))
            inf_or_zero = jnp.where(u_norm > 0, jnp.full([], jnp.inf, _F32), jnp.zeros([], _F32))
            ratio = jnp.where(p_norm > 0, u_norm / safe_p, inf_or_zero)
        bad = _has_nonfinite(grads)
        nonfinite = jnp.where(
            bad, _saturating_increment(state.nonfinite_count), state.nonfinite_count
        )
        new_state = MonitorState(
            inner_state=inner_state,
            count=_saturating_increment(state.count),
            grad_norm=_norm(grads),
            clipped_grad_norm=_norm(clipped),
            update_norm=u_norm,
            param_norm=p_norm,
            update_ratio=ratio,
            learning_rate=lr,
            nonfinite_count=nonfinite.astype(jnp.int32),
        )
        return updates, new_state

    return jo.GradientTransformationExtraArgs(init_fn, update_fn)


def monitor_values(state: chex.ArrayTree) -> dict[str, jax.Array]:
    """The latest numbers of a `monitor`: a dict of scalar arrays, keyed by field name.

    Keys: `count`, `grad_norm`, `clipped_grad_norm`, `update_norm`, `param_norm`,
    `update_ratio`, `learning_rate`, `nonfinite_count` (see `MonitorState`).
    `state` is a `MonitorState`, or any optimizer state that holds exactly one (a
    monitor inside a chain). Works inside `jit`/`scan`: stack the dicts over steps
    to build the `history` that `diagnose` reads.

    PyTorch: none (the values one logs by hand after `optimizer.step()`).
    Pitfall: the values describe the LAST update; read them after each step, not
    once at the end.
    Reference: Karpathy, CS231n notes, https://cs231n.github.io/neural-networks-3/
    """
    if not isinstance(state, MonitorState):
        found = [
            x
            for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, MonitorState))
            if isinstance(x, MonitorState)
        ]
        if len(found) != 1:
            raise ValueError(
                f"monitor_values: the state holds {len(found)} MonitorState(s); it needs "
                "exactly one. Pass the state of `monitor(opt)` (or of a chain containing one "
                "monitor)."
            )
        state = found[0]
    return {k: getattr(state, k) for k in _VALUE_FIELDS}


# ================================================================ diagnose


@dataclasses.dataclass(frozen=True)
class Finding:
    """One trap `diagnose` found in a run.

    Fields: `trap` (its name: "divergence", "plateau", "premature_convergence",
    "vanishing_updates", "oscillation", "overfitting" or "diverging_game"), `severity` ("critical":
    the run is unusable; "warning": it works but wastes steps or ends worse than it
    could), `evidence` (the numbers that triggered it), `fix` (what to change, with
    values when the learning rate is known) and `step` (where the trap starts, an
    index into the history, or None).

    PyTorch: none. Pitfall: a finding is a hypothesis from the numbers, not a proof;
    change one thing, rerun, and diagnose again.
    Reference: Goodfellow, Bengio & Courville, Deep Learning, ch. 8 and 11,
    https://www.deeplearningbook.org/
    """

    trap: str
    severity: str
    evidence: str
    fix: str
    step: int | None = None


def _g(x: float) -> str:
    return f"{x:.3g}"


def _lr_range(lr: float | None, lo: float, hi: float) -> str:
    """' (0.1 -> 0.01-0.033)' when lr is known: the learning rate times [lo, hi]."""
    if lr is None:
        return ""
    return f" ({_g(lr)} -> {_g(lr * lo)}-{_g(lr * hi)})"


class _Run:
    """The history as float64 numpy arrays, plus the masks every check shares."""

    def __init__(self, history: Mapping[str, Any], lr: float | None, stationary_rtol: float):
        if not isinstance(history, Mapping) or "loss" not in history:
            keys = sorted(history) if isinstance(history, Mapping) else type(history).__name__
            raise ValueError(
                f"diagnose: `history` must be a mapping with a 'loss' entry, got {keys}. "
                "Pass a dict of 1-D per-step arrays, e.g. {'loss': ..., 'grad_norm': ...}."
            )
        self.loss = self._array(history, "loss")
        self.n = n = len(self.loss)
        if n == 0:
            raise ValueError("diagnose: history['loss'] is empty. Record at least one step.")
        s = {k: self._array(history, k, n) for k in _PER_STEP if k in history}
        self.grad, self.upd = s.get("grad_norm"), s.get("update_norm")
        self.clipped, self.ratio = s.get("clipped_grad_norm"), s.get("update_ratio")
        self.nonfinite = s.get("nonfinite", s.get("nonfinite_count"))
        lr_hist = s.get("learning_rate")
        self.lr_steps = np.full(n, np.nan) if lr_hist is None else lr_hist
        if lr is not None:  # the keyword fills the steps the history does not know
            self.lr_steps = np.where(np.isfinite(self.lr_steps), self.lr_steps, lr)
        known = self.lr_steps[np.isfinite(self.lr_steps) & (self.lr_steps > 0)]
        self.lr = float(known.max()) if known.size else None  # the peak of a schedule
        self.val = self._array(history, "val_metric") if "val_metric" in history else None
        self.val_steps = None
        if self.val is not None:
            if "val_steps" in history:
                self.val_steps = self._array(history, "val_steps", len(self.val)).astype(int)
            elif len(self.val) == n:
                self.val_steps = np.arange(n)
            else:  # evenly spread over the run
                self.val_steps = np.round(np.linspace(0, n - 1, len(self.val))).astype(int)
        # A step is "moving" while the optimizer still has a gradient to follow.
        if self.grad is not None:
            g0 = self.grad[: max(1, min(5, n))]
            g0 = float(np.max(g0[np.isfinite(g0)], initial=0.0))
            self.g0 = g0
            self.moving = np.isfinite(self.grad) & (self.grad > stationary_rtol * g0)
        else:
            self.g0 = None
            fin = self.loss[np.isfinite(self.loss)]
            best = float(fin.min()) if fin.size else 0.0
            gap0 = self.loss[0] - best
            self.moving = np.isfinite(self.loss) & (
                (self.loss - best > stationary_rtol * gap0) | (gap0 <= 0)
            )

    @staticmethod
    def _array(history, key, n=None) -> np.ndarray:
        a = np.asarray(history[key]).astype(np.float64)
        if a.ndim != 1:
            raise ValueError(
                f"diagnose: history[{key!r}] must be 1-D (one value per step), got shape "
                f"{a.shape}. Diagnose one seed at a time (e.g. history[key][seed])."
            )
        if n is not None and len(a) != n:
            raise ValueError(
                f"diagnose: history[{key!r}] has {len(a)} values but history['loss'] has {n}. "
                "Record every per-step key at every step."
            )
        return a

    def cut(self, stop: int) -> None:
        """Keep the steps before `stop` (the run's finite part, before a divergence)."""
        self.moving = self.moving & (np.arange(self.n) < stop)


_PER_STEP = (
    "grad_norm",
    "clipped_grad_norm",
    "update_norm",
    "update_ratio",
    "learning_rate",
    "nonfinite",
    "nonfinite_count",
)


def _divergence(run: _Run, factor: float) -> tuple[Finding | None, int]:
    loss, n = run.loss, run.n
    steps, parts = [], []
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
        t = int(bad[0])
        last = f" (last finite value {_g(loss[t - 1])} at step {t - 1})" if t > 0 else ""
        parts.append(f"the loss became {loss[t]} at step {t}{last}")
        if loss[t] == -np.inf:
            parts[-1] += " (unbounded below: check the loss, a smaller step will not fix it)"
        steps.append(t)
    l0 = loss[0]
    if np.isfinite(l0):
        grown = np.flatnonzero(loss - l0 > (factor - 1) * max(abs(l0), 1e-12))
        if grown.size:
            t = int(grown[0])
            per_step = (loss[t] / l0) ** (1 / t) if l0 > 0 and t > 0 else float("nan")
            parts.append(
                f"the loss rose from {_g(l0)} at step 0 to {_g(loss[t])} at step {t} "
                f"(more than x{_g(factor)}; x{_g(per_step)} per step on average)"
            )
            steps.append(t)
    flags = []
    if run.nonfinite is not None:
        flags.append(run.nonfinite > 0)
    if run.grad is not None:
        flags.append(~np.isfinite(run.grad))
    if flags:
        nf = np.flatnonzero(np.logical_or.reduce(flags))
        if nf.size:
            t = int(nf[0])
            parts.append(f"the gradients held inf/NaN from step {t}")
            steps.append(t)
    if not steps:
        return None, n
    step = min(steps)
    parts = [p for _, p in sorted(zip(steps, parts, strict=True), key=lambda sp: sp[0])]
    if run.grad is not None and step > 0 and np.isfinite(run.grad[:step]).all():
        parts.append(f"gradient norm {_g(run.grad[0])} -> {_g(np.max(run.grad[: step + 1]))}")
    if run.lr is not None:
        parts.append(f"learning rate {_g(run.lr)}")
    # A spike the run came back from: the edge of divergence, not a dead run.
    recovered = np.isfinite(loss).all() and loss[-1] - l0 <= (factor - 1) * max(abs(l0), 1e-12)
    if recovered:
        parts.append(f"it recovered to {_g(loss[-1])} by step {n - 1} (a loss spike)")
    fix = (
        f"Lower the learning rate 3-10x{_lr_range(run.lr, 0.1, 1 / 3)}: gradient descent "
        "is only stable for learning_rate < 2/L, L the largest curvature. Add a warmup "
        "(jo.warmup_cosine_decay_schedule) or clip the gradients (monitor(opt, "
        "clip_norm=1.0) or jo.chain(jo.clip_by_global_norm(1.0), opt)); a learning-rate "
        "range test (the lab's lr_find) finds the edge. If the loss is NaN at step 0, "
        "check the data and the initialisation first."
    )
    evidence = "; ".join(parts) + "."
    if recovered:
        return Finding("divergence", "warning", evidence, fix, step), n
    return Finding("divergence", "critical", evidence, fix, step), step


def _stalled(run: _Run, tail_frac: float, rtol: float, reference: float | None):
    """(stalled, step where progress stopped, text) from the best-so-far loss."""
    loss = np.where(np.isfinite(run.loss), run.loss, np.inf)
    n = run.n
    start = n - max(3, int(math.ceil(tail_frac * n)))
    if start < 3:
        return False, None, ""
    b0, b1 = float(np.min(loss[:start])), float(np.min(loss))
    scale = abs(b0 - reference) if reference is not None else abs(b0)
    gain = b0 - b1
    if not gain <= rtol * scale:
        return False, None, ""
    best_so_far = np.minimum.accumulate(loss)
    step = int(np.flatnonzero(best_so_far - b1 <= rtol * scale)[0])
    level = "its distance to the reference" if reference is not None else "its level"
    how = (
        "did not improve at all"
        if gain <= 0
        else f"improved by only {_g(gain)} ({_g(100 * gain / scale)}% of {level} "
        f"{_g(scale)}; threshold {_g(100 * rtol)}%)"
    )
    text = (
        f"the best loss {how} over the last {n - start} of {n} steps; it stopped "
        f"improving around step {step} at {_g(b1)}"
    )
    last = float(run.loss[-1])
    if last - b1 > 0.1 * max(scale, abs(b1), 1e-12):
        text += f", and drifted up to {_g(last)} by the end"
    return True, step, text


def _plateau(run, stall, grad_frac, reference, premature_rtol) -> Finding | None:
    stalled, step, text = stall
    if not stalled:
        return None
    gap_text, far = "", False
    if reference is not None:
        gap, gap0 = float(np.nanmin(run.loss)) - reference, run.loss[0] - reference
        far = gap > premature_rtol * max(abs(gap0), 1e-12)
        gap_text = (
            f"; the best loss {_g(reference + gap)} is {_g(gap)} above the reference "
            f"{_g(reference)} ({_g(100 * gap / gap0 if gap0 else 0)}% of the initial gap, "
            f"threshold {_g(100 * premature_rtol)}%)"
        )
    stuck_grad = None
    if run.grad is not None and run.g0:
        tail = run.grad[step:]
        tail = tail[np.isfinite(tail)]
        if tail.size:
            stuck_grad = float(np.median(tail))
    if stuck_grad is not None and stuck_grad > grad_frac * run.g0:
        evidence = (
            f"{text}, while the gradient norm stayed clearly non-zero (median {_g(stuck_grad)} "
            f"after step {step}, {_g(100 * stuck_grad / run.g0)}% of the initial "
            f"{_g(run.g0)}; threshold {_g(100 * grad_frac)}%){gap_text}."
        )
        fix = (
            "The optimizer sits on a slope it cannot follow (a flat region or a saddle). "
            f"Try a 2-3x larger learning rate{_lr_range(run.lr, 2, 3)}, add momentum "
            "(jo.sgd(lr, momentum=0.9)), switch optimizer (adam, rmsprop), or restart "
            "(jo.sgdr_schedule, another seed). If the loss is noisy rather than flat, "
            "the step is too large to settle instead: decay the learning rate "
            "(jo.cosine_decay_schedule)."
        )
        return Finding("plateau", "warning", evidence, fix, step)
    if far:
        grad_text = (
            f", with the gradient norm down to {_g(stuck_grad)}" if stuck_grad is not None else ""
        )
        evidence = f"{text}{grad_text}{gap_text}: it converged to a poor point."
        fix = (
            "Premature convergence to a poor minimum. Restart from other seeds or a "
            f"different initialisation, use a 2-3x larger learning rate{_lr_range(run.lr, 2, 3)} "
            "early (warmup then decay, or restarts with jo.sgdr_schedule), add momentum "
            "to carry over small bumps, or try another optimizer and compare the final losses."
        )
        return Finding("premature_convergence", "warning", evidence, fix, step)
    return None


def _vanishing(
    run: _Run,
    threshold: float,
    frac: float,
    loss_rtol: float,
    grad_frac: float,
    reference: float | None,
    n_params: int | None,
    eps_frac: float,
    min_steps: int,
) -> Finding | None:
    eps_text, eps_ev = "", ""
    if n_params is not None and run.upd is not None and run.grad is not None and run.lr:
        # Adam-like steps have |m/sqrt(v)| ~ 1 per coordinate: ||u|| ~ lr sqrt(n). Far
        # below that, and not a plain gradient step (||u|| = lr ||g||), eps dominates.
        q = slice(0, max(min_steps, run.n // 4))
        u, g, lr_t = run.upd[q], run.grad[q], run.lr_steps[q]
        g_used = run.clipped[q] if run.clipped is not None else g
        fin = np.isfinite(u) & np.isfinite(g_used) & np.isfinite(lr_t)
        plain = np.abs(u - lr_t * g_used) <= 1e-2 * u
        if fin.sum() >= min_steps and plain[fin].mean() < 0.5:
            adam_norm = run.lr * math.sqrt(n_params)
            u_med = float(np.median(u[fin]))
            if u_med < eps_frac * adam_norm:
                eps_ev = (
                    f"the update norm (median {_g(u_med)} over the first {int(fin.sum())} "
                    f"steps) is {_g(u_med / adam_norm)} of lr*sqrt(n_params) = "
                    f"{_g(adam_norm)}, the size of an Adam-like step (threshold "
                    f"{_g(eps_frac)}), and the steps are not plain gradient steps"
                )
                eps_text = (
                    " The steps are far smaller than an Adam-like step of this learning "
                    "rate: if the optimizer is adaptive, eps dominates sqrt(v) + eps; lower "
                    "it (e.g. eps=1e-8) before touching the learning rate."
                )
    vanish = _vanishing_ratio(run, threshold, frac, loss_rtol, grad_frac, reference, min_steps)
    if vanish is None and not eps_ev:
        return None
    evidence, med, step = vanish if vanish is not None else ("", None, 0)
    evidence = "; ".join(e for e in (evidence, eps_ev) if e)
    evidence += "."
    target = ""
    if run.lr is not None and med:
        target = f"; Karpathy's 1e-3 rule suggests ~{_g(run.lr * 1e-3 / med)}"
    fix = (
        f"The optimizer barely moves the weights although the gradient is there: raise the "
        f"learning rate 10-100x{_lr_range(run.lr, 10, 100)}{target} (a learning-rate range "
        "test, the lab's lr_find, finds the edge). With an adaptive method (adam, rmsprop, "
        "adagrad), a large eps, or tiny gradients against the default one, dominates "
        "sqrt(v) + eps in the denominator: lower eps or rescale the loss."
    )
    if eps_text:  # the likelier cause first
        fix = eps_text.strip() + " Otherwise: " + fix[0].lower() + fix[1:]
    return Finding("vanishing_updates", "warning", evidence, fix, step)


def _vanishing_ratio(run, threshold, frac, loss_rtol, grad_frac, reference, min_steps):
    """(evidence, median ratio, first small step) when the ratio test fires, else None."""
    if run.ratio is None:
        return None
    r = run.ratio
    known = run.moving & np.isfinite(r)
    if run.upd is not None:  # ratio 0 with a non-zero update: params were not passed
        known &= ~((r == 0) & (run.upd > 0))
    idx = np.flatnonzero(known)
    if idx.size < min_steps:
        return None
    small = r[idx] < threshold
    share = float(np.mean(small))
    if share < frac:
        return None
    # Small steps alone are no trap: a converged run takes them too. Require that
    # the loss barely improved while the gradient is still there to follow.
    loss = run.loss
    fin = loss[np.isfinite(loss)]
    l0 = float(loss[0])
    if not (np.isfinite(l0) and fin.size):
        return None
    scale = abs(l0 - reference) if reference is not None else abs(l0)
    gain = l0 - float(fin.min())
    rel = gain / scale if scale > 0 else 0.0
    if rel >= loss_rtol:
        return None
    level = "its distance to the reference" if reference is not None else "its start"
    med = float(np.median(r[idx]))
    evidence = (
        f"the update/param ratio ||u||/||theta|| was below {_g(threshold)} on "
        f"{_g(100 * share)}% of {idx.size} steps (threshold {_g(100 * frac)}%); median "
        f"{_g(med)}, where ~1e-3 is healthy; the best loss improved by only "
        f"{_g(100 * rel)}% of {level} {_g(scale)} (threshold {_g(100 * loss_rtol)}%)"
    )
    if run.grad is not None and run.g0:
        tail = run.grad[-max(1, run.n // 4) :]
        tail = tail[np.isfinite(tail)]
        g_end = float(np.median(tail)) if tail.size else 0.0
        if not g_end > grad_frac * run.g0:
            return None  # the gradient shrank: a slow but working descent, or converged
        evidence += (
            f", while the gradient norm stayed at {_g(100 * g_end / run.g0)}% of the "
            f"initial {_g(run.g0)} (threshold {_g(100 * grad_frac)}%)"
        )
    return evidence, med, int(idx[np.argmax(small)])


def _diverging_game(run: _Run, rise_frac: float, rtol: float, min_steps: int) -> Finding | None:
    loss = run.loss
    fin = np.isfinite(loss)
    ok = fin[:-1] & fin[1:]
    d = np.diff(loss)[ok]
    if d.size < min_steps:
        return None
    up = float(np.mean(d > 0))
    last = int(np.flatnonzero(fin)[-1])
    l0, l1 = float(loss[0]), float(loss[last])
    if not (up >= rise_frac and np.isfinite(l0) and l1 - l0 > rtol * max(abs(l0), 1e-12)):
        return None
    per_step = (l1 / l0) ** (1 / last) if l0 > 0 and l1 > 0 and last > 0 else math.nan
    evidence = (
        f"the loss (read as the distance to the equilibrium) rose on {_g(100 * up)}% of "
        f"{d.size} steps (threshold {_g(100 * rise_frac)}%), from {_g(l0)} at step 0 to "
        f"{_g(l1)} at step {last} (x{_g(per_step)} per step; threshold +{_g(100 * rtol)}%): "
        "the iterate spirals away from the equilibrium of a rotational gradient field."
    )
    fix = (
        "Simultaneous gradient descent-ascent rotates around the equilibrium and spirals "
        "out at any learning rate (a smaller one only slows the spiral). Use an "
        "extragradient step (step from theta with the field at the look-ahead "
        "theta - lr*g(theta)), optimistic updates (u = -lr (2 g_t - g_{t-1})), or average "
        "the iterates (the average converges on bilinear games). Momentum makes it worse "
        "(it adds to the rotation): turn it off (momentum=0, a small b1)."
    )
    start = int(np.flatnonzero(ok & (np.diff(loss) > 0))[0])
    return Finding("diverging_game", "critical", evidence, fix, start)


def _oscillation(run, up_frac, alt_frac, efficiency, min_steps, overshoot) -> Finding | None:
    loss, n = run.loss, run.n
    t = np.arange(n - 1)
    ok = run.moving[:-1] & np.isfinite(loss[:-1]) & np.isfinite(loss[1:])
    d = np.diff(loss)[ok]
    parts, steps = [], []
    if d.size >= min_steps:
        tiny = 1e-6 * np.maximum(np.abs(loss[:-1][ok]), 1e-30)
        sign = np.where(np.abs(d) > tiny, np.sign(d), 0.0)
        up = float(np.mean(sign > 0))
        pairs = (sign[1:] != 0) & (sign[:-1] != 0)
        alt = float(np.mean(sign[1:][pairs] != sign[:-1][pairs])) if pairs.any() else 0.0
        if up >= up_frac and alt >= alt_frac:
            parts.append(
                f"the loss went up on {_g(100 * up)}% of {d.size} steps (threshold "
                f"{_g(100 * up_frac)}%) and successive changes alternated sign "
                f"{_g(100 * alt)}% of the time (threshold {_g(100 * alt_frac)}%): a zig-zag"
            )
            steps.append(int(t[ok][np.argmax(sign > 0)]))
    if overshoot and run.grad is not None and run.upd is not None:
        # Plain gradient steps (u = -lr g, checked: ||u|| = lr ||clip(g)||) predict a
        # first-order decrease <g, -u> = ||g|| ||u||. On a quadratic the actual one is
        # (1 - lr*lam/2) of it: the ratio rho (Nocedal & Wright's actual/predicted
        # reduction) reads lr*lam = 2(1 - rho), lam the curvature along the step.
        g_used = run.clipped if run.clipped is not None else run.grad
        pred = run.grad[:-1] * run.upd[:-1]
        plain = np.abs(run.upd - run.lr_steps * g_used) <= 1e-2 * run.upd
        rho = (loss[:-1] - loss[1:]) / pred
        # only steps whose predicted change float32 can resolve in the loss
        valid = ok & (pred > 1e-5 * np.abs(loss[:-1])) & np.isfinite(rho)
        if valid.sum() >= min_steps and plain[:-1][valid].mean() >= 0.9:
            med = float(np.median(rho[valid]))
            if med < efficiency:
                parts.append(
                    f"each gradient step cut the loss by only {_g(100 * med)}% (median over "
                    f"{int(valid.sum())} steps; threshold {_g(100 * efficiency)}%) of its "
                    f"first-order prediction lr*||g||^2: it overshoots the valley, with "
                    f"lr*curvature ~ {_g(2 * (1 - med))} against the stability limit 2"
                )
                steps.append(int(t[valid][np.argmax(rho[valid] < efficiency)]))
    if not parts:
        return None
    evidence = "; ".join(parts) + "."
    fix = (
        f"Lower the learning rate 2-3x{_lr_range(run.lr, 1 / 3, 1 / 2)} or decay it "
        "(jo.cosine_decay_schedule). With Adam, a larger b1 (0.9 -> 0.95) averages the "
        "alternating gradients out; plain SGD gains damping from momentum=0.9 with a "
        "smaller learning rate (but a momentum close to 1 rings on its own: lower it)."
    )
    return Finding("oscillation", "warning", evidence, fix, min(steps))


def _overfitting(run: _Run, rtol: float, mode: str, stop: int) -> Finding | None:
    if run.val is None:
        return None
    vs = np.clip(run.val_steps, 0, run.n - 1)
    keep = np.isfinite(run.val) & (vs < stop)
    val, vs = run.val[keep], vs[keep]
    if val.size < 3:
        return None
    score = val if mode == "min" else -val  # lower is better from here on
    b = int(np.argmin(score))
    worse = score[-1] - score[b]
    if b == val.size - 1 or not worse > rtol * max(abs(val[b]), 1e-12):
        return None
    l_best, l_last = run.loss[vs[b]], run.loss[vs[-1]]
    if not l_last < l_best - 1e-3 * abs(l_best):
        return None  # the training loss did not keep falling: not overfitting
    evidence = (
        f"the validation metric was best at {_g(val[b])} at step {vs[b]} and ended at "
        f"{_g(val[-1])} at step {vs[-1]} ({_g(100 * worse / max(abs(val[b]), 1e-12))}% worse; "
        f"threshold {_g(100 * rtol)}%), while the training loss kept falling from "
        f"{_g(l_best)} to {_g(l_last)}."
    )
    fix = (
        f"Regularize: stop early (keep the parameters of step {vs[b]}), add weight decay "
        "or an L2 penalty (jo.adamw(lr, weight_decay=1e-4), jo.add_decayed_weights), "
        "dropout in the model, or more (augmented) training data."
    )
    return Finding("overfitting", "warning", evidence, fix, int(vs[b]))


def diagnose(
    history: Mapping[str, Any],
    *,
    lr: float | None = None,
    reference_loss: float | None = None,
    divergence_factor: float = 10.0,
    tail_frac: float = 0.25,
    plateau_rtol: float = 1e-3,
    plateau_grad_frac: float = 0.05,
    premature_rtol: float = 0.05,
    vanishing_ratio: float = 1e-4,
    vanishing_frac: float = 0.5,
    vanishing_loss_rtol: float = 0.25,
    vanishing_grad_frac: float = 0.25,
    n_params: int | None = None,
    eps_hint_frac: float = 0.01,
    gradient_field: bool = False,
    game_rise_frac: float = 0.6,
    game_rtol: float = 0.01,
    oscillation_up_frac: float = 0.3,
    oscillation_alt_frac: float = 0.5,
    overshoot_efficiency: float = 0.25,
    overfit_rtol: float = 0.05,
    val_mode: str = "min",
    stationary_rtol: float = 1e-4,
    min_steps: int = 5,
) -> list[Finding]:
    """Name the course's traps a training run fell into, from its per-step record.

    `history` maps names to 1-D arrays with one value per step `t` (what the lab's
    `compare` records, or `monitor_values` stacked over a run): `loss` (required,
    $L(\\theta_t)$), and optionally `grad_norm` ($\\|g_t\\|$), `clipped_grad_norm`,
    `update_norm` ($\\|u_t\\|$, with $\\theta_{t+1} = \\theta_t + u_t$),
    `update_ratio` ($r_t = \\|u_t\\| / \\|\\theta_t\\|$), `learning_rate`,
    `nonfinite` or `nonfinite_count` (a per-step flag or running count of steps
    with non-finite gradients), and
    `val_metric` with `val_steps` (the steps it was measured at). Other keys are
    ignored; each check runs only when its keys are there.

    The traps and their thresholds (keyword arguments):

    * `divergence`: the loss becomes inf/NaN, the gradients do, or the loss rises
      above `divergence_factor` (10) times its start: $L_t - L_0 > (f - 1)|L_0|$.
      Gradient descent on a quadratic of curvature $L$ diverges exactly when
      lr $> 2/L$. Critical, and the later checks only read the steps before it;
      a warning when the loss came back below the threshold by the end (a spike).
    * `plateau`: the best loss improved by less than `plateau_rtol` (0.1%) of its
      level over the last `tail_frac` (25%) of the run, while the median gradient
      norm since then stays above `plateau_grad_frac` (5%) of the initial one.
      Needs `grad_norm` (without it a plateau and convergence look the same).
    * `premature_convergence`: the loss stalled the same way, with a small gradient,
      but its best is more than `premature_rtol` (5%) of the initial gap above
      `reference_loss` (the known minimum of the problem, or the best final loss
      of another optimizer). Needs `reference_loss`.
    * `vanishing_updates`: the optimizer barely moves although the gradient is
      there (a learning rate far too low, or an adaptive method whose eps dominates
      its denominator). Ratio test, three conditions together: $r_t$ below
      `vanishing_ratio` (1e-4; healthy is ~1e-3) on at least `vanishing_frac` (50%)
      of the steps that still have a gradient; the best loss improved by less than
      `vanishing_loss_rtol` (25%) of the initial loss (of its distance to
      `reference_loss` when given); and, with `grad_norm`, the median gradient norm
      over the last quarter of the run stays above `vanishing_grad_frac` (25%) of
      the initial one. A converged run (loss fell a lot, gradient shrank) takes
      small steps too and is not flagged. Needs `update_ratio`.
      eps test (only with `n_params`, the number of scalar parameters, plus
      `update_norm`, `grad_norm` and a known learning rate): over the first quarter
      of the run, the steps are not plain gradient steps ($\\|u_t\\| \\ne
      \\eta\\|g_t\\|$ on most of them) and the median $\\|u_t\\|$ is below
      `eps_hint_frac` (0.01) of $\\eta\\sqrt{n}$, the norm of an Adam-like step
      ($|m/\\sqrt v| \\approx 1$ per coordinate). That is what a large eps does
      ($u \\approx -\\eta g/\\epsilon$), even when the loss still falls; the finding
      then says "eps dominates". It cannot see the optimizer: SGD with momentum on
      tiny gradients looks the same, so read it as a hint. Without `n_params` there
      is no eps test.
      When `vanishing_updates` fires it explains the plateau, which is then not
      reported.
    * `oscillation`: the loss goes up on at least `oscillation_up_frac` (30%) of the
      steps and successive changes alternate sign at least `oscillation_alt_frac`
      (50%) of the time; or, for plain gradient steps ($\\|u_t\\| = \\eta\\|g_t\\|$,
      checked when the learning rate is known), the loss falls by less than
      `overshoot_efficiency` (25%) of the first-order prediction:
      $\\rho = (L_t - L_{t+1}) / (\\|g_t\\|\\|u_t\\|) = 1 - \\eta\\lambda/2$ on a
      quadratic, so $\\rho < 0.25$ means $\\eta\\lambda > 1.5$, close to the limit 2
      (the loss still falls monotonically there while the iterate flips sides).
    * `overfitting`: `val_metric` ends more than `overfit_rtol` (5%) worse than its
      best while the training loss kept falling since that best; `val_mode` is
      "min" for a validation loss, "max" for an accuracy.
    * `diverging_game` (only with `gradient_field=True`): the loss rose on at least
      `game_rise_frac` (60%) of the steps and ends more than `game_rtol` (1%) of
      its start above it (no 10x needed): descent-ascent spiralling out.

    `gradient_field=True` says the gradient the optimizer follows is not the
    gradient of the reported loss (a game such as the lab's `bilinear`, where the
    loss is the distance to the equilibrium). The plateau, premature-convergence
    and gradient-based overshoot checks assume a potential and are skipped; the
    loss zig-zag check and the others still run, and `diverging_game` is added.

    A step counts as "still moving" while its gradient norm is above
    `stationary_rtol` (1e-4) of the initial one (without `grad_norm`: while the loss
    is above its best by that fraction of the total decrease); converged steps are
    not judged. Statistical checks need at least `min_steps` (5) such steps.
    "The initial gradient norm" is the largest of the first 5 steps. `lr` is the
    learning rate of the run where the history has no `learning_rate`; with one
    known, the fixes quote concrete values (from the peak learning rate).

    How to read the output: an empty list means none of these traps shows in the
    numbers, not that the run is optimal (compare with other optimizers for that).
    Read `critical` findings first: after a divergence, nothing else matters until
    the learning rate is fixed. Each `evidence` quotes the measured number next to
    its threshold, so you can judge how clear-cut it is; `step` says where to look
    on the loss curve. Apply one `fix`, rerun, and diagnose again. The course's
    other trap, optimizers degrading as the dimension grows, needs several runs
    (compare the same optimizer across problem sizes), not one history.

    PyTorch: none; `torch.optim.lr_scheduler.ReduceLROnPlateau` is the nearest
    automatic reaction (to a plateau only).
    Pitfalls: the thresholds are rules of thumb for full-batch or lightly noisy
    losses; on a noisy minibatch loss, smooth it first or raise the thresholds. The
    overshoot test assumes plain gradient steps; momentum and Adam are judged on
    the loss curve only.
    References: Goodfellow, Bengio & Courville, Deep Learning, ch. 8 (plateaus,
    saddles, ill-conditioning) and 7.8 (early stopping),
    https://www.deeplearningbook.org/ ; Karpathy, "A Recipe for Training Neural
    Networks", https://karpathy.github.io/2019/04/25/recipe/ ; Cohen et al., Gradient
    Descent on Neural Networks Typically Occurs at the Edge of Stability,
    https://arxiv.org/abs/2103.00065
    """
    if val_mode not in ("min", "max"):
        raise ValueError(
            f"diagnose: `val_mode` must be 'min' (validation loss) or 'max' (accuracy), "
            f"got {val_mode!r}."
        )
    if lr is not None:
        raw = lr
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            lr = math.nan
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"diagnose: `lr` must be a positive number or None, got {raw!r}.")
    if not 0 < tail_frac < 1:
        raise ValueError(f"diagnose: `tail_frac` must be in (0, 1), got {tail_frac!r}.")
    if n_params is not None and not (isinstance(n_params, int | np.integer) and n_params > 0):
        raise ValueError(f"diagnose: `n_params` must be a positive int or None, got {n_params!r}.")
    if divergence_factor <= 1:
        raise ValueError(f"diagnose: `divergence_factor` must be > 1, got {divergence_factor!r}.")
    # inf/NaN are evidence here, not errors: let numpy compute with them quietly.
    with np.errstate(all="ignore"):
        run = _Run(history, lr, stationary_rtol)
        div, stop = _divergence(run, divergence_factor)
        run.cut(stop)
        whole = stop == run.n  # no unrecovered divergence
        vanish = _vanishing(
            run,
            vanishing_ratio,
            vanishing_frac,
            vanishing_loss_rtol,
            vanishing_grad_frac,
            reference_loss,
            n_params,
            eps_hint_frac,
            min_steps,
        )
        osc = _oscillation(
            run,
            oscillation_up_frac,
            oscillation_alt_frac,
            overshoot_efficiency,
            min_steps,
            overshoot=whole and vanish is None and not gradient_field,
        )
        plat = game = None
        if whole and vanish is None and not gradient_field:  # vanishing explains a flat loss
            stall = _stalled(run, tail_frac, plateau_rtol, reference_loss)
            plat = _plateau(run, stall, plateau_grad_frac, reference_loss, premature_rtol)
        if gradient_field:
            game = _diverging_game(run, game_rise_frac, game_rtol, min_steps)
        over = _overfitting(run, overfit_rtol, val_mode, stop)
    findings = [f for f in (div, game, vanish, osc, plat, over) if f is not None]
    order = {"critical": 0, "warning": 1}
    return sorted(findings, key=lambda f: (order[f.severity], f.step if f.step is not None else 0))


def format_findings(findings: Sequence[Finding], width: int = 88) -> str:
    """The findings as text for a terminal: one block per trap, in the given order.

        [CRITICAL] divergence (from step 3)
          evidence: the loss rose from 0.5 at step 0 to 9.2 at step 3 ...
          fix:      Lower the learning rate 3-10x ...

    `diagnose` returns the most severe first. Returns "no trap detected" when
    `findings` is empty.

    PyTorch: none. Pitfall: "no trap detected" is not "optimal": it means the
    numbers show none of the traps `diagnose` knows.
    Reference: Karpathy, "A Recipe for Training Neural Networks",
    https://karpathy.github.io/2019/04/25/recipe/
    """
    if not findings:
        return "no trap detected"
    blocks = []
    for f in findings:
        where = "" if f.step is None else f" (from step {f.step})"
        lines = [f"[{f.severity.upper()}] {f.trap}{where}"]
        for label, text in (("evidence", f.evidence), ("fix", f.fix)):
            lines += textwrap.wrap(
                text,
                width=width,
                initial_indent=f"  {label + ':':<10}",
                subsequent_indent=" " * 12,
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
