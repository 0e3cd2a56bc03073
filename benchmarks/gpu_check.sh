#!/usr/bin/env bash
# The GPU check of the soft tree's CUDA path (issue 16): one script, run as is from the repository root
# on a machine with an NVIDIA GPU; it fits a 10-minute lease (DEADLINE seconds in all, default 500):
#
#     bash benchmarks/gpu_check.sh [OUT]        # OUT (default: gpu-check-out) gets the logs
#
# 1. environment: GPU, torch, triton, the package importable (PYTHONPATH=. is enough; no install needed);
# 2. correctness on the GPU: benchmarks/gpu_smoke.py (fused step = eager step, graph+fused fit =
#    eager fit, streamed fit, predict on the device = CPU float64, soft labels) and the Triton kernel
#    tests on CUDA (tests/test_triton_tree.py runs them on the device when there is one);
# 3. the figures, most wanted first, each one merged into benchmarks/RESULTS.md and results.json as it
#    finishes (so a step cut off by the deadline keeps the ones before it):
#    python -m benchmarks.run --device cuda --only gpu_fit|soft_tree|soft_labels|attribution --merge
# Copy benchmarks/RESULTS.md and benchmarks/results.json back from OUT (they are also written in place).
set -u -o pipefail
OUT=${1:-gpu-check-out}
DEADLINE=${DEADLINE:-500}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
T0=$(date +%s)
left() {  # seconds left before the deadline, at most $1
  local l=$(( DEADLINE - ($(date +%s) - T0) ))
  (( l > $1 )) && l=$1
  (( l < 1 )) && l=1
  echo $l
}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
  $PY -c "import triton; print('triton', triton.__version__)" || echo "triton missing: the fused kernels will not run (eager + CUDA graph only)"
  $PY -c "import explain_distill, sklearn, captum; print('imports ok')" || echo "a dependency is missing: see pyproject.toml"
  git rev-parse --short HEAD 2>/dev/null || true
} 2>&1 | tee "$OUT/env.log"

echo "== smoke" | tee "$OUT/smoke.log"
timeout "$(left 120)" $PY -m benchmarks.gpu_smoke 2>&1 | tee -a "$OUT/smoke.log"
smoke=$?
echo "smoke rc=$smoke after $(( $(date +%s) - T0 )) s" | tee -a "$OUT/smoke.log"

echo "== tests on the GPU" | tee "$OUT/tests.log"
timeout "$(left 90)" $PY -m pytest -q -p no:cacheprovider tests/test_triton_tree.py 2>&1 | tee -a "$OUT/tests.log"
echo "tests rc=$? after $(( $(date +%s) - T0 )) s" | tee -a "$OUT/tests.log"

echo "== benchmarks" | tee "$OUT/bench.log"
for name in ${BENCHES:-gpu_fit soft_tree soft_labels attribution}; do
  start=$(date +%s)
  timeout "$(left 200)" $PY -m benchmarks.run --device cuda --only "$name" --merge 2>&1 | tee -a "$OUT/bench.log"
  echo "$name rc=$? in $(( $(date +%s) - start )) s (at $(( $(date +%s) - T0 )) s)" | tee -a "$OUT/bench.log"
  cp benchmarks/RESULTS.md benchmarks/results.json "$OUT/" 2>/dev/null || true
done
exit $smoke
