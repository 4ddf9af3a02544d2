#!/usr/bin/env bash
# Build everything the GPU check needs on THIS machine (the GPU machines have no Rust
# toolchain and may have no libnvrtc) into target/gpu_bundle/, which the device run
# carries (`carry: ["target/gpu_bundle"]`) and scripts/gpu_check.sh executes.
#
#   scripts/gpu_bundle.sh            # test + bench binaries, and PTX if libnvrtc is found
#
# PTX: compiled by NVRTC here when libnvrtc can be loaded (LD_LIBRARY_PATH; see
# docs/cuda.md for a pip-installed NVRTC). Use an NVRTC no newer than the GPU driver's
# CUDA version (driver 580 = CUDA 13.0: nvidia-cuda-nvrtc==13.0.*), or the driver cannot
# JIT the PTX (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=target}"
export CARGO_TARGET_DIR
BUNDLE=target/gpu_bundle
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"

# Test binary (the harness prints one JSON-ish line per artifact; take the executable path).
exe=$(cargo test --release --features cuda --test backend_cuda --no-run --message-format=json 2>/dev/null \
  | grep '"executable":"[^"]*backend_cuda' | sed 's/.*"executable":"\([^"]*\)".*/\1/' | tail -1)
cp "$exe" "$BUNDLE/backend_cuda"
bexe=$(cargo bench --features cuda --bench cuda_steps --no-run --message-format=json 2>/dev/null \
  | grep '"executable":"[^"]*cuda_steps' | sed 's/.*"executable":"\([^"]*\)".*/\1/' | tail -1)
cp "$bexe" "$BUNDLE/cuda_steps"

# PTX (optional: without it the GPU machine needs its own libnvrtc).
if DD_CUDA_PTX_OUT="$PWD/$BUNDLE/kernels.ptx" "$BUNDLE/backend_cuda" nvrtc_compiles_the_kernels \
     --exact --nocapture 2>&1 | grep -q "PTX written"; then
  echo "PTX: $(head -c 300 "$BUNDLE/kernels.ptx" | grep -m1 '^.version')"
else
  echo "no libnvrtc here: the GPU machine must provide libnvrtc (no kernels.ptx in the bundle)"
  rm -f "$BUNDLE/kernels.ptx"
fi
cp scripts/gpu_check.sh "$BUNDLE/"
du -sh "$BUNDLE"
ls -la "$BUNDLE"
