"""Schedules against live optax, plus tracing, dtype and argument-checking properties.

The conftest turns on strict dtype and rank promotion for the whole suite and gives
the `x64` fixture; comparisons with optax run in float64 at rtol 1e-7.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_edu import schedules

N = 40  # counts 0..N-1: past the end of every case below

SGDR_CYCLES = [
    dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=8),
    dict(init_value=0.1, peak_value=0.5, warmup_steps=0, decay_steps=6, end_value=0.05),
    dict(init_value=0.0, peak_value=0.2, warmup_steps=3, decay_steps=10, exponent=2.0),
]
CASES = [
    ("constant_schedule", dict(value=0.5)),
    ("linear_schedule", dict(init_value=1.0, end_value=0.01, transition_steps=10)),
    (
        "linear_schedule",
        dict(init_value=0.0, end_value=2.0, transition_steps=7, transition_begin=3),
    ),
    ("polynomial_schedule", dict(init_value=1.0, end_value=0.1, power=2.5, transition_steps=10)),
    (
        "polynomial_schedule",
        dict(init_value=0.1, end_value=1.0, power=0.5, transition_steps=9, transition_begin=4),
    ),
    ("exponential_decay", dict(init_value=1.0, transition_steps=3, decay_rate=0.5)),
    (
        "exponential_decay",
        dict(
            init_value=1.0,
            transition_steps=3,
            decay_rate=0.5,
            staircase=True,
            transition_begin=4,
            end_value=0.05,
        ),
    ),
    ("exponential_decay", dict(init_value=0.1, transition_steps=2, decay_rate=1.5, end_value=1.0)),
    ("cosine_decay_schedule", dict(init_value=1.0, decay_steps=10)),
    ("cosine_decay_schedule", dict(init_value=2.0, decay_steps=25, alpha=0.1, exponent=2.0)),
    ("cosine_decay_schedule", dict(init_value=2.0, decay_steps=1, alpha=1.0)),
    ("warmup_constant_schedule", dict(init_value=0.0, peak_value=1.0, warmup_steps=5)),
    ("warmup_constant_schedule", dict(init_value=1.0, peak_value=0.5, warmup_steps=1)),
    (
        "warmup_cosine_decay_schedule",
        dict(
            init_value=0.0,
            peak_value=1.0,
            warmup_steps=5,
            decay_steps=20,
            end_value=0.1,
            exponent=1.5,
        ),
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0.1, peak_value=1.0, warmup_steps=0, decay_steps=20),
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0.1, peak_value=1.0, warmup_steps=4, decay_steps=12, end_value=2.0),
    ),
    (
        "warmup_exponential_decay_schedule",
        dict(
            init_value=0.0,
            peak_value=1.0,
            warmup_steps=5,
            transition_steps=3,
            decay_rate=0.8,
            transition_begin=2,
            staircase=True,
            end_value=0.3,
        ),
    ),
    (
        "warmup_exponential_decay_schedule",
        dict(init_value=0.0, peak_value=1.0, warmup_steps=0, transition_steps=3, decay_rate=0.8),
    ),
    ("piecewise_constant_schedule", dict(init_value=1.0)),
    (
        "piecewise_constant_schedule",
        dict(init_value=1.0, boundaries_and_scales={5: 0.1, 10: 0.5, 0: 2.0}),
    ),
    (
        "piecewise_interpolate_schedule",
        dict(interpolate_type="linear", init_value=1.0, boundaries_and_scales={5: 0.1, 12: 0.5}),
    ),
    (
        "piecewise_interpolate_schedule",
        dict(
            interpolate_type="cosine",
            init_value=1.0,
            boundaries_and_scales={0: 2.0, 5: 0.1, 12: 3.0},
        ),
    ),
    ("piecewise_interpolate_schedule", dict(interpolate_type="cosine", init_value=1.0)),
    ("linear_onecycle_schedule", dict(transition_steps=20, peak_value=1.0)),
    (
        "linear_onecycle_schedule",
        dict(
            transition_steps=30,
            peak_value=2.0,
            pct_start=0.2,
            pct_final=0.7,
            div_factor=5.0,
            final_div_factor=50.0,
        ),
    ),
    ("cosine_onecycle_schedule", dict(transition_steps=20, peak_value=1.0)),
    (
        "cosine_onecycle_schedule",
        dict(
            transition_steps=25,
            peak_value=1.0,
            pct_start=0.0,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
    ),
    ("sgdr_schedule", dict(cosine_kwargs=SGDR_CYCLES)),
    ("sgdr_schedule", dict(cosine_kwargs=SGDR_CYCLES[:1])),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def _eager(schedule, counts=range(N)):
    return np.array([schedule(t) for t in counts])


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_matches_optax(x64, name, kwargs):
    counts = jnp.arange(N)
    got = getattr(schedules, name)(**kwargs)(counts)  # eager, all counts at once
    with jax.numpy_dtype_promotion("standard"):  # the oracle is not written for strict mode
        expected = jax.vmap(getattr(optax, name)(**kwargs))(counts)  # eager: jit breaks it
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, expected, rtol=1e-7)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_jit_vmap_python_int_and_int32_agree(name, kwargs):
    schedule = getattr(schedules, name)(**kwargs)
    vmapped = jax.vmap(schedule)(jnp.arange(N, dtype=jnp.int32))
    assert vmapped.dtype == jnp.float32
    jitted = jax.jit(schedule)
    np.testing.assert_allclose([jitted(np.int32(t)) for t in range(N)], vmapped, 1e-6, 1e-6)
    some = [0, 1, 2, 3, 5, 8, 13, 21, N - 1]  # eager, with Python ints
    np.testing.assert_allclose(_eager(schedule, some), vmapped[np.array(some)], 1e-6, 1e-6)
    assert schedule(jnp.int32(3)).dtype == jnp.float32 and schedule(jnp.int32(3)).shape == ()


def test_signatures_match_optax():
    for name in schedules.__all__:
        if name != "Schedule":
            ours, ref = (
                inspect.signature(getattr(schedules, name)),
                inspect.signature(getattr(optax, name)),
            )
            assert [(p.name, p.default, p.kind) for p in ours.parameters.values()] == [
                (p.name, p.default, p.kind) for p in ref.parameters.values()
            ], name


def test_docstrings_have_every_section():
    for name in schedules.__all__:
        if name != "Schedule":
            doc = getattr(schedules, name).__doc__
            for section in ("$$", "Args:", "PyTorch:", "Pitfall:", "Reference:"):
                assert section in doc, (name, section)


def test_float64_result_from_float32_arguments(x64):
    schedule = schedules.linear_schedule(jnp.float32(1.0), jnp.float32(0.0), 10)
    assert schedule(jnp.int32(3)).dtype == jnp.float64


def test_grad_through_value_and_float_count():
    def at_ten(peak):
        return schedules.warmup_cosine_decay_schedule(0.0, peak, 5, 25)(jnp.int32(10))

    np.testing.assert_allclose(jax.grad(at_ten)(2.0), 0.5 * (1 + math.cos(math.pi / 4)), 1e-6)
    slope = jax.grad(schedules.cosine_decay_schedule(1.0, 10))(3.0)
    np.testing.assert_allclose(slope, -math.pi / 20 * math.sin(0.3 * math.pi), rtol=1e-6)


def test_traced_hyperparameters_under_jit():
    @jax.jit
    def value(lr, rate, count):
        return schedules.exponential_decay(lr, 4, rate, end_value=0.01)(count)

    np.testing.assert_allclose(value(2.0, 0.5, jnp.int32(8)), 0.5, rtol=1e-6)


def test_scan_over_counts():
    schedule = schedules.warmup_cosine_decay_schedule(0.0, 1.0, 3, 12)
    _, values = jax.lax.scan(lambda c, _: (c + 1, schedule(c)), jnp.int32(0), length=N)
    np.testing.assert_allclose(values, schedule(jnp.arange(N)), rtol=1e-6, atol=1e-6)


# Deliberate departures from optax: checked against the closed form, with the reason.


def test_warmup_constant_without_warmup_is_peak():
    # optax holds init_value forever when warmup_steps=0; no warmup means peak_value.
    schedule = schedules.warmup_constant_schedule(0.1, 1.0, 0)
    np.testing.assert_array_equal(schedule(jnp.arange(N)), 1.0)


def test_warmup_cosine_with_zero_peak_reaches_end_value(x64):
    # optax scales by alpha = end/peak, forced to 0 when peak is 0, so it never leaves 0.
    schedule = schedules.warmup_cosine_decay_schedule(0.0, 0.0, 2, 10, end_value=0.1)
    t = np.arange(N)
    expected = np.where(
        t < 2, 0.0, 0.1 - 0.1 * 0.5 * (1 + np.cos(np.pi * np.minimum(t - 2, 8) / 8))
    )
    np.testing.assert_allclose(_eager(schedule), expected, rtol=1e-7, atol=1e-17)


def test_linear_onecycle_skips_a_zero_length_phase(x64):
    # With pct_final=1, optax's dict of knots has step T twice and loses one: it falls
    # from the peak straight to peak/final_div_factor (0.1 here), never to peak/div_factor
    # and then peak/(div_factor * final_div_factor) = 0.025.
    schedule = schedules.linear_onecycle_schedule(
        10, 1.0, pct_final=1.0, div_factor=4.0, final_div_factor=10.0
    )
    t = np.arange(N)
    expected = np.where(t < 10, np.interp(t, [0, 3, 10], [0.25, 1.0, 0.25]), 0.025)
    np.testing.assert_allclose(_eager(schedule), expected, rtol=1e-7)


def test_cosine_onecycle_with_pct_start_one_reaches_peak(x64):
    # With pct_start=1, optax's knot at T overwrites the peak; here the value rises
    # to peak_value along a cosine and drops to the end value at T.
    schedule = schedules.cosine_onecycle_schedule(
        10, 1.0, pct_start=1.0, div_factor=4.0, final_div_factor=10.0
    )
    t = np.arange(N)
    expected = np.where(t < 10, 1.0 + (0.25 - 1.0) / 2 * (np.cos(np.pi * t / 10) + 1), 0.025)
    np.testing.assert_allclose(_eager(schedule), expected, rtol=1e-7)


@settings(max_examples=30, deadline=None)
@given(
    init=st.floats(-2, 2),
    end=st.floats(-2, 2),
    power=st.floats(0.1, 4),
    steps=st.integers(1, 30),
    begin=st.integers(0, 10),
)
def test_polynomial_matches_optax_on_random_arguments(init, end, power, steps, begin):
    with jax.enable_x64(True):
        ours = schedules.polynomial_schedule(init, end, power, steps, begin)
        ref = optax.polynomial_schedule(init, end, power, steps, begin)
        counts = jnp.arange(N)
        with jax.numpy_dtype_promotion("standard"):
            expected = jax.vmap(ref)(counts)
        np.testing.assert_allclose(jax.vmap(ours)(counts), expected, rtol=1e-7, atol=1e-15)


def _const(count):
    return jnp.zeros(jnp.shape(count))


BAD = [
    (lambda: schedules.linear_schedule(1.0, 0.0, 0), "transition_steps"),
    (lambda: schedules.linear_schedule(1.0, 0.0, 10, -1), "transition_begin"),
    (lambda: schedules.polynomial_schedule(1.0, 0.0, 2.0, -5), "transition_steps"),
    (lambda: schedules.polynomial_schedule(1.0, 0.0, 0.0, 10), "power"),
    (lambda: schedules.exponential_decay(1.0, -1, 0.5), "transition_steps"),
    (lambda: schedules.exponential_decay(1.0, 10, 0.0), "decay_rate"),
    (lambda: schedules.exponential_decay(1.0, 10, 0.5, transition_begin=-2), "transition_begin"),
    (lambda: schedules.exponential_decay(1.0, 10, 0.5, end_value=2.0), "end_value"),
    (lambda: schedules.exponential_decay(1.0, 10, 2.0, end_value=0.5), "end_value"),
    (lambda: schedules.cosine_decay_schedule(1.0, 0), "decay_steps"),
    (lambda: schedules.cosine_decay_schedule(1.0, 10, alpha=1.5), "alpha"),
    (lambda: schedules.cosine_decay_schedule(1.0, 10, alpha=-0.1), "alpha"),
    (lambda: schedules.cosine_decay_schedule(1.0, 10, exponent=0.0), "exponent"),
    (lambda: schedules.warmup_constant_schedule(0.0, 1.0, -1), "warmup_steps"),
    (lambda: schedules.warmup_cosine_decay_schedule(0.0, 1.0, -1, 10), "warmup_steps"),
    (lambda: schedules.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), "decay_steps"),
    (lambda: schedules.warmup_cosine_decay_schedule(0.0, 1.0, 1, 9, exponent=-1), "exponent"),
    (lambda: schedules.warmup_exponential_decay_schedule(0.0, 1.0, -2, 5, 0.5), "warmup_steps"),
    (lambda: schedules.warmup_exponential_decay_schedule(0.0, 1.0, 5, 0, 0.5), "transition_steps"),
    (lambda: schedules.warmup_exponential_decay_schedule(0.0, 1.0, 5, 9, -0.5), "decay_rate"),
    (
        lambda: schedules.warmup_exponential_decay_schedule(0.0, 1.0, 5, 9, 0.5, end_value=2.0),
        "end_value",
    ),
    (lambda: schedules.piecewise_constant_schedule(1.0, {10: -0.1}), "boundaries_and_scales"),
    (lambda: schedules.piecewise_constant_schedule(1.0, {-1: 0.1}), "boundaries_and_scales"),
    (lambda: schedules.piecewise_interpolate_schedule("cubic", 1.0), "interpolate_type"),
    (
        lambda: schedules.piecewise_interpolate_schedule("linear", 1.0, {5: math.nan}),
        "boundaries_and_scales",
    ),
    (lambda: schedules.join_schedules([], []), "schedules"),
    (lambda: schedules.join_schedules([_const, 0.1], [3]), "schedules"),
    (lambda: schedules.join_schedules([_const], [3]), "boundaries"),
    (lambda: schedules.join_schedules([_const, _const, _const], [5, 5]), "boundaries"),
    (lambda: schedules.join_schedules([_const, _const], [-1]), "boundaries"),
    (lambda: schedules.linear_onecycle_schedule(0, 1.0), "transition_steps"),
    (lambda: schedules.linear_onecycle_schedule(10, 1.0, pct_start=1.5), "pct_start"),
    (lambda: schedules.linear_onecycle_schedule(10, 1.0, 0.9, 0.5), "pct_final"),
    (lambda: schedules.linear_onecycle_schedule(10, 1.0, div_factor=0.0), "div_factor"),
    (lambda: schedules.cosine_onecycle_schedule(10, 1.0, pct_start=-0.1), "pct_start"),
    (lambda: schedules.cosine_onecycle_schedule(10, 1.0, final_div_factor=-1), "final_div_factor"),
    (lambda: schedules.sgdr_schedule([]), "cosine_kwargs"),
    (
        lambda: schedules.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=0)]),
        "decay_steps",
    ),
    (lambda: schedules.sgdr_schedule([dict(SGDR_CYCLES[0], warmup_steps=8)]), "decay_steps"),
]


@pytest.mark.parametrize(("make", "arg"), BAD, ids=[f"{i}-{a}" for i, (_, a) in enumerate(BAD)])
def test_bad_argument_is_named(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}"):
        make()


def test_polynomial_with_fractional_power_is_finite_under_jit():
    # optax computes 1 - t/T, which jit in float32 can round to -1e-7 at t = T, and a
    # fractional power of that is NaN (optax 0.2.8 returns NaN here); we compute (T - t)/T.
    schedule = schedules.polynomial_schedule(0.1, 1.0, 0.5, 9, 4)
    assert jax.jit(schedule)(jnp.int32(13)) == 1.0
