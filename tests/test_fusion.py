"""One loop per step where XLA:CPU fuses sibling loops (`tree.recompute_for_update`).

XLA:CPU merges sibling loops only when the process starts with its multi-output fusion
option; the library then recomputes each moment for the update from its inputs, so
the new moment and the parameter update become one loop. These tests check that the
default compiled programs are untouched, and, in a subprocess started with the option,
that every converted optimizer compiles to one loop over its buffer and gives the
default path's numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu as jo
from jaxopt_edu import flat, tree

MOF_FLAG = "--xla_backend_extra_options=xla_cpu_use_multi_output_fusion"


def _flag_set() -> bool:
    return "xla_cpu_use_multi_output_fusion" in os.environ.get("XLA_FLAGS", "")


def test_probe_matches_how_the_process_started():
    assert tree.multi_output_fusion("cpu") is _flag_set()
    assert tree.multi_output_fusion("no-such-platform") is False


@pytest.mark.skipif(_flag_set(), reason="this process fuses siblings")
def test_default_path_is_the_plain_one():
    """Without the option the state is passed through as it is (no barrier in the
    program), so the compiled step is the one it always was."""
    g, m = jnp.ones(4), jnp.zeros(4)
    new = m + g
    assert tree.recompute_for_update(lambda a, b: a + b, new, g, m) is new
    with pytest.raises(ValueError, match="recompute_for_update: `fn` must be the function"):
        tree.recompute_for_update(new, new, g, m)  # fn forgotten: result passed first
    params = {"w": jnp.ones((8, 8)), "b": jnp.ones(8)}
    for tx in (jo.adam(1e-3), jo.sgd(1e-2, momentum=0.9), jo.rmsprop(1e-3), jo.adagrad(0.1)):
        state = tx.init(params)
        jaxpr = jax.make_jaxpr(lambda g, s, tx=tx: tx.update(g, s, params))(params, state)
        assert "optimization_barrier" not in str(jaxpr)


# Run in a subprocess started with the option: for each optimizer, the number of
# loops over the flat buffer in the compiled donated step, and the params after
# three steps.
_CHILD = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
import jaxopt_edu as jo
from jaxopt_edu import flat, tree
sys.path.insert(0, sys.argv[1])
from test_fusion import OPTIMIZERS, P0, loss_after_step, run_steps, loops_over
assert tree.multi_output_fusion("cpu"), "the option did not take"
out = {}
for name, make in OPTIMIZERS.items():
    params, compiled = run_steps(make())
    out[name] = {"loops": loops_over(compiled), "params": np.asarray(params).tolist()}
# the barrier is differentiable and batches: a step under grad and under vmap
out["grad"] = np.asarray(jax.grad(loss_after_step)(P0)).tolist()
out["vmap"] = np.asarray(jax.vmap(loss_after_step)(jnp.stack([P0, 2 * P0]))).tolist()
tx = jo.adam(1e-2)
# one barrier per leaf position (a leaf's update waits for its own gradient only)
tree2 = {"a": jnp.ones(3), "b": jnp.ones(2)}
s2 = tx.init(tree2)
jaxpr = str(jax.make_jaxpr(lambda g, s: tx.update(g, s, tree2))(tree2, s2))
out["barriers"] = jaxpr.count("optimization_barrier")
# under a mesh of two devices (the probe compiles outside the caller's mesh)
mesh = jax.make_mesh((2,), ("x",))
with jax.set_mesh(mesh):
    for make in OPTIMIZERS.values():
        t = make()
        jax.jit(t.update)(tree2, t.init(tree2), tree2)
out["mesh"] = "ok"
print(json.dumps(out))
"""

N = 65536 + 64  # one buffer: a 256 x 256 matrix (Lion's large-leaf form) and a vector


def _params():
    key = jax.random.PRNGKey(0)
    return {
        "w": jax.random.normal(key, (256, 256)),
        "b": jax.random.normal(jax.random.fold_in(key, 1), (64,)),
    }


OPTIMIZERS = {
    "adam": lambda: jo.adam(1e-2),
    "adamw": lambda: jo.adamw(1e-2, weight_decay=0.1),
    "nadam": lambda: jo.nadam(1e-2),
    "sgd_momentum": lambda: jo.sgd(1e-2, momentum=0.9),
    "sgd_nesterov": lambda: jo.sgd(1e-2, momentum=0.9, nesterov=True),
    "rmsprop": lambda: jo.rmsprop(1e-2),
    "adagrad": lambda: jo.adagrad(1e-1),
    "lion": lambda: jo.lion(1e-3, weight_decay=0.1),
}


P0 = jnp.linspace(-1.0, 1.0, 6)


def loss_after_step(p):
    """The loss after one Adam step from `p`: differentiated and batched through the
    step (in the child with the option, and here without it)."""
    tx = jo.adam(1e-2)
    u, _ = tx.update(2 * p, tx.init(p), p)
    return jnp.sum(jo.apply_updates(p, u) ** 2)


def run_steps(tx, steps=3):
    """Three donated, jitted flat steps with a fixed gradient (an argument of the step,
    as in a training loop's optimizer call); the final flat params and the compiled
    step. A gradient computed inside the step would be one more loop: with
    multi-output fusion XLA:CPU no longer copies a producer into each of its readers."""
    params = flat.ravel(_params())
    grads = jax.tree.map(lambda x: 2.0 * x - 0.5, params)
    state = tx.init(params)

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return jo.apply_updates(p, u), s

    compiled = jax.jit(step, donate_argnums=(0, 2)).lower(params, grads, state).compile()
    for _ in range(steps):
        params, state = compiled(params, grads, state)
    return jax.tree.leaves(params)[0], compiled


_INSTRUCTION = re.compile(r"\s*(?:ROOT )?%[\w.\-]+ = (.*?) ([\w\-]+)\(")
_NOT_WORK = ("parameter", "get-tuple-element", "tuple", "bitcast")


def loops_over(compiled) -> int:
    """Instructions of the compiled step that produce an array of the buffer's size:
    loops (fusions), copies, and conditionals (Lion's sign bytes are written inside
    one), whatever their dtype."""
    text = compiled.as_text()
    entry = text[text.find("ENTRY") :]
    count = 0
    for line in entry.splitlines():
        m = _INSTRUCTION.match(line)
        if m and f"[{N}]" in m.group(1) and m.group(2) not in _NOT_WORK:
            count += 1
    return count


@pytest.fixture(scope="module")
def fused_run():
    flags = f"{os.environ.get('XLA_FLAGS', '')} {MOF_FLAG} --xla_force_host_platform_device_count=2"
    env = dict(os.environ, XLA_FLAGS=flags.strip())
    here = Path(__file__).resolve().parent
    env["PYTHONPATH"] = os.pathsep.join([str(here.parent), str(here)])
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(here)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_one_loop_per_step_with_multi_output_fusion(fused_run, name):
    """One loop and nothing else over the buffer: no copy, no sign bytes."""
    assert fused_run[name]["loops"] == 1


def test_one_barrier_per_leaf_and_updates_under_a_mesh(fused_run):
    assert fused_run["barriers"] == 2
    assert fused_run["mesh"] == "ok"


_MESH_CHILD = r"""
import jax, jax.numpy as jnp
import jaxopt_edu as jo
tree = {"a": jnp.ones(3), "b": jnp.ones(2)}
with jax.set_mesh(jax.make_mesh((2,), ("x",))):
    for tx in (jo.adam(1e-2), jo.lion(1e-3), jo.sgd(0.1, momentum=0.9), jo.rmsprop(1e-2)):
        jax.jit(tx.update)(tree, tx.init(tree), tree)
print("ok")
"""


def test_updates_under_a_mesh_without_the_option():
    """The probe runs on every trace of these optimizers, also without the option: a
    mesh of two CPU devices around the caller must not make it fail."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", _MESH_CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


@pytest.mark.skipif(_flag_set(), reason="this process fuses siblings")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_default_path_makes_more_loops(name):
    """The control: the same step compiled here, without the option, is several loops
    (so the fused count above is not an artefact of how loops are counted)."""
    _, compiled = run_steps(OPTIMIZERS[name](), steps=0)
    assert loops_over(compiled) >= 2


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_same_numbers_as_the_default_path(fused_run, name):
    params, _ = run_steps(OPTIMIZERS[name]())
    np.testing.assert_allclose(fused_run[name]["params"], np.asarray(params), rtol=1e-6, atol=1e-7)


def test_grad_and_vmap_through_the_fused_step(fused_run):
    np.testing.assert_allclose(fused_run["grad"], jax.grad(loss_after_step)(P0), rtol=1e-6)
    both = jax.vmap(loss_after_step)(jnp.stack([P0, 2 * P0]))
    np.testing.assert_allclose(fused_run["vmap"], both, rtol=1e-6)
