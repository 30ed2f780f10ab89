"""Every optimizer configuration of the registry passes the public test kit."""

import pytest
from registry import CASES

from jaxopt_edu import testing


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_properties(case):
    # everything but convergence, which needs the case's own learning rate
    testing.check_all(case.ours(), skip=("converges",))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_converges_on_parabola(case):
    factory, steps, tol = case.parabola
    testing.check_converges(factory(), "parabola", steps=steps, tol=tol)


@pytest.mark.parametrize("case", [c for c in CASES if c.rosenbrock], ids=lambda c: c.name)
def test_converges_on_rosenbrock(case):
    factory, steps, tol = case.rosenbrock
    testing.check_converges(factory(), "rosenbrock", steps=steps, tol=tol)
