#!/usr/bin/env bash
# The CUDA backend's GPU check, run ON THE GPU MACHINE from the repository root with the
# bundle built here by scripts/gpu_bundle.sh (carried as target/gpu_bundle):
#
#   run(command="bash scripts/gpu_check.sh", carry=["target/gpu_bundle"], timeout_s=540)
#
# Writes under $OUT (default ./gpu_out): nvidia-smi.txt, tests.txt (every GPU test with
# --nocapture: parity at V ∈ {4, 25, 32768, 262144} in f32/bf16, errors, fused steps on
# device logits, the 262,144-way tail test), bench.txt + bench.jsonl (GB/s of each fused
# step at (16,1024,32768), (8,1024,50257), (64,1024,131072)), summary.txt.
# Exit status: that of the tests (the bench is informative).
set -uo pipefail
cd "$(dirname "$0")/.."
B=target/gpu_bundle
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
{ nvidia-smi || true; } > "$OUT/nvidia-smi.txt" 2>&1
ls /usr/lib/x86_64-linux-gnu/libnvrtc* /usr/local/cuda*/lib64/libnvrtc* >> "$OUT/nvidia-smi.txt" 2>&1 || true
if [ -f "$B/kernels.ptx" ]; then
  export DD_CUDA_MODULE="$PWD/$B/kernels.ptx"
  echo "kernels: prebuilt PTX $DD_CUDA_MODULE" | tee "$OUT/summary.txt"
else
  echo "kernels: NVRTC on this machine" | tee "$OUT/summary.txt"
fi
chmod +x "$B/backend_cuda" "$B/cuda_steps"

# GPU tests must not skip here: a missing device or module is a failure.
export DD_REQUIRE_GPU=1
# Tests (single-threaded test harness: one GPU context at a time, readable output).
timeout 300 "$B/backend_cuda" --test-threads=1 --nocapture > "$OUT/tests.txt" 2>&1
status=$?
echo "tests exit status: $status" | tee -a "$OUT/summary.txt"
grep -E "^test |skipping|test result|tail hits|identical" "$OUT/tests.txt" | tee -a "$OUT/summary.txt"

# Benchmarks (read bandwidth of each fused step on device-resident logits).
CUDA_BENCH_OUT="$OUT/bench.jsonl" timeout 200 "$B/cuda_steps" > "$OUT/bench.txt" 2>&1
echo "bench exit status: $?" | tee -a "$OUT/summary.txt"
cat "$OUT/bench.txt" | tee -a "$OUT/summary.txt"
exit $status
