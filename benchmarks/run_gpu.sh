#!/usr/bin/env bash
# The GPU check, as one command (issue 3, item 5). Run from the repo root on a machine
# with JAX+CUDA and optax installed:  OUT=/some/dir bash benchmarks/run_gpu.sh
# It writes $OUT/step_gpu.json (+ .md), the same format as results/step.json, one row at
# a time, so a run cut off by a time limit still keeps the cases it measured; then it
# runs the numerics tests that compare against optax on this device.
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONPATH=.
python - <<'PY'
import jax, jaxlib, optax
print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "optax", optax.__version__, jax.devices())
PY
# GPT and matrix first: the 2000-leaf pytree cases are the slow ones to compile
timeout ${BENCH_S:-400} python benchmarks/bench_step.py --no-torch --repeats 50 \
  --trees gpt,matrix,small --chains ${CHAINS:-sgd_momentum,adam,clip_adamw_cosine,lion,adafactor,muon} \
  --out "$OUT/step_gpu.json" 2>&1 | grep -v -i warning
if python -c "import pytest, chex" 2>/dev/null; then
  timeout ${TEST_S:-120} python -m pytest -q -x -p no:cacheprovider \
    tests/test_optax_oracle.py tests/test_flat.py tests/test_low_precision.py 2>&1 | tail -15
fi
