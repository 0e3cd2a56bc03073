#!/usr/bin/env bash
# The GPU check of the soft tree's CUDA path (issue 16): one script, run as is from the repository root
# on a machine with an NVIDIA GPU (about 8 minutes on an H100):
#
#     bash benchmarks/gpu_check.sh [OUT]        # OUT (default: gpu-check-out) gets the logs
#
# 1. environment: GPU, torch, triton, the package importable (PYTHONPATH=. is enough; no install needed);
# 2. correctness on the GPU: the Triton kernel tests on CUDA (tests/test_triton_tree.py runs them on the
#    device when there is one) and benchmarks/gpu_smoke.py (fused step = eager step, graph+fused fit =
#    eager fit, streamed fit, predict on the device = CPU float64, soft labels);
# 3. the figures: python -m benchmarks.run --device cuda --only soft_tree,soft_labels,attribution,gpu_fit --merge
#    writes the *_cuda sections of benchmarks/RESULTS.md and results.json beside the CPU ones.
# Copy benchmarks/RESULTS.md and benchmarks/results.json back from OUT (they are also written in place).
set -u -o pipefail
OUT=${1:-gpu-check-out}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
PY=${PYTHON:-python3}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
  $PY -c "import triton; print('triton', triton.__version__)" || echo "triton missing: the fused kernels will not run (eager + CUDA graph only)"
  $PY -c "import explain_distill, sklearn, captum, mnist1d; print('imports ok')" || echo "a dependency is missing: see pyproject.toml"
  git rev-parse --short HEAD 2>/dev/null || true
} 2>&1 | tee "$OUT/env.log"

echo "== tests on the GPU" | tee "$OUT/tests.log"
timeout 300 $PY -m pytest -q -x -p no:cacheprovider tests/test_triton_tree.py 2>&1 | tee -a "$OUT/tests.log"
echo "tests rc=$?" | tee -a "$OUT/tests.log"

echo "== smoke" | tee "$OUT/smoke.log"
timeout 300 $PY -m benchmarks.gpu_smoke 2>&1 | tee -a "$OUT/smoke.log"
smoke=$?
echo "smoke rc=$smoke" | tee -a "$OUT/smoke.log"

echo "== benchmarks" | tee "$OUT/bench.log"
start=$(date +%s)
timeout 900 $PY -m benchmarks.run --device cuda --only soft_tree,soft_labels,attribution,gpu_fit --merge 2>&1 | tee -a "$OUT/bench.log"
echo "benchmarks rc=$? in $(( $(date +%s) - start )) s" | tee -a "$OUT/bench.log"
cp benchmarks/RESULTS.md benchmarks/results.json "$OUT/" 2>/dev/null || true
exit $smoke
