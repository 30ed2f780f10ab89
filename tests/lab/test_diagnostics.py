"""Tests of the lab's diagnostics: `monitor` numbers and `diagnose` verdicts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu as jo
from jaxopt_edu.lab.diagnostics import (
    Finding,
    MonitorState,
    diagnose,
    format_findings,
    monitor,
    monitor_values,
)
from jaxopt_edu.lab.problems import get_problem

L = 10.0  # largest curvature of the test quadratic: gradient descent is stable iff lr < 2/L
CURV = jnp.array([L, L / 10])


def quadratic(x):
    return 0.5 * jnp.sum(CURV * x * x)


def run(opt, steps=100):
    """Full-batch run on the quadratic, recording what the lab's `compare` records."""
    opt = monitor(opt)
    x0 = jnp.ones(2)

    def step(carry, _):
        x, s = carry
        loss, g = jax.value_and_grad(quadratic)(x)
        u, s = opt.update(g, s, x)
        return (jo.apply_updates(x, u), s), {"loss": loss, **monitor_values(s)}

    _, hist = jax.lax.scan(step, (x0, opt.init(x0)), length=steps)
    return hist


def run_problem(name, opt, steps):
    """Full-batch run of a lab problem from its seed-0 start; returns (history, n_params)."""
    problem = get_problem(name)
    key = jax.random.PRNGKey(0)
    opt = monitor(opt)
    x0 = problem.initial_params(key, 0)

    def step(carry, _):
        x, s = carry
        loss, g = jax.value_and_grad(problem.loss)(x, key)
        u, s = opt.update(g, s, x)
        return (jo.apply_updates(x, u), s), {"loss": loss, **monitor_values(s)}

    _, hist = jax.jit(lambda: jax.lax.scan(step, (x0, opt.init(x0)), length=steps))()
    return hist, sum(int(np.size(leaf)) for leaf in jax.tree.leaves(x0))


def traps(findings):
    return {f.trap for f in findings}


def check_findings(findings):
    for f in findings:
        assert isinstance(f, Finding) and f.evidence.strip() and f.fix.strip()
    text = format_findings(findings)
    assert all(f.trap in text for f in findings)


# ---------------------------------------------------------------- monitor

GRADS = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[12.0]])}  # ||g|| = 13
PARAMS = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([[2.0]])}  # ||theta|| = 3


def test_monitor_records_closed_form_norms():
    opt = monitor(jo.sgd(0.1), clip_norm=1.0)
    updates, state = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    v = monitor_values(state)
    np.testing.assert_allclose(v["grad_norm"], 13.0, rtol=1e-6)
    np.testing.assert_allclose(v["clipped_grad_norm"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(v["update_norm"], 0.1, rtol=1e-6)  # lr * 1
    np.testing.assert_allclose(v["param_norm"], 3.0, rtol=1e-6)
    np.testing.assert_allclose(v["update_ratio"], 0.1 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(v["learning_rate"], 0.1, rtol=1e-6)
    assert int(v["count"]) == 1 and int(v["nonfinite_count"]) == 0
    np.testing.assert_allclose(updates["a"], -0.1 * GRADS["a"] / 13.0, rtol=1e-6)
    assert all(x.dtype == jnp.float32 for k, x in v.items() if "count" not in k)
    assert v["count"].dtype == v["nonfinite_count"].dtype == jnp.int32


def test_monitor_without_params_or_learning_rate():
    opt = monitor(jo.scale(-0.5))  # no `learning_rate` in the state
    _, state = opt.update(GRADS, opt.init(PARAMS))
    assert float(state.update_ratio) == 0.0 and float(state.param_norm) == 0.0
    assert np.isnan(state.learning_rate)
    np.testing.assert_allclose(state.clipped_grad_norm, 13.0, rtol=1e-6)


def test_monitor_counts_nonfinite_steps():
    opt = monitor(jo.adam(1e-3))
    state = opt.init(PARAMS)
    bad = {"a": jnp.array([jnp.nan, 1.0]), "b": jnp.array([[1.0]])}
    for g in (GRADS, bad, GRADS, bad):
        _, state = opt.update(g, state, PARAMS)
    assert int(state.nonfinite_count) == 2 and int(state.count) == 4


def test_monitor_updates_equal_inner_and_hyperparams_reachable():
    inner, opt = jo.adam(1e-2), monitor(jo.adam(1e-2))
    s_in, s_mon = inner.init(PARAMS), opt.init(PARAMS)
    for _ in range(3):
        u_in, s_in = inner.update(GRADS, s_in, PARAMS)
        u_mon, s_mon = opt.update(GRADS, s_mon, PARAMS)
        jax.tree.map(np.testing.assert_array_equal, u_mon, u_in)
    assert float(jo.tree.get(s_mon, "learning_rate")) == pytest.approx(1e-2)
    s_mon = jo.tree.set(s_mon, learning_rate=0.5)
    _, s_mon = opt.update(GRADS, s_mon, PARAMS)
    assert float(s_mon.learning_rate) == pytest.approx(0.5)
    clipped = monitor(jo.sgd(0.1), clip_norm=2.0)
    assert float(jo.tree.get(clipped.init(PARAMS), "max_norm")) == 2.0


def test_monitor_jit_scan_cond_and_stable_avals():
    opt = monitor(jo.sgd(0.1, momentum=0.9), clip_norm=1.0)
    state0 = opt.init(PARAMS)
    _, eager = opt.update(GRADS, state0, PARAMS)
    _, jitted = jax.jit(opt.update)(GRADS, state0, PARAMS)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), eager, jitted)
    assert jax.tree.map(jnp.shape, eager) == jax.tree.map(jnp.shape, state0)
    assert jax.tree.map(jnp.result_type, eager) == jax.tree.map(jnp.result_type, state0)

    def body(s, _):
        return opt.update(GRADS, s, PARAMS)[1], None

    scanned, _ = jax.lax.scan(body, state0, length=5)
    assert int(scanned.count) == 5
    picked = jax.lax.cond(True, lambda s: opt.update(GRADS, s, PARAMS)[1], lambda s: s, state0)
    assert isinstance(picked, MonitorState) and int(picked.count) == 1


def test_monitor_rejects_bad_arguments():
    with pytest.raises(TypeError, match="monitor: `inner`"):
        monitor(jo.adam)
    with pytest.raises(ValueError, match="clip_norm"):
        monitor(jo.adam(1e-3), clip_norm=-1.0)


def test_monitor_values_finds_a_nested_monitor():
    opt = jo.chain(monitor(jo.sgd(0.1)), jo.identity())
    _, state = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    np.testing.assert_allclose(monitor_values(state)["grad_norm"], 13.0, rtol=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        monitor_values(jo.sgd(0.1).init(PARAMS))


# ---------------------------------------------------------------- diagnose on real runs


def test_diagnose_flags_divergence_above_two_over_L():
    for lr in (2.05 / L, 3.0 / L):  # |1 - lr L| > 1: the loss grows geometrically
        findings = diagnose(run(jo.sgd(lr)))
        assert findings[0].trap == "divergence" and findings[0].severity == "critical"
        check_findings(findings)


def test_diagnose_flags_divergence_to_nan():
    hist = run(jo.sgd(3.0 / L), steps=400)  # overflows float32 to inf, then NaN
    assert not np.isfinite(hist["loss"][-1])
    (f,) = [f for f in diagnose(hist) if f.trap == "divergence"]
    assert f.step is not None and f.step < 20


def test_diagnose_flags_vanishing_updates():
    findings = diagnose(run(jo.sgd(1e-9)))  # r_t ~ 1e-8 < 1e-4, loss flat, grad intact
    assert "vanishing_updates" in traps(findings)
    check_findings(findings)


@pytest.mark.parametrize("opt", [jo.adam(1e-5), jo.sgd(1e-3)], ids=["adam1e-5", "sgd1e-3"])
def test_diagnose_flags_a_too_low_learning_rate_on_an_mlp(opt):
    # Reported as "no trap detected" with the old 1e-6 ratio threshold: update/param
    # ratio ~4e-5 / ~7e-5, loss down only ~9% / ~23% in 500 steps, gradient still there.
    hist, _ = run_problem("spirals", opt, 500)
    findings = diagnose(hist)
    assert traps(findings) == {"vanishing_updates"}
    assert "learning rate 10-100x" in findings[0].fix
    check_findings(findings)


def test_diagnose_eps_hint_flags_eps_dominated_adam():
    # eps=10 >> sqrt(v): u ~ -lr g / eps, ~1e-3 of an Adam step lr * sqrt(n).
    hist, n = run_problem("spirals", jo.adam(0.03, eps=10.0), 500)
    (f,) = [f for f in diagnose(hist, n_params=n) if f.trap == "vanishing_updates"]
    assert "lr*sqrt(n_params)" in f.evidence and "eps dominates" in f.fix
    with pytest.raises(ValueError, match="n_params"):
        diagnose(hist, n_params=0)


@pytest.mark.parametrize("opt", [jo.adam(1e-2), jo.adam(1e-3), jo.sgd(0.05)])
def test_diagnose_is_silent_on_healthy_mlp_runs(opt):
    hist, n = run_problem("spirals", opt, 500)
    assert diagnose(hist) == []
    assert diagnose(hist, n_params=n) == []  # the eps test spares Adam and SGD steps


def test_diagnose_spares_converged_runs_with_small_updates():
    t = np.arange(200)
    hist = {
        "loss": 1e-3 + np.exp(-t / 20.0),  # fell ~100%
        "grad_norm": np.exp(-t / 20.0),  # and the gradient shrank
        "update_ratio": np.full(200, 1e-5),
    }
    assert diagnose(hist) == []
    stuck = dict(hist, loss=1.0 - 1e-4 * t, grad_norm=np.ones(200))
    assert traps(diagnose(stuck)) == {"vanishing_updates"}


def test_diagnose_gradient_field_game_spirals_out():
    hist, _ = run_problem("bilinear", jo.sgd(0.1), 200)  # GDA: distance x(1 + lr^2)/step
    assert float(hist["loss"][-1]) < 10 * float(hist["loss"][0])  # below the 10x factor
    # Read as a potential, the rotation looks like a plateau / an overshoot: wrong.
    assert {"plateau", "oscillation"} & traps(diagnose(hist))
    findings = diagnose(hist, gradient_field=True)
    assert traps(findings) == {"diverging_game"}
    (f,) = findings
    assert f.severity == "critical"
    for word in ("extragradient", "optimistic", "average", "Momentum makes it worse"):
        assert word in f.fix
    check_findings(findings)
    slow, _ = run_problem("bilinear", jo.sgd(0.03), 200)  # only ~+20% in 200 steps
    assert traps(diagnose(slow, gradient_field=True)) == {"diverging_game"}


def test_diagnose_gradient_field_with_momentum_and_a_converging_game():
    hist, _ = run_problem("bilinear", jo.sgd(0.05, momentum=0.9), 200)
    found = traps(diagnose(hist, gradient_field=True))
    assert found == {"diverging_game", "divergence"}
    calm, _ = run_problem("bilinear", jo.adam(0.01), 200)  # loss 1 -> ~0.83, no rise
    assert diagnose(calm, gradient_field=True) == []


def test_diagnose_flags_oscillation_just_below_two_over_L():
    findings = diagnose(run(jo.sgd(1.9 / L)))  # stable, but the iterate flips sides
    assert traps(findings) == {"oscillation"}
    check_findings(findings)


def test_diagnose_is_silent_on_a_healthy_run():
    assert diagnose(run(jo.sgd(1.0 / L))) == []
    assert format_findings([]) == "no trap detected"


# ---------------------------------------------------------------- diagnose on synthetic histories


def test_diagnose_flags_overfitting():
    steps = np.arange(100)
    hist = {
        "loss": 1.0 / (1.0 + steps),
        "val_steps": np.arange(0, 100, 10),
        "val_metric": np.array([1.0, 0.6, 0.45, 0.4, 0.42, 0.47, 0.53, 0.6, 0.66, 0.72]),
    }
    (f,) = diagnose(hist)
    assert f.trap == "overfitting" and f.step == 30
    check_findings([f])
    accuracy = dict(hist, val_metric=1.0 - hist["val_metric"])
    assert traps(diagnose(accuracy, val_mode="max")) == {"overfitting"}


def test_diagnose_calls_a_recovered_spike_a_warning():
    loss = np.concatenate([[1.0, 20.0], np.geomspace(0.9, 1e-3, 98)])
    (f,) = diagnose({"loss": loss})
    assert (f.trap, f.severity, f.step) == ("divergence", "warning", 1)


def test_diagnose_flags_plateau_and_premature_convergence():
    t = np.arange(100)
    loss = np.maximum(1.0 - 0.05 * t, 0.5)
    stuck = diagnose({"loss": loss, "grad_norm": np.ones(100)})
    assert traps(stuck) == {"plateau"}
    converged = {"loss": loss, "grad_norm": np.where(t < 10, 1.0, 1e-3)}
    assert diagnose(converged) == []
    poor = diagnose(converged, reference_loss=0.0)
    assert traps(poor) == {"premature_convergence"}
    check_findings(stuck + poor)


def test_diagnose_flags_zigzag_loss():
    loss = 1.0 + 0.5 * (-1.0) ** np.arange(50) - 0.001 * np.arange(50)
    findings = diagnose({"loss": loss}, lr=0.1)
    assert traps(findings) == {"oscillation"}
    assert "0.0333" in findings[0].fix  # concrete values from the learning rate


def test_diagnose_rejects_bad_history():
    with pytest.raises(ValueError, match="'loss'"):
        diagnose({"grad_norm": np.ones(3)})
    with pytest.raises(ValueError, match="grad_norm"):
        diagnose({"loss": np.ones(3), "grad_norm": np.ones(4)})
    with pytest.raises(ValueError, match="1-D"):
        diagnose({"loss": np.ones((2, 3))})
