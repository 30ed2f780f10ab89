#!/usr/bin/env bash
# The GPU check, as one command (issue 3, item 5). Run from the repo root on a machine
# with JAX+CUDA and optax installed:  OUT=/some/dir bash benchmarks/run_gpu.sh
# Each part has its own time limit and writes its results one row at a time, so a run
# cut off keeps what it measured:
#   1. the optimizer step on the 2000-leaf tree (the slow one to compile), then on the
#      GPT tree and the matrix, into $OUT/step_gpu.json (+ .md), the format of step.json;
#   2. the cost of a scalar array per call (bench_scalars.py) into $OUT/scalars_gpu.json;
#   3. a whole training step (bench_train_step.py) into $OUT/train_step_gpu.json;
#   4. the numerics tests of the flat layout on this device.
# QUICK=--quick makes it a smoke run (small trees) on any machine.
# ORDER_ROUNDS (default 1): how many times each step is compiled, the order rotated
# (bench_step.measure_rotated); one round, ours compiled before optax's, is what fits
# the time limits of a lent GPU, so on the 2000-leaf tree the GPU rows keep that bias.
# SETTLE_STEPS (default 1): untimed steps of a competitor right before each timed one
# (bench_step.measure); FLUSH_MIB (default 0): MiB written between them, which evicts the
# host's caches, not the GPU's.
set -u
OUT=${OUT:-benchmarks/results}
R=${REPEATS:-50}
O=${ORDER_ROUNDS:-1}
S=${SETTLE_STEPS:-1}
F=${FLUSH_MIB:-0}
QUICK=${QUICK:-}
export PYTHONPATH=.
python - <<'PY'
import jax, jaxlib, optax, jax.numpy as jnp
import jaxopt_edu as jo
print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "optax", optax.__version__, jax.devices())
p = {"a": jnp.ones(3), "b": jnp.ones((512, 512))}
s = jo.flatten(jo.adam(1e-3)).init(p)
print("flatten('auto') on", jax.default_backend(), "->", "buffer sizes", s.layout.sizes)
PY
timeout ${SMALL_S:-200} python benchmarks/bench_step.py $QUICK --no-torch --repeats $R \
  --order-rounds $O --settle-steps $S --flush-mib $F --trees small --chains ${SMALL_CHAINS:-adam,sgd_momentum} \
  --out "$OUT/step_gpu.json" 2>&1 | grep -v -i warning
timeout ${BIG_S:-120} python benchmarks/bench_step.py $QUICK --no-torch --repeats $R --append \
  --order-rounds $O --settle-steps $S --flush-mib $F --trees gpt,matrix --chains ${BIG_CHAINS:-sgd_momentum,adam,clip_adamw_cosine,lion} \
  --out "$OUT/step_gpu.json" 2>&1 | grep -v -i warning
timeout ${SCALARS_S:-60} python benchmarks/bench_scalars.py --out "$OUT/scalars_gpu.json" \
  2>&1 | grep -v -i warning
timeout ${TRAIN_S:-90} python benchmarks/bench_train_step.py --leaves ${TRAIN_LEAVES:-500} \
  --repeats $R --order-rounds $O --out "$OUT/train_step_gpu.json" 2>&1 | grep -v -i warning
if python -c "import pytest, chex" 2>/dev/null; then
  timeout ${TEST_S:-60} python -m pytest -q -x -p no:cacheprovider tests/test_flat.py \
    2>&1 | tail -8
fi
