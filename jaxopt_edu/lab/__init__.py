"""The optimizer lab: test problems, comparisons, sweeps and the learning-rate finder.

Built on the public API of `jaxopt_edu` only; nothing in the core imports it.
"""

from jaxopt_edu.lab.compare import (
    DEFAULT_OPTIMIZERS,
    CompareResult,
    compare,
    optimizer_from_name,
)
from jaxopt_edu.lab.lr_find import LRFindResult, lr_find
from jaxopt_edu.lab.problems import Problem, get_problem, list_problems
from jaxopt_edu.lab.sweep import SweepResult, sweep

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "CompareResult",
    "LRFindResult",
    "Problem",
    "SweepResult",
    "compare",
    "get_problem",
    "list_problems",
    "lr_find",
    "optimizer_from_name",
    "sweep",
]
