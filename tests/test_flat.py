"""Flat layout: same numbers as pytree mode, per-leaf transforms see the real leaves."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from registry import CASES

import jaxopt_edu as jo
from jaxopt_edu import flat

PARAMS = {
    "w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4),
    "b": jnp.array([0.1, -0.2, 0.3, 0.0]),
    "h": jnp.ones((2, 2), jnp.bfloat16),
}


def loss(p):
    h = p["h"].astype(jnp.float32)
    return jnp.sum(jnp.sin(p["w"]) ** 2) + jnp.sum(p["b"] ** 4) + jnp.sum(h * h)


def run(tx, params, steps, use_flat, **layout):
    if use_flat:
        fp = flat.ravel(params, **layout)
        state = tx.init(fp)
        for _ in range(steps):
            g = jax.grad(lambda q: loss(q.unravel()))(fp)
            assert isinstance(g, flat.FlatTree)  # gradients arrive flat
            u, state = tx.update(g, state, fp)
            fp = jo.apply_updates(fp, u)
        return fp.unravel()
    state = tx.init(params)
    for _ in range(steps):
        u, state = tx.update(jax.grad(loss)(params), state, params)
        params = jo.apply_updates(params, u)
    return params


def test_ravel_unravel_roundtrip_and_buffers_per_dtype():
    fp = flat.ravel(PARAMS)
    assert [b.dtype for b in fp.buffers] == [jnp.float32, jnp.bfloat16]  # b, h, w: key order
    assert [b.size for b in fp.buffers] == [16, 4]
    chex.assert_trees_all_equal(fp.unravel(), PARAMS)


@pytest.mark.parametrize(
    "layout",
    [{}, {"max_leaf_size": 0}, {"max_buffer_leaves": 2}],
    ids=["one-buffer-per-dtype", "every-leaf-apart", "two-leaves-per-buffer"],
)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_optimizer_gives_the_pytree_numbers(case, layout):
    a = run(case.ours(), PARAMS, 5, use_flat=False)
    b = run(case.ours(), PARAMS, 5, use_flat=True, **layout)
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)


def test_trust_ratio_uses_leaf_boundaries_in_both_layouts_and_matches_optax():
    tx_ours = jo.chain(jo.scale_by_adam(), jo.scale_by_trust_ratio(), jo.scale(-0.1))
    tx_optax = optax.chain(optax.scale_by_adam(), optax.scale_by_trust_ratio(), optax.scale(-0.1))
    params = {k: v.astype(jnp.float32) for k, v in PARAMS.items()}
    ours_tree = run(tx_ours, params, 5, use_flat=False)
    ours_flat = run(tx_ours, params, 5, use_flat=True)
    with jax.numpy_dtype_promotion("standard"):
        state = tx_optax.init(params)
        p = params
        for _ in range(5):
            u, state = tx_optax.update(jax.grad(loss)(p), state, p)
            p = optax.apply_updates(p, u)
    chex.assert_trees_all_close(ours_tree, p, rtol=1e-5)
    chex.assert_trees_all_close(ours_flat, p, rtol=1e-5)


def test_leaf_views_are_the_original_leaves():
    fp = flat.ravel(PARAMS)
    views = jo.tree.leaf_views(fp)
    for v, x in zip(views, jax.tree.leaves(PARAMS), strict=True):
        chex.assert_trees_all_equal(v, x)
    norms = jo.tree.leaf_norms(fp)
    expected = [np.linalg.norm(np.asarray(x, np.float32)) for x in jax.tree.leaves(PARAMS)]
    np.testing.assert_allclose([float(n) for n in norms], expected, rtol=1e-6)


def test_flat_step_jits_with_donation_and_compiles_once():
    tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adamw(1e-2))
    fp = flat.ravel(PARAMS)
    traces = []

    @jax.jit
    def step(fp, state):
        traces.append(1)
        g = jax.grad(lambda q: loss(q.unravel()))(fp)
        u, state = tx.update(g, state, fp)
        return jo.apply_updates(fp, u), state

    state = tx.init(fp)
    step = jax.jit(
        step.__wrapped__ if hasattr(step, "__wrapped__") else step, donate_argnums=(0, 1)
    )
    for _ in range(3):
        fp, state = step(fp, state)
    assert len(traces) == 1
    assert float(loss(fp.unravel())) < float(loss(PARAMS))


_MASK_PARAMS = {
    "w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4),
    "v": jnp.linspace(0.2, 1.0, 6).reshape(2, 3),
    "b": jnp.full((4,), 2.0),
    "h": {"x": jnp.ones(2), "y": jnp.linspace(0.5, 1.0, 5)},
}


@pytest.mark.parametrize(
    "mask",
    [
        {"w": True, "v": False, "b": False, "h": {"x": True, "y": False}},
        {"w": True, "v": False, "b": False, "h": False},  # a prefix mask
        lambda t: jax.tree.map(lambda x: x.shape == (3, 4), t),  # a function of the params
        {"w": jnp.array(True), "v": jnp.array(False), "b": jnp.array(False), "h": True},
    ],
    ids=["full", "prefix", "callable", "arrays"],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda m: jo.adamw(0.1, weight_decay=0.5, mask=m),
        lambda m: jo.lion(0.1, weight_decay=0.5, mask=m),
        lambda m: jo.adafactor(
            0.1, weight_decay_rate=0.5, weight_decay_mask=m, min_dim_size_to_factor=2
        ),
        lambda m: jo.muon(0.1, weight_decay=0.5, weight_decay_mask=m),
    ],
    ids=["adamw", "lion", "adafactor", "muon"],
)
def test_weight_decay_mask_describes_the_user_tree_in_flat_mode(make, mask):
    """A mask over the ORIGINAL pytree works on FlatTree params and gives pytree mode's numbers."""
    p = _MASK_PARAMS
    g = jax.tree.map(lambda x: 0.1 * x + 0.01, p)
    ours = {}
    runs = (
        ("tree", p, g),
        ("flat", flat.ravel(p), flat.ravel(g)),
        # w and v in buffers of their own, in their own shapes
        ("flat_apart", flat.ravel(p, max_leaf_size=5), flat.ravel(g, max_leaf_size=5)),
    )
    for name, params, grads in runs:
        tx = make(mask)
        state = tx.init(params)
        for _ in range(2):
            u, state = jax.jit(tx.update)(grads, state, params)
            params = jo.apply_updates(params, u)
        ours[name] = params if name == "tree" else params.unravel()
    # float32; muon's Newton-Schulz matmuls may round differently on slices of a buffer
    chex.assert_trees_all_close(ours["flat"], ours["tree"], rtol=5e-5, atol=1e-6)
    chex.assert_trees_all_close(ours["flat_apart"], ours["tree"], rtol=5e-5, atol=1e-6)
    # the mask is not ignored: "v" (masked out everywhere) ends elsewhere than unmasked
    unmasked = make(None)
    params, state = p, unmasked.init(p)
    for _ in range(2):
        u, state = unmasked.update(g, state, params)
        params = jo.apply_updates(params, u)
    assert not np.allclose(np.asarray(params["v"]), np.asarray(ours["flat"]["v"]), rtol=1e-4)


LAYOUTS = {  # flatten's layout arguments, and the buffers they give for the 3 leaves below
    "all-packed": ({}, 1),
    "big-leaves-apart": ({"max_leaf_size": 5}, 2),
    "two-leaves-per-buffer": ({"max_buffer_leaves": 2}, 2),
    "every-leaf-apart": ({"max_leaf_size": 0}, 3),
    "grouped-by-shape": ({"group_by_shape": True}, 3),  # three shapes: three buffers
}


@pytest.mark.parametrize("layout, buffers", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_flatten_wrapper_gives_pytree_numbers(case, layout, buffers):
    """`flatten(tx)`: the user keeps pytrees, the state is flat, the numbers are tx's."""
    params = {
        "w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4),
        "b": jnp.linspace(0.2, 0.6, 4),
        "s": jnp.asarray(0.7),
    }
    grads = jax.tree.map(lambda x: 0.3 * jnp.sin(3.0 * x) + 0.05, params)
    plain, wrapped = case.ours(), jo.flatten(case.ours(), **layout)
    sp, sw = plain.init(params), wrapped.init(params)
    assert isinstance(sw, jo.FlattenState)
    assert sw.layout.num_leaves == 3 and len(sw.layout.sizes) == buffers
    pp = pw = params
    for _ in range(4):
        up, sp = plain.update(grads, sp, pp)
        uw, sw = jax.jit(wrapped.update)(grads, sw, pw)
        chex.assert_trees_all_equal_structs(uw, up)
        pp, pw = jo.apply_updates(pp, up), jo.apply_updates(pw, uw)
    chex.assert_trees_all_close(pw, pp, rtol=2e-5, atol=1e-6)
    assert not np.allclose(np.asarray(pw["w"]), np.asarray(params["w"]))


def test_flatten_matches_optax_flatten_and_keeps_dtypes():
    import optax

    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "h": jnp.ones(5, jnp.bfloat16)}
    grads = jax.tree.map(lambda x: (0.1 * x + 0.02).astype(x.dtype), params)
    ours, theirs = jo.flatten(jo.adam(0.05)), optax.flatten(optax.adam(0.05))
    so = ours.init(params)
    # one buffer per dtype: the bf16 leaf keeps bf16 moments' layout; optax promotes all
    assert len(jax.tree.leaves(so.inner[0].mu)) == 2
    with jax.numpy_dtype_promotion("standard"):
        st = theirs.init(params)
        ut, _ = theirs.update(grads, st, params)
    uo, _ = ours.update(grads, so, params)
    assert uo["h"].dtype == jnp.bfloat16
    # float32: the two libraries round the bias corrections 1 - b^t differently
    np.testing.assert_allclose(np.asarray(uo["w"]), np.asarray(ut["w"]), rtol=3e-5)


def test_flatten_errors_name_the_argument():
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    tx = jo.flatten(jo.adam(0.1))
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"`updates` has tree structure"):
        tx.update({"w": jnp.ones((2, 3))}, state, params)
    with pytest.raises(ValueError, match=r"`params` leaf \['w'\] is float32\[3, 2\], but the "):
        tx.update(params, state, {"w": jnp.ones((3, 2)), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"`updates` leaf \['b'\] is bfloat16\[3\]"):
        tx.update({"w": jnp.ones((2, 3)), "b": jnp.ones(3, jnp.bfloat16)}, state, params)
    with pytest.raises(ValueError, match="already a FlatTree"):
        tx.update(flat.ravel(params), state, params)
    with pytest.raises(ValueError, match="must be a GradientTransformation"):
        jo.flatten(jo.adam)
    with pytest.raises(ValueError, match="`group_by_shape` must be True or False"):
        jo.flatten(jo.adam(0.1), group_by_shape=1)


def test_flatten_passes_the_testing_kit():
    from jaxopt_edu import testing

    testing.check_all(jo.flatten(jo.adam(0.05)))


def test_ravel_keeps_big_leaves_in_their_own_buffers():
    tree = {
        "w": jnp.arange(12.0).reshape(3, 4),
        "b": jnp.ones(4),
        "h": jnp.ones(3, jnp.bfloat16),
        "v": jnp.arange(6.0),
    }
    fp = flat.ravel(tree, max_leaf_size=5)
    # b (4) and h (3) are packed per dtype; v (6) and w (12) are buffers of their own,
    # in their own shapes (no reshape of a donated parameter: XLA updates them in place)
    assert sorted(x.size for x in fp.buffers) == [3, 4, 6, 12]
    assert sorted(x.shape for x in fp.buffers) == [(3,), (3, 4), (4,), (6,)]
    assert [fp.buffers[b].shape for b in range(4)] == list(fp.layout.shapes)
    chex.assert_trees_all_equal(fp.unravel(), tree)
    assert len(flat.ravel(tree).buffers) == 2  # default: small leaves, one buffer per dtype
    assert len(flat.ravel(tree, max_leaf_size=np.int64(5)).buffers) == 4  # numpy ints too
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="`max_leaf_size` must be None or an integer"):
            flat.ravel(tree, max_leaf_size=bad)
    with pytest.raises(ValueError, match="`max_leaf_size`"):
        jo.flatten(jo.adam(0.1), max_leaf_size=-3)


def test_ravel_default_keeps_leaves_over_65536_apart_on_a_cpu():
    """`max_leaf_size="auto"`, as in `flatten`: on a CPU a leaf of more than 65536
    elements keeps a buffer of its own (a matmul reading a slice of a shared buffer
    copies it every step); None packs every leaf; other strings are refused."""
    big = flat.AUTO_CPU_MAX_LEAF + 1
    tree = {"w": jnp.ones((big,)), "m": jnp.ones((256, 256)), "b": jnp.ones(4)}
    fp = flat.ravel(tree)
    if jax.default_backend() == "cpu":
        # 65536 elements exactly is not over the limit: m is packed with b
        assert sorted(x.shape for x in fp.buffers) == [(big,), (65536 + 4,)]
    assert [x.shape for x in flat.ravel(tree, max_leaf_size=None).buffers] == [(big + 65540,)]
    assert fp.layout == flat.ravel(tree, max_leaf_size="auto").layout
    chex.assert_trees_all_equal(fp.unravel(), tree)
    with pytest.raises(ValueError, match="ravel: `max_leaf_size` must be 'auto', None"):
        flat.ravel(tree, max_leaf_size="big")
    # a state made with another layout is refused with the way out named
    tx = jo.adam(0.1)
    state = tx.init(flat.ravel(tree, max_leaf_size=None))
    if len(fp.buffers) != 1:
        with pytest.raises(ValueError, match="max_leaf_size=None"):
            tx.update(fp, state, fp)


def test_ravel_caps_the_leaves_of_a_shared_buffer():
    tree = {f"x{i}": jnp.full((i + 1,), float(i)) for i in range(7)}
    tree["h"] = jnp.ones(2, jnp.bfloat16)
    tree["w"] = jnp.arange(20.0)
    fp = flat.ravel(tree, max_buffer_leaves=3)
    # treedef order h (bf16), w, x0..x6: the float32 leaves fill buffers of 3, 3 and 2
    per_buffer = [sum(s[0] == b for s in fp.layout.slots) for b in range(len(fp.buffers))]
    assert per_buffer == [1, 3, 3, 2]
    assert [x.size for x in fp.buffers] == [2, 20 + 1 + 2, 3 + 4 + 5, 6 + 7]
    chex.assert_trees_all_equal(fp.unravel(), tree)
    both = flat.ravel(tree, max_leaf_size=10, max_buffer_leaves=3)
    # w (20) keeps a buffer of its own and does not count; x0..x6 fill 3 + 3 + 1
    assert [x.size for x in both.buffers] == [2, 20, 1 + 2 + 3, 4 + 5 + 6, 7]
    chex.assert_trees_all_equal(both.unravel(), tree)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="`max_buffer_leaves` must be None or an integer >= 1"):
            flat.ravel(tree, max_buffer_leaves=bad)
    with pytest.raises(ValueError, match="`max_buffer_leaves`"):
        jo.flatten(jo.adam(0.1), max_buffer_leaves=0)


def test_flatten_defaults_follow_the_measurements():
    """ "auto" keeps leaves above 65536 elements apart for params on a CPU; 64 leaves
    per buffer."""
    cpu = jax.devices("cpu")[0]
    tree = {"big": jnp.zeros(70_000), **{f"s{i:03d}": jnp.zeros(3) for i in range(130)}}
    tree = jax.device_put(tree, cpu)
    layout = jo.flatten(jo.adam(0.1)).init(tree).layout
    per_buffer = sorted(sum(s[0] == b for s in layout.slots) for b in range(len(layout.sizes)))
    assert per_buffer == [1, 2, 64, 64]  # big alone; 130 small leaves in 64 + 64 + 2
    packed = jo.flatten(jo.adam(0.1), max_leaf_size=None, max_buffer_leaves=None).init(tree)
    assert len(packed.layout.sizes) == 1
    # abstract params with a CPU sharding resolve like the arrays they describe
    spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
    assert jax.eval_shape(jo.flatten(jo.adam(0.1)).init, spec).layout is layout
    # tracers (no device known): the default backend decides
    traced = jax.eval_shape(jo.flatten(jo.adam(0.1)).init, tree).layout
    assert (traced is layout) == (jax.default_backend() == "cpu")
    with pytest.raises(ValueError, match="`max_leaf_size` must be 'auto', None or an integer"):
        jo.flatten(jo.adam(0.1), max_leaf_size="big")


def test_layouts_are_interned_immutable_and_pickle():
    """Equal layouts are one object, so `jit` compares FlatTrees by identity each call."""
    import copy
    import pickle

    tree = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    a = flat.ravel(tree)
    b = flat.ravel(jax.tree.map(lambda x: 2 * x, tree))
    assert a.layout is b.layout
    assert flat.ravel(tree, max_leaf_size=5).layout != a.layout
    for back in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), copy.copy(a)):
        assert back.layout is a.layout
        chex.assert_trees_all_equal(back.unravel(), tree)
    assert "2 leaves" in repr(a.layout)
    with pytest.raises(AttributeError, match="immutable"):
        a.layout.sizes = (1,)
    # treedefs that jax calls equal but that differ in key types keep their own layout
    as_int, as_float = flat.ravel({1: jnp.ones(2)}), flat.ravel({1.0: jnp.ones(2)})
    assert list(as_int.unravel()) == [1] and isinstance(list(as_float.unravel())[0], float)


def test_flatten_updates_a_large_leaf_in_place():
    """Weight decay reads the params: a large leaf read through a reshaped view made
    XLA copy the whole leaf every step; kept in its own shape, it is updated in place."""
    params = {"w": jnp.ones((300, 300)), "b": jnp.ones(5)}
    tx = jo.flatten(jo.adamw(0.1, weight_decay=0.1), max_leaf_size=100)
    state = tx.init(params)

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return jo.apply_updates(p, u), s

    compiled = jax.jit(step, donate_argnums=(0, 2)).lower(params, params, state).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    assert analysis.temp_size_in_bytes < params["w"].nbytes // 4
    # the same holds for a leaf alone in a shared buffer (one leaf per buffer)
    alone = jo.flatten(jo.adamw(0.1, weight_decay=0.1), max_leaf_size=None, max_buffer_leaves=1)
    state = alone.init(params)

    def step_alone(p, g, s):
        u, s = alone.update(g, s, p)
        return jo.apply_updates(p, u), s

    lowered = jax.jit(step_alone, donate_argnums=(0, 2)).lower(params, params, state)
    assert lowered.compile().memory_analysis().temp_size_in_bytes < params["w"].nbytes // 4


@pytest.mark.parametrize("tree", [{"w": jnp.ones((3, 4))}, {"v": jnp.ones(5), "h": jnp.ones(2)}])
def test_donating_raveled_params_leaves_the_users_arrays_alone(tree):
    """A buffer of one leaf keeps the leaf's shape, but it is never the user's array."""
    fp = flat.ravel(tree, max_leaf_size=0)
    assert all(b.shape == x.shape for b, x in zip(fp.buffers, jax.tree.leaves(tree), strict=True))
    jax.jit(lambda q: jax.tree.map(lambda x: 2 * x, q), donate_argnums=0)(fp)
    chex.assert_trees_all_equal(tree, jax.tree.map(jnp.ones_like, tree))  # still alive


def test_flat_mask_puts_no_parameter_sized_constant_in_the_program():
    """A static mask over a FlatTree is built in the program, not embedded as a constant."""
    params = {"w": jnp.zeros((512, 512)), "b": jnp.zeros(512), "v": jnp.zeros((256, 512))}
    fp = flat.ravel(params)
    tx = jo.adamw(0.1, weight_decay=0.1, mask=lambda t: jax.tree.map(lambda x: x.ndim == 2, t))
    state = tx.init(fp)
    text = jax.jit(tx.update).lower(fp, state, fp).as_text()
    assert len(text) < 100_000, len(text)  # a dense bool constant alone would be ~400k params
    u, _ = tx.update(fp, state, fp)
    assert u.unravel()["w"].shape == (512, 512)


# leaves of repeated shapes, as in a model's layers: grouping by shape stacks them
GROUPED_PARAMS = {
    "l0": {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.linspace(0.1, 0.4, 4)},
    "l1": {"w": jnp.linspace(0.5, -0.5, 12).reshape(3, 4), "b": jnp.linspace(-0.3, 0.2, 4)},
    "l2": {"w": jnp.linspace(-2.0, 1.0, 12).reshape(3, 4), "b": jnp.linspace(0.2, 0.9, 4)},
    "out": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3),
    "s": jnp.asarray(0.7),
    "h": jnp.ones((2, 2), jnp.bfloat16),
}


def grouped_loss(p):
    h = p["h"].astype(jnp.float32)
    layers = sum(
        jnp.sum(jnp.sin(p[k]["w"]) ** 2) + jnp.sum(p[k]["b"] ** 4) for k in "l0 l1 l2".split()
    )
    return layers + jnp.sum(jnp.cos(p["out"])) + p["s"] ** 2 + jnp.sum(h * h)


def test_group_by_shape_stacks_same_shape_leaves_and_round_trips():
    fp = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    # one buffer per (dtype, shape): 3 x b, the bf16 leaf alone, out alone, s alone, 3 x w
    shapes = sorted((str(b.dtype), b.shape) for b in fp.buffers)
    assert shapes == sorted(
        [
            ("float32", (3, 4)),
            ("bfloat16", (2, 2)),
            ("float32", (2, 3)),
            ("float32", ()),
            ("float32", (3, 3, 4)),
        ]
    )
    chex.assert_trees_all_equal(fp.unravel(), GROUPED_PARAMS)
    # the ws are stacked in leaf order: leaf j of the group is buffer[j]
    (ws,) = [b for b in fp.buffers if b.shape == (3, 3, 4)]
    chex.assert_trees_all_equal(ws, jnp.stack([GROUPED_PARAMS[k]["w"] for k in ("l0", "l1", "l2")]))
    g = jax.grad(lambda q: grouped_loss(q.unravel()))(fp)  # gradients arrive grouped
    assert [b.shape for b in g.buffers] == [b.shape for b in fp.buffers]
    chex.assert_trees_all_close(g.unravel(), jax.grad(grouped_loss)(GROUPED_PARAMS))
    # with the big leaves apart, only the small ones are grouped
    fa = flat.ravel(GROUPED_PARAMS, max_leaf_size=4, group_by_shape=True)
    assert sorted(b.shape for b in fa.buffers if b.dtype == jnp.float32) == sorted(
        [(3, 4), (3, 4), (3, 4), (2, 3), (3, 4), ()]
    )
    chex.assert_trees_all_equal(fa.unravel(), GROUPED_PARAMS)
    with pytest.raises(ValueError, match="group_by_shape"):
        flat.ravel(GROUPED_PARAMS, group_by_shape="yes")


def test_leaf_groups_give_one_unit_per_group_and_invert():
    fp = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    units, stacked = jo.tree.leaf_groups(fp)
    specs = jo.tree.leaf_group_shapes(jax.eval_shape(lambda t: t, fp))
    assert len(units) == len(stacked) == len(specs) == 5  # w-group, b-group, h, out, s
    for u, st, (k, shape, dtype) in zip(units, stacked, specs, strict=True):
        assert st == (k is not None)
        assert u.shape == ((k,) if st else ()) + shape and u.dtype == dtype
    doubled = jo.tree.map_leaf_groups(lambda x: 2 * x, stacked, units)
    chex.assert_trees_all_equal(
        jo.tree.from_leaf_groups(fp, doubled).unravel(),
        jax.tree.map(lambda x: 2 * x, GROUPED_PARAMS),
    )
    # a per-leaf reduction sees one leaf at a time, also inside a group
    sums = jo.tree.map_leaf_groups(jnp.sum, stacked, units)
    want = sorted(float(jnp.sum(x.astype(jnp.float32))) for x in jax.tree.leaves(GROUPED_PARAMS))
    got = sorted(float(v) for s in sums for v in jnp.atleast_1d(s.astype(jnp.float32)))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # an ordinary pytree: every leaf is a unit of its own, nothing stacked
    units_t, stacked_t = jo.tree.leaf_groups(GROUPED_PARAMS)
    assert len(units_t) == 9 and not any(stacked_t)
    chex.assert_trees_all_equal(jo.tree.from_leaf_groups(GROUPED_PARAMS, units_t), GROUPED_PARAMS)
    with pytest.raises(ValueError, match="entries for 5 units"):
        jo.tree.map_leaf_groups(jnp.sum, stacked, units[:4])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_optimizer_gives_the_pytree_numbers_with_leaves_grouped_by_shape(case):
    def run_grouped(tx, params, use_flat):
        if use_flat:
            params = flat.ravel(params, group_by_shape=True)
        state = tx.init(params)
        for _ in range(4):
            g = jax.grad(lambda q: grouped_loss(q.unravel() if use_flat else q))(params)
            u, state = tx.update(g, state, params)
            params = jo.apply_updates(params, u)
        return params.unravel() if use_flat else params

    a = run_grouped(case.ours(), GROUPED_PARAMS, False)
    b = run_grouped(case.ours(), GROUPED_PARAMS, True)
    # muon's Newton-Schulz matmuls may round differently on a leaf of a stacked buffer
    chex.assert_trees_all_close(a, b, rtol=5e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: jo.adafactor(0.1, min_dim_size_to_factor=2, momentum=0.9, weight_decay_rate=0.1),
        lambda: jo.chain(jo.scale_by_adam(), jo.scale_by_trust_ratio(), jo.scale(-0.01)),
        lambda: jo.chain(jo.clip_by_block_rms(0.5), jo.scale_by_param_block_rms(), jo.scale(-0.1)),
        lambda: jo.muon(0.05, weight_decay=0.1),
    ],
    ids=["adafactor", "trust_ratio", "block_rms", "muon"],
)
def test_per_leaf_transforms_run_once_per_group_with_stacked_state(make):
    """Grouped leaves are one vmapped unit: stacked state, no per-leaf slice, pytree's numbers."""
    tx = make()
    fp = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    state = tx.init(fp)
    g = jax.grad(lambda q: grouped_loss(q.unravel()))(fp)
    u, new_state = jax.jit(tx.update)(g, state, fp)
    chex.assert_trees_all_equal_shapes(new_state, state)
    want, _ = jax.jit(tx.update)(
        jax.grad(grouped_loss)(GROUPED_PARAMS), tx.init(GROUPED_PARAMS), GROUPED_PARAMS
    )
    chex.assert_trees_all_close(u.unravel(), want, rtol=1e-6, atol=1e-7)

    # every buffer here is a group or a single leaf: the compiled step slices nothing
    # out of a buffer, where the default layout (one buffer per dtype) slices every leaf
    def hlo(fp):
        return jax.jit(tx.update).lower(fp, tx.init(fp), fp).compile().as_text()

    assert " slice(" not in hlo(fp)
    assert " slice(" in hlo(flat.ravel(GROUPED_PARAMS))


def test_leaf_group_indices_name_the_leaves_of_each_unit():
    fp = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    leaves = jax.tree.leaves(GROUPED_PARAMS)
    units, stacked = jo.tree.leaf_groups(fp)
    members = jo.tree.leaf_group_indices(fp)
    assert sorted(i for m in members for i in m) == list(range(len(leaves)))
    for u, st, idx in zip(units, stacked, members, strict=True):
        want = jnp.stack([leaves[i] for i in idx]) if st else leaves[idx[0]]
        chex.assert_trees_all_equal(u, want)
    # a pytree around a FlatTree: indices go on counting after the flat leaves
    mixed = {"a": fp, "z": jnp.ones(2)}
    assert jo.tree.leaf_group_indices(mixed)[-1] == [len(leaves)]


def test_muon_state_of_a_group_is_stacked():
    fp = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    state = jo.scale_by_muon().init(fp)
    # non-matrix units: the three bs (stacked: (3, 4)) and s; ws, out and h are matrices
    assert sorted(v.shape for v in state.nu) == [(), (3, 4)]


def test_factored_state_of_a_group_is_stacked():
    tx = jo.scale_by_factored_rms(min_dim_size_to_factor=2)
    fp = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    state = tx.init(jax.eval_shape(lambda t: t, fp))  # abstract params work
    # the three (3, 4) leaves: one unit, a row moment of 3 and a column moment of 4 each
    assert (3, 3) in {x.shape for x in state.v_row if x is not None}
    assert (3, 4) in {x.shape for x in state.v_col if x is not None}
    assert len(state.v) == 5  # units: the w group, the b group, out, s, h
    with pytest.raises(ValueError, match="leaves"):
        tx.update(flat.ravel(GROUPED_PARAMS), tx.init(fp), None)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: jo.adamw(0.1, weight_decay=0.5, mask=m),
        lambda m: jo.adafactor(0.1, weight_decay_rate=0.5, weight_decay_mask=m),
        lambda m: jo.muon(0.1, weight_decay=0.5, weight_decay_mask=m),
    ],
    ids=["adamw", "adafactor", "muon"],
)
def test_a_mask_that_differs_inside_a_group_of_leaves(make, request):
    """The leaves of one stacked buffer may decay or not, each as its mask says."""
    mask = {
        "l0": {"w": True, "b": False},
        "l1": {"w": False, "b": False},
        "l2": {"w": True, "b": True},
        "out": True,
        "s": False,
        "h": True,
    }
    g = jax.grad(grouped_loss)(GROUPED_PARAMS)
    want, _ = make(mask).update(g, make(mask).init(GROUPED_PARAMS), GROUPED_PARAMS)
    fp = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    tx = make(mask)
    got, _ = jax.jit(tx.update)(flat.ravel(g, group_by_shape=True), tx.init(fp), fp)
    # muon's Newton-Schulz matmuls may round differently on a stacked group
    rtol = 5e-5 if "muon" in request.node.name else 1e-6
    chex.assert_trees_all_close(got.unravel(), want, rtol=rtol, atol=1e-7)
    # the mask matters: l1's w (not decayed) moves differently without it
    free, _ = make(None).update(g, make(None).init(GROUPED_PARAMS), GROUPED_PARAMS)
    assert not np.allclose(np.asarray(free["l1"]["w"]), np.asarray(got.unravel()["l1"]["w"]))


def test_scalars_are_never_a_group_and_keep_one_state_entry_each():
    """k scalars stacked would be (k,), the default layout's 1-D buffer: they stay single."""
    scalars = {"a": jnp.asarray(1.0), "b": jnp.asarray(-2.0), "c": jnp.asarray(0.5)}
    for grouped in (False, True):
        fp = flat.ravel(scalars, group_by_shape=grouped)
        assert [b.shape for b in fp.buffers] == [(3,)]
        _, stacked = jo.tree.leaf_groups(fp)
        assert stacked == [False, False, False]
        state = jo.scale_by_factored_rms().init(fp)
        assert [v.shape for v in state.v] == [(), (), ()]
        u, _ = jo.adafactor(0.1).update(fp, jo.adafactor(0.1).init(fp), fp)
        want, _ = jo.adafactor(0.1).update(scalars, jo.adafactor(0.1).init(scalars), scalars)
        chex.assert_trees_all_close(u.unravel(), want, rtol=1e-6)


@pytest.mark.parametrize(
    "layout",
    [
        {"group_by_shape": True, "max_buffer_leaves": 2},  # 3 ws: a group of 2 and one alone
        {"group_by_shape": True, "max_leaf_size": 4},  # the ws apart, the bs grouped
    ],
    ids=["group-split-by-the-cap", "big-leaves-apart"],
)
def test_groups_under_the_other_layout_arguments_give_pytree_numbers(layout):
    fp = flat.ravel(GROUPED_PARAMS, **layout)
    assert any(stacked for stacked in jo.tree.leaf_groups(fp)[1])
    for make in (
        lambda: jo.adafactor(0.1, min_dim_size_to_factor=2, momentum=0.9),
        lambda: jo.chain(jo.scale_by_adam(), jo.scale_by_trust_ratio(), jo.scale(-0.01)),
    ):
        tx = make()
        params, state = fp, tx.init(fp)
        ref, ref_state = GROUPED_PARAMS, tx.init(GROUPED_PARAMS)
        for _ in range(3):
            u, state = jax.jit(tx.update)(
                jax.grad(lambda q: grouped_loss(q.unravel()))(params), state, params
            )
            params = jo.apply_updates(params, u)
            ur, ref_state = tx.update(jax.grad(grouped_loss)(ref), ref_state, ref)
            ref = jo.apply_updates(ref, ur)
        chex.assert_trees_all_close(params.unravel(), ref, rtol=1e-5, atol=1e-6)


def test_a_group_of_empty_leaves():
    tree = {"e0": jnp.zeros((0, 3)), "e1": jnp.zeros((0, 3)), "w": jnp.ones((2, 3))}
    fp = flat.ravel(tree, group_by_shape=True)
    assert sorted(b.shape for b in fp.buffers) == [(2, 0, 3), (2, 3)]
    for tx in (jo.adafactor(0.1, min_dim_size_to_factor=1), jo.scale_by_trust_ratio()):
        u, _ = tx.update(fp, tx.init(fp), fp)
        want, _ = tx.update(tree, tx.init(tree), tree)
        chex.assert_trees_all_close(u.unravel(), want)


def test_a_state_built_for_another_group_is_refused_by_name():
    three = flat.ravel(GROUPED_PARAMS, group_by_shape=True)
    two = {k: v for k, v in GROUPED_PARAMS.items() if k != "l2"}
    two = flat.ravel(two, group_by_shape=True)
    tx = jo.scale_by_factored_rms(min_dim_size_to_factor=2)
    with pytest.raises(ValueError, match="scale_by_factored_rms: update unit 1 stacks 2 leaves"):
        tx.update(two, tx.init(three))
    muon = jo.scale_by_muon()
    state = muon.init(three)
    with pytest.raises(ValueError, match="scale_by_muon: the state has 1 second moments"):
        muon.update(three, state._replace(nu=state.nu[:1]))
    units, _ = jo.tree.leaf_groups(three)
    with pytest.raises(ValueError, match="from_leaf_groups: got 4 units"):
        jo.tree.from_leaf_groups(three, units[:4])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_flatten_with_leaves_grouped_by_shape_gives_the_pytree_numbers(case):
    plain = case.ours()
    wrapped = jo.flatten(case.ours(), max_leaf_size=None, group_by_shape=True)
    sp, sw = plain.init(GROUPED_PARAMS), wrapped.init(GROUPED_PARAMS)
    assert (3, 3, 4) in sw.layout.shapes  # the state's buffers stack the three ws
    pp = pw = GROUPED_PARAMS
    for _ in range(3):
        up, sp = plain.update(jax.grad(grouped_loss)(pp), sp, pp)
        uw, sw = wrapped.update(jax.grad(grouped_loss)(pw), sw, pw)
        pp, pw = jo.apply_updates(pp, up), jo.apply_updates(pw, uw)
    # muon's Newton-Schulz matmuls may round differently on a leaf of a stacked buffer
    chex.assert_trees_all_close(pw, pp, rtol=5e-5, atol=1e-6)
