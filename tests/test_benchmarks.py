"""The benchmark scripts still run, and compare like with like (smoke sizes, no timing claims)."""

import json
import sys
import time
import weakref
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_edu as jo

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

bench_step = pytest.importorskip("bench_step")
bench_pytree_layouts = pytest.importorskip("bench_pytree_layouts")
bench_train_step = pytest.importorskip("bench_train_step")
make_docs = pytest.importorskip("make_docs")

# the benchmarks call optax, which is not clean under the suite's strict promotion
pytestmark = pytest.mark.usefixtures("standard_promotion")


@pytest.fixture
def standard_promotion():
    with jax.numpy_dtype_promotion("standard"):
        yield


def test_bench_step_writes_rows_and_table(tmp_path):
    out = tmp_path / "step.json"
    argv = ["--quick", "--trees", "matrix", "--chains", "adam", "--repeats", "2", "--no-torch"]
    bench_step.main(argv + ["--out", str(out)])
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["tree"] == "matrix" and row["chain"] == "adam"
    for k in ("roofline", "ours_flat", "ours_pytree", "optax"):
        assert row[k]["step_s"] > 0 and row[k]["compile_s"] > 0, k
        assert row[k]["peak_bytes"] >= row[k]["base_bytes"] > 0, k
        assert (row[k]["settle_steps"], row[k]["flush_bytes"]) == (1, 64 << 20), k
    assert "| matrix (1 leaves" in out.with_suffix(".md").read_text()
    try:
        bench_step.main(argv + ["--settle-steps", "0", "--out", str(out)])
        (row,) = json.loads(out.read_text())["rows"]
        assert {row[k]["settle_steps"] for k in ("roofline", "optax")} == {0}
        assert {row[k]["flush_bytes"] for k in ("roofline", "optax")} == {0}
        with pytest.raises(SystemExit):
            bench_step.main(argv + ["--settle-steps", "-1", "--out", str(out)])
    finally:
        bench_step.SETTLE_STEPS = bench_step.DEFAULT_SETTLE_STEPS
        bench_step.FLUSH_BYTES = bench_step.DEFAULT_FLUSH_BYTES


@pytest.mark.parametrize("chain", bench_step.CHAINS)
def test_ours_and_optax_run_the_same_chain(chain):
    """Each benchmark chain builds the same optimizer in both libraries (3 steps agree)."""
    import optax

    import jaxopt_edu as jo

    shapes = {"w": (8, 12), "b": (12,)}
    p0, g = bench_step.make_arrays(shapes, 0), bench_step.make_arrays(shapes, 1)
    finals = []
    for lib in (jo, optax):
        tx, p = bench_step.build(lib, chain), p0
        state = tx.init(p)
        for _ in range(3):
            u, state = tx.update(g, state, p)
            p = lib.apply_updates(p, u)
        finals.append(flat(p))
    np.testing.assert_allclose(finals[0], finals[1], rtol=2e-5, atol=1e-7)
    assert not np.allclose(finals[0], flat(p0))


def test_measure_takes_turns():
    order = []
    runners = {k: {"run": lambda k=k: order.append(k), "compile_s": 0.0} for k in "abc"}
    res = bench_step.measure(runners, 30, settle_steps=0)
    rounds = ["".join(order[i : i + 3]) for i in range(0, 90, 3)]
    assert all(sorted(r) == list("abc") for r in rounds)  # each runs once per round
    assert len(set(rounds)) > 3  # in changing orders: "a" does not always follow "c"
    order.clear()
    bench_step.measure(runners, 30, settle_steps=0)
    assert ["".join(order[i : i + 3]) for i in range(0, 90, 3)] == rounds  # seeded
    order.clear()
    bench_step.measure(runners, 30, settle_steps=1)  # the same turns, each step twice
    assert "".join(order) == "".join(k + k for k in "".join(rounds))
    assert set(res) == set("abc") and all(r["step_s"] >= 0 for r in res.values())


def _top_level_step(p, g, s):
    return p - 0.1 * g, s + 1.0


def test_prepare_jax_compiles_a_living_function_again():
    """jax caches a compile by the function jitted: without a fresh wrapper, the rounds of
    measure_rotated would all time the first round's executable, compiled in ~0 s."""

    def executable(runner):
        run = runner["run"]
        cells = dict(zip(run.__code__.co_freevars, run.__closure__, strict=True))
        return cells["compiled"].cell_contents

    made = [
        bench_step.prepare_jax(_top_level_step, jnp.ones(8), jnp.ones(8), jnp.zeros(()))
        for _ in range(2)
    ]
    first, second = (executable(r) for r in made)
    assert first is not second
    assert first.runtime_executable() is not second.runtime_executable()


def test_measure_rotated_prepares_every_competitor_in_every_position():
    prepared, live, live_before = [], set(), []

    def maker(k):
        def make():
            live_before.append(len(live))
            prepared.append(k)
            live.add(k)
            t = {"a": 0.010, "b": 0.020, "c": 0.030}[k]
            runner = {"run": lambda: time.sleep(t), "compile_s": 10.0 - len(prepared)}
            weakref.finalize(runner["run"], live.discard, k)
            return runner

        return make

    res = bench_step.measure_rotated({k: maker(k) for k in "abc"}, 6)
    rounds = ["".join(prepared[i : i + 3]) for i in range(0, 9, 3)]
    assert rounds == ["abc", "bca", "cab"]  # each first, second and third once
    assert live_before == [0, 1, 2] * 3  # a round's runners are freed before the next
    for k, t in zip("abc", (0.010, 0.020, 0.030), strict=True):
        assert res[k]["order_rounds"] == 3 and len(res[k]["step_s_rounds"]) == 3
        assert res[k]["step_s"] >= t  # the median of the pooled samples
    assert res["a"]["step_s"] < res["b"]["step_s"] < res["c"]["step_s"]
    # compile_s: the fastest of each one's three compiles (here: its last)
    assert {k: res[k]["compile_s"] for k in "abc"} == {"a": 2.0, "b": 1.0, "c": 3.0}
    for k in "abc":
        assert "run" not in res[k] and "step_samples" not in res[k]
    assert len(bench_step.measure_rotated({k: maker(k) for k in "ab"}, 4, rounds=1)) == 2
    assert "".join(prepared[9:]) == "ab"
    with pytest.raises(ValueError, match="rounds must be 1 or a multiple of the 1 "):
        bench_step.measure_rotated({"a": maker("a")}, 4, rounds=0)
    with pytest.raises(ValueError, match="multiple of the 3 competitors"):
        bench_step.measure_rotated({k: maker(k) for k in "abc"}, 4, rounds=2)


@pytest.mark.parametrize("chain", bench_step.ROOFLINE_CHAINS)
def test_roofline_kernel_is_the_optimizer_step(chain):
    """The roofline does the same arithmetic as the library's chain (one flat buffer)."""
    import jaxopt_edu as jo

    shapes = {"w": (6,), "b": (2, 3)}
    params, grads = bench_step.make_arrays(shapes, 0), bench_step.make_arrays(shapes, 1)
    if chain == "clip_adamw_cosine":  # the roofline's learning rate is constant
        tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adamw(1e-3, weight_decay=0.1))
    else:
        tx = bench_step.build(jo, chain)
    state = tx.init(params)
    flat_p, flat_g = jnp.asarray(flat(params)), jnp.asarray(flat(grads))
    roof_state = bench_step.roofline_state(chain, flat_p.size)
    roof = bench_step.roofline_step(chain)
    for _ in range(3):
        u, state = tx.update(grads, state, params)
        params = jo.apply_updates(params, u)
        flat_p, roof_state = roof(flat_p, flat_g, roof_state)
    np.testing.assert_allclose(flat(params), flat_p, rtol=1e-5)


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def test_pytree_layout_variants_agree(capsys, tmp_path):
    shapes = {f"l{i}": (3,) if i % 2 else (2, 2) for i in range(5)}
    n = sum(int(np.prod(s)) for s in shapes.values())
    p, g = bench_step.make_arrays(shapes, 0), bench_step.make_arrays(shapes, 1)
    zeros = jax.tree.map(jnp.zeros_like, p)
    t0 = jnp.zeros([], jnp.int32)
    ref, (m_ref, v_ref, _) = bench_pytree_layouts.per_leaf(p, g, (zeros, zeros, t0))
    flat0 = jnp.zeros(n, jnp.float32)
    for fn in (bench_pytree_layouts.flat_state, bench_pytree_layouts.flat_state_barrier):
        got, (m, v, t) = fn(p, g, (flat0, flat0, t0))
        np.testing.assert_allclose(flat(got), flat(ref), rtol=1e-6)
        np.testing.assert_allclose(m, flat(m_ref), rtol=1e-6)
        np.testing.assert_allclose(v, flat(v_ref), rtol=1e-6)
        assert int(t) == 1
    bench_pytree_layouts.main(
        ["--trees", "small", "--leaves", "6", "--repeats", "2", "--out", str(tmp_path / "l.json")]
    )
    assert capsys.readouterr().out.count("small (6 leaves)") == 3


def test_train_step_variants_agree(tmp_path):
    """Every layout of the training-step benchmark takes the same Adam step."""
    shapes = {f"l{i}": (3,) if i % 2 else (2, 2) for i in range(7)}
    params = bench_step.make_arrays(shapes, 0)
    x = jnp.asarray(0.5, jnp.float32)
    ref = None
    runs = bench_train_step.variants(params, buffer_leaves=3)
    # the cap is exercised: 7 leaves in buffers of 3 + 3 + 1, against one buffer
    assert len(runs["ours_flat_64"][1].buffers) == 3 and len(runs["ours_flat"][1].buffers) == 1
    assert len(runs["ours_flatten"][2].layout.sizes) == 3
    for name, (step, p, s) in runs.items():
        for _ in range(2):
            p, s = step(p, x, s)
        got = p.unravel() if isinstance(p, bench_train_step.flat.FlatTree) else p
        if name == "model_sgd":
            sgd = got
            continue
        if ref is None:
            ref = got
        chex.assert_trees_all_close(got, ref, rtol=1e-5, atol=1e-7)
    assert not np.allclose(flat(ref), flat(sgd))  # Adam is not plain SGD
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        bench_train_step.variant("nope", params)
    out = tmp_path / "train.json"
    bench_train_step.main(["--leaves", "6", "--repeats", "2", "--out", str(out)])
    data = json.loads(out.read_text())
    assert (data["settle_steps"], data["flush_bytes"]) == (1, 64 << 20)
    assert data["leaves"] == 6 and set(data["results"]) == {
        "model_sgd",
        "optax",
        "ours_pytree",
        "ours_flatten",
        "ours_flatten_one_buffer",
        "ours_flat",
        "ours_flat_64",
    }
    text = make_docs.train_step_section(out)
    assert "| ours_flat_64 |" in text and "6 leaves" in text


def test_make_docs_from_results(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    bench_step.main(
        [
            "--quick",
            "--trees",
            "matrix",
            "--chains",
            "sgd_momentum",
            "--repeats",
            "2",
            "--no-torch",
            "--out",
            str(res / "step.json"),
        ]
    )
    out = tmp_path / "benchmarks.md"
    make_docs.main(["--from-results", "--results", str(res), "--out", str(out)])
    text = out.read_text()
    assert "## One optimizer step on this CPU" in text
    assert "## What the step tables say" in text and "flat / roofline" in text
    assert "on a GPU" not in text  # no GPU results in that folder


def test_bench_step_append_keeps_earlier_rows_of_the_same_device(tmp_path):
    out = tmp_path / "step.json"
    common = ["--quick", "--trees", "matrix", "--repeats", "2", "--no-torch", "--out", str(out)]
    bench_step.main(common + ["--chains", "sgd_momentum"])
    bench_step.main(common + ["--chains", "adam", "--append"])
    rows = json.loads(out.read_text())["rows"]
    assert [r["chain"] for r in rows] == ["sgd_momentum", "adam"]
    assert out.with_suffix(".md").read_text().count("| matrix") == 2
    # rows of another machine are not mixed in
    data = json.loads(out.read_text())
    data["device"] = "another machine"
    out.write_text(json.dumps(data))
    with pytest.raises(SystemExit):
        bench_step.main(common + ["--chains", "adam", "--append"])
    assert json.loads(out.read_text())["device"] == "another machine"


def test_bench_scalars_smoke_and_docs_section(tmp_path):
    bench_scalars = pytest.importorskip("bench_scalars")
    out = tmp_path / "scalars.json"
    bench_scalars.main(["--n", "16", "--repeats", "2", "--out", str(out)])
    d = json.loads(out.read_text())
    assert d["n"] == 16 and "device" in d
    names = {f"roof_sgd_{k}{n}" for k in ("pass", "inc") for n in bench_scalars.COUNTS}
    names |= {f"{lib}_{c}" for lib in ("jaxopt_edu", "optax") for c in bench_scalars.CHAINS}
    assert set(d["step_s"]) == names and all(t > 0 for t in d["step_s"].values())
    text = make_docs.scalars_section(out)
    assert "| 16 |" in text and "| jaxopt_edu adam |" in text


def _bench_small_flat(tmp_path, monkeypatch, flags):
    """One quick bench_step row with `flags`; the layouts the flat column raveled with."""
    seen = []
    ravel = bench_step.flat.ravel

    def spy(*args, **kw):  # `flatten` calls ravel too, with positional arguments
        out = ravel(*args, **kw)
        if len(args) == 1:
            seen.append(out.layout)
        return out

    monkeypatch.setattr(bench_step.flat, "ravel", spy)
    out = tmp_path / "step.json"
    args = ["--quick", "--trees", "small", "--chains", "sgd_momentum", "--repeats", "2"]
    bench_step.main(args + ["--no-torch", *flags, "--out", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert seen
    return row, out.with_suffix(".md").read_text(), seen


def test_bench_step_flat_cap_is_used_and_labelled(tmp_path, monkeypatch):
    row, md, seen = _bench_small_flat(tmp_path, monkeypatch, ["--flat-max-buffer-leaves", "4"])
    # the row records the max_leaf_size ravel resolved its default to (65536 on a CPU)
    assert row["flat_args"] == {"max_buffer_leaves": 4, "max_leaf_size": 65536}
    assert "flat: 4 leaves per buffer" in md
    # the flat column's params and grads were raveled with the cap
    assert all(len(layout.sizes) == -(-row["leaves"] // 4) for layout in seen)


def test_bench_step_flat_max_leaf_keeps_big_leaves_apart_and_is_labelled(tmp_path, monkeypatch):
    row, md, seen = _bench_small_flat(tmp_path, monkeypatch, ["--flat-max-leaf", "100"])
    assert row["flat_args"] == {"max_leaf_size": 100}
    assert "flat: leaves over 100 apart" in md
    # the small tree alternates 64-element and 256-element leaves: each 256 one is apart
    for layout in seen:
        assert len(layout.sizes) == 1 + row["leaves"] // 2
        assert sorted(set(layout.sizes)) == [256, 64 * (row["leaves"] - row["leaves"] // 2)]


def test_bench_step_flat_max_leaf_none_packs_every_leaf(tmp_path, monkeypatch):
    row, md, seen = _bench_small_flat(tmp_path, monkeypatch, ["--flat-max-leaf", "none"])
    assert row["flat_args"] == {"max_leaf_size": None}
    assert "flat:" not in md  # one buffer per dtype, as rows measured before the default
    assert all(len(layout.sizes) == 1 for layout in seen)


def test_bench_step_flat_group_by_shape_is_used_and_labelled(tmp_path, monkeypatch):
    row, md, seen = _bench_small_flat(tmp_path, monkeypatch, ["--flat-group-by-shape"])
    assert row["flat_args"] == {"group_by_shape": True, "max_leaf_size": 65536}
    assert "grouped by shape" in md
    n = row["leaves"] // 2  # the two shapes, stacked
    assert all(sorted(layout.shapes) == [(n, 16, 16), (n, 64)] for layout in seen)


def test_make_docs_writes_the_grouped_layout_sections_from_the_kept_results(tmp_path):
    """The page's sections on leaves grouped by shape, from the results kept in the repo."""
    import shutil

    kept = BENCH / "results"
    names = (
        "adafactor_layouts.json",
        "leaf_reductions.json",
        "elementwise_grouped.json",
        "muon_grouped.json",
    )
    if not all((kept / n).exists() for n in names + ("step.json",)):
        pytest.skip("the grouped-layout results are not in benchmarks/results")
    res = tmp_path / "results"
    res.mkdir()
    for n in names + ("step.json",):
        shutil.copy(kept / n, res / n)
    out = tmp_path / "benchmarks.md"
    make_docs.main(["--from-results", "--results", str(res), "--out", str(out)])
    text = out.read_text()
    assert "## A per-leaf optimizer in the flat layout: leaves grouped by shape" in text
    assert "grouping by shape took the flat step from" in text
    assert "On 2000 small leaves (two shapes), the grouped flat step compiled in" in text
    assert "## Elementwise chains with the leaves grouped by shape" in text
    assert "(one buffer: " in text  # each grouped ratio next to the one-buffer one
    assert "### Why: a reduction over a slice copies the slice first" in text
    assert "## Muon in the flat layout: leaves grouped by shape" in text


def test_muon_grouped_text_reads_its_rows(tmp_path):
    def runner(step_s, compile_s, peak=3):
        return {"step_s": step_s, "compile_s": compile_s, "peak_bytes": peak, "base_bytes": 2}

    row = {"leaves": 8, "ours_flat": runner(0.001, 0.5), "ours_pytree": runner(0.004, 2.0, 2)}
    row["optax"] = runner(0.01, 4.0)
    path = tmp_path / "muon_grouped.json"
    path.write_text(json.dumps({"rows": [row]}))
    text = make_docs.muon_grouped_text(path)
    assert "On 8 leaves the grouped flat step compiled in 0.50 s" in text
    assert "(pytree mode 2.0 s, optax 4.0 s)" in text
    assert "(0.100x optax's, 0.250x pytree mode's)" in text
    assert "(1.50x params + grads + state against 1.00x)" in text


def test_bench_leaf_reductions_smoke_and_docs_section(tmp_path):
    bench_leaf_reductions = pytest.importorskip("bench_leaf_reductions")
    out = tmp_path / "leaf_reductions.json"
    d = bench_leaf_reductions.main(["--quick", "--repeats", "2", "--out", str(out)])
    assert json.loads(out.read_text()) == d
    assert set(d["rows"]) == {"leaves", "slices"}
    # the quick model's 2-dim leaves: wte, wpe and the block's four weight matrices
    assert d["leaves"] == 6
    for r in d["rows"].values():
        assert r["step_s"] > 0 and r["temp_bytes"] >= 0
    # the leaves are reduced where they lie; no temporary holds a copy of them
    assert d["rows"]["leaves"]["temp_over_reduced"] < 0.01
    text = make_docs.leaf_reductions_section(out)
    assert "| slices of one buffer |" in text and "bench_leaf_reductions.py" in text


def test_bench_leaf_totals_smoke_and_docs_section(tmp_path):
    bench_leaf_totals = pytest.importorskip("bench_leaf_totals")
    out = tmp_path / "leaf_totals.json"
    d = bench_leaf_totals.main(["--quick", "--repeats", "2", "--out", str(out)])
    assert json.loads(out.read_text()) == d
    assert [r["leaves"] for r in d["rows"]] == [16, 450]
    for r in d["rows"]:
        assert r["fenced_equals_unfenced"]
        assert r["max_rel_diff_optax"] < 1e-5
        for k in ("ours", "ours_unfenced", "optax"):
            assert r[k]["compile_s"] > 0 and r[k]["step_s"] > 0
    # the threshold the bench restores after its unfenced compile
    assert jo.tree._FENCED_FOLD_MIN_PARTS == d["fenced_from"] < 450
    text = make_docs.leaf_totals_section(out)
    assert "## A global norm over many leaves: compile time" in text
    assert "| 450 |" in text and "| NO |" not in text


def test_bench_compile_order_smoke_and_docs_section(tmp_path, monkeypatch):
    """Both orders run, each copy compiled once, positions listed first compiled first;
    the page's section is written from the JSON."""
    bench_compile_order = pytest.importorskip("bench_compile_order")
    made, compiled = [], []
    make_arrays, prepare = bench_compile_order.make_arrays, bench_compile_order.prepare_jax

    def spy_make(shapes, seed):
        out = make_arrays(shapes, seed)
        if seed == 0:  # a copy's params, made in the order of the copies
            made.append(id(out))
        return out

    def spy_prepare(step, params, grads, state):
        compiled.append(made.index(id(params), len(made) - 3) % 3)  # this set's copies
        runner = prepare(step, params, grads, state)
        return runner | {"copy": compiled[-1]}

    def spy_measure(runners, repeats, seed=0, settle_steps=None, flush_bytes=None):
        assert settle_steps == 0 and flush_bytes == 0  # as its results were measured
        # step_s: the copy's index, to follow it
        return {k: {"step_s": float(r["copy"] + 1)} for k, r in runners.items()}

    monkeypatch.setattr(bench_compile_order, "make_arrays", spy_make)
    monkeypatch.setattr(bench_compile_order, "prepare_jax", spy_prepare)
    monkeypatch.setattr(bench_compile_order, "measure", spy_measure)
    out = tmp_path / "compile_order.json"
    argv = ["--trees", "matrix", "--quick", "--copies", "3", "--repeats", "2"]
    rows = bench_compile_order.main(argv + ["--out", str(out)])
    d = json.loads(out.read_text())
    assert d["rows"] == rows and [r["order"] for r in rows] == ["forward", "reverse"]
    assert compiled == [0, 1, 2, 2, 1, 0]  # forward, then reverse
    # listed by position of compilation: copy 0 first forward, copy 2 first in reverse
    assert [r["step_s_by_position"] for r in rows] == [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]
    assert all(r["leaves"] == 1 for r in rows)
    step = tmp_path / "step.json"
    row = {"tree": "small", "ours_pytree": {"step_s": 1.1}, "optax": {"step_s": 1.0}}
    step.write_text(json.dumps({"rows": [row, row | {"tree": "gpt"}]}))
    assert "Compiled in rotated orders" not in make_docs.compile_order_section(out, step)
    row["optax"]["order_rounds"] = 5  # the small row compiled in rotated orders
    step.write_text(json.dumps({"rows": [row, row | {"tree": "gpt"}]}))
    text = make_docs.compile_order_section(out, step)
    assert "Compiled in rotated orders it is 1.10x" in text
    assert "## The order of compilation" in text and text.count("| matrix (1 leaves) |") == 2
    with pytest.raises(SystemExit):
        bench_compile_order.main(["--copies", "1", "--out", str(out)])
    with pytest.raises(SystemExit):
        bench_compile_order.main(["--trees", "nope", "--out", str(out)])


def test_bench_mlp_step_smoke_and_docs_section(tmp_path, monkeypatch):
    """Every variant runs, each in the layout its name says (the default keeps the
    512 x 512 matrices apart on a CPU, `one_buffer` packs them), and the page's section
    is written from the JSON."""
    bench_mlp_step = pytest.importorskip("bench_mlp_step")
    layouts = []
    ravel = bench_mlp_step.flat.ravel

    def spy(*args, **kw):
        out = ravel(*args, **kw)
        layouts.append(out.layout)
        return out

    monkeypatch.setattr(bench_mlp_step.flat, "ravel", spy)
    out = tmp_path / "mlp_step.json"
    argv = ["--layers", "2", "--width", "512", "--batch", "4", "--repeats", "2"]
    data = bench_mlp_step.main(argv + ["--out", str(out)])
    assert json.loads(out.read_text()) == data
    assert [r["chain"] for r in data["rows"]] == list(bench_mlp_step.CHAINS)
    for row in data["rows"]:
        assert set(row) == {"chain", *bench_mlp_step.VARIANTS}
        assert all(
            row[k]["step_s"] > 0 and row[k]["compile_s"] > 0 for k in bench_mlp_step.VARIANTS
        )
    assert data["params"] == 2 * (512 * 512 + 512)
    default, one_buffer = layouts[:2]  # the first chain's flat variants
    if jax.default_backend() == "cpu":
        assert sorted(default.sizes) == [2 * 512, 512 * 512, 512 * 512]
    assert list(one_buffer.sizes) == [data["params"]]
    text = make_docs.mlp_step_section(out, tmp_path / "absent.json")
    assert "| adam |" in text and "with every leaf in one buffer" in text.lower()
    assert "multi-output fusion on" not in text


def test_make_docs_multi_output_fusion_sections_from_the_kept_results():
    kept = BENCH / "results"
    names = ("step_cpu_mof.json", "mlp_step.json", "mlp_step_cpu_mof.json")
    if not all((kept / n).exists() for n in names):
        pytest.skip("the multi-output fusion results are not in benchmarks/results")
    text = make_docs.mof_text(kept / "step_cpu_mof.json")
    assert "gpt, adam: ours flat" in text and "torch fused" in text
    mlp = make_docs.mlp_step_section(kept / "mlp_step.json", kept / "mlp_step_cpu_mof.json")
    assert mlp.count("| adam |") == 2 and "multi-output fusion on" in mlp


def test_bench_step_multi_output_fusion_refuses_a_started_backend(monkeypatch):
    """The option must be set before JAX starts its CPU backend: in a process where it
    was not, the benchmark says so instead of measuring the default programs."""
    if bench_step.jo.tree.multi_output_fusion("cpu"):
        pytest.skip("this process fuses siblings")
    monkeypatch.setenv("XLA_FLAGS", "")
    with pytest.raises(SystemExit, match="multi-output fusion is not on"):
        bench_step.use_multi_output_fusion()


def test_make_docs_says_how_each_row_was_compiled():
    rotated = {"tree": "small", "chain": "adam", "optax": {"order_rounds": 5}}
    once = {"tree": "gpt", "chain": "adafactor", "optax": {"step_s": 1.0}}
    line = make_docs.order_line([rotated])
    assert line.startswith("All rows: the JAX competitors compiled in 5 rounds")
    assert "compiled once" not in line
    line = make_docs.order_line([rotated, once])
    assert line.startswith("gpt adafactor: each competitor compiled once")
    assert "The other rows: the JAX competitors compiled in 5 rounds" in line
    line = make_docs.order_line([once])
    assert line.startswith("All rows: each competitor compiled once") and "rounds" not in line
    assert "in 3 rounds" in make_docs.rounds_sentence(3, "X")
    assert "once each" in make_docs.rounds_sentence(1, "X")


def test_measure_times_a_step_right_after_its_own_settling_steps():
    """With settling steps, every timed step of a runner follows a step of its own; without,
    some follow the other runner's (as a step would follow a 2000-leaf step's frees)."""
    last, seen = [None], []  # seen: (runner, the runner that ran just before) per call

    def runner(name):
        def run():
            seen.append((name, last[0]))
            last[0] = name

        return {"run": run, "compile_s": 0.0}

    runners = {k: runner(k) for k in "ab"}
    plain = bench_step.measure(runners, 8, settle_steps=0, flush_bytes=0)
    assert len(seen) == 16 and any(prev not in (k, None) for k, prev in seen)
    seen.clear()
    flushed = []
    flush = bench_step.flush_caches
    bench_step.flush_caches = lambda n: (flushed.append((n, len(seen))), flush(n))
    try:
        settled = bench_step.measure(runners, 8, settle_steps=1, flush_bytes=1 << 16)
        assert plain["a"]["flush_bytes"] == 0
        bench_step.measure(runners, 2, settle_steps=0, flush_bytes=1 << 16)  # no flush
    finally:
        bench_step.flush_caches = flush
    seen[:] = seen[:32]
    # one flush before each timed step, between it and its settling step
    assert flushed == [(1 << 16, i) for i in range(1, 32, 2)]
    assert settled["a"]["flush_bytes"] == 1 << 16
    assert len(seen) == 32  # one untimed step before each timed one
    timed = seen[1::2]  # each runner's second call of its turn is the timed one
    assert all(k == prev for k, prev in timed)
    assert [k for k, _ in seen[0::2]] == [k for k, _ in timed]
    assert plain["a"]["settle_steps"] == 0 and settled["b"]["settle_steps"] == 1
    defaults = bench_step.measure(runners, 2)["a"]
    assert (defaults["settle_steps"], defaults["flush_bytes"]) == (1, 64 << 20)
    bench_step._flush_buffer.clear()  # do not keep 64 MiB for the rest of the session
    with pytest.raises(ValueError, match="settle_steps must be >= 0"):
        bench_step.measure(runners, 2, settle_steps=-1)
    with pytest.raises(ValueError, match="flush_bytes must be >= 0"):
        bench_step.measure(runners, 2, flush_bytes=-1)
    res = bench_step.measure_rotated(
        {k: (lambda r=r: r) for k, r in runners.items()}, 4, settle_steps=0
    )
    assert {r["settle_steps"] for r in res.values()} == {0}


def test_bench_settle_smoke_and_docs_section(tmp_path):
    import bench_settle  # not importorskip: a broken import must fail

    out = tmp_path / "settle.json"
    argv = ["--leaves", "6", "--repeats", "2", "--order-rounds", "1", "--flatten-sizes", "2,20"]
    argv += ["--chains", "adam"]
    data = bench_settle.main(argv + ["--out", str(out)])
    assert data["command"] == "bench_settle.py " + " ".join(argv)  # without --out
    assert json.loads(out.read_text()) == data
    (row,) = data["rows"]
    assert (row["tree"], row["leaves"], row["chain"]) == ("small", 6, "adam")
    expected = {"settle_0": (0, 0), "settle_1": (1, 0), "settle_1_flush": (1, 64 << 20)}
    for name, (settle, flush) in expected.items():
        res = row[name]
        assert set(res) == set(make_docs.SETTLE_NAMES)
        assert all(r["settle_steps"] == settle and r["step_s"] > 0 for r in res.values())
        assert all(r["flush_bytes"] == flush for r in res.values())
    assert set(data["first_flatten"]) == set(data["first_flatten_fresh"]) == {"2", "20"}
    if bench_settle.glibc_version():  # the control: a child with glibc's fast bins off
        assert set(data["first_flatten_fresh_without_fastbins"]) == {"2", "20"}
    else:
        assert data["first_flatten_fresh_without_fastbins"] is None
    text = make_docs.settle_section(out)
    assert "## A step right after another competitor's" in text
    assert text.count("| small (6 leaves) | adam |") == 3 and "| 20 |" in text
    assert "| an untimed step of its own, then 64 MiB written |" in text
    r0 = row["settle_0"]
    ratio = r0["ours_flat"]["step_s"] / r0["roofline"]["step_s"]
    assert f"({ratio:.2f}x)" in text  # the ratio is computed from the data
    with pytest.raises(SystemExit):
        bench_settle.main(["--tree", "gpt", "--leaves", "6", "--out", str(out)])


def test_make_docs_says_what_each_timed_step_came_after():
    settled = {
        "tree": "small",
        "chain": "adam",
        "optax": {"order_rounds": 5, "settle_steps": 1, "flush_bytes": 1 << 20},
    }
    before = {"tree": "gpt", "chain": "adafactor", "optax": {"order_rounds": 5}}
    line = make_docs.order_line([settled])
    assert "after an untimed step of the same program, with 1 MiB written" in line
    assert "another competitor" not in line
    line = make_docs.order_line([settled, before])
    assert "small adam: each JAX competitor's timed step came after an untimed step" in line
    assert "gpt adafactor: each JAX competitor's timed step usually came right after" in line
    assert "another competitor's" in make_docs.rounds_sentence(3, "X")
    assert "2 untimed steps" in make_docs.rounds_sentence(3, "X", 2)
    assert "with 64 MiB written in between" in make_docs.rounds_sentence(3, "X", 1, 64 << 20)
    assert "no cache flush" in make_docs.rounds_sentence(3, "X", 1, 0)
    assert "--settle-steps 0" in make_docs.rounds_sentence(1, "X", 0)
