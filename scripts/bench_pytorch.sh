#!/usr/bin/env bash
# Eager PyTorch CPU reference timings for the fused sampling steps, on this machine, now.
#
# Usage: scripts/bench_pytorch.sh [BENCH_DIR]
#   BENCH_DIR   the reference scripts (default: ../shared/bench relative to the repository root,
#               falling back to /work/shared/bench)
# Environment (all optional):
#   THREADS=2            torch.set_num_threads for every timed call (the crate is compared at the
#                        same thread count)
#   SIZES="0 1 2 3 4"    indices into the five (B, L, V) sizes of the issue
#   BENCHES="mdlm llada sedd fm categorical"
#   ALL_VARIANTS=1       run every variant of every script (default: the ones the report uses)
#   BENCH_ARGS="--reps 3 --min-total-s 1 --variant-cap 60 --quiet-wait 5"
#   AS_GIB=16            address-space limit per (bench, size) subprocess: torch then fails with a
#                        recorded "can't allocate memory" instead of the kernel OOM-killing the
#                        machine's other processes (24 GiB machine, 2 GiB of logits at size 0)
#   VENV=target/pytorch-venv   the virtual environment (created on first use; ignored by git)
#   OUT=target/perf/pytorch.jsonl   appended to; one JSON line per (bench, variant, size, threads)
#   FRESH=1              truncate OUT first
#   COMPILED=1           also run bench_compiled.py (eager vs torch.compile for the MDLM and LLaDA
#                        steps; needs a C++ compiler) into target/perf/pytorch_compiled.jsonl
#
# Every line is the reference harness's record (median of the clean reps, elements/s, ...) plus
# the load average before and after the subprocess, the start time of this run (run_id), the CPU
# model and the host name. The machine may be shared: the harness judges each repetition "clean"
# from /proc/stat, and the load average says how busy the machine was around it.
#
# This is a developer tool (CI never runs it): installing torch from PyPI takes a few minutes and
# about 3 GB of disk.
set -euo pipefail
# The whole body is one brace group: bash parses it before running it, so editing this file
# while it runs cannot change the run.
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BENCH_DIR="${1:-}"
if [[ -z "$BENCH_DIR" ]]; then
    for cand in "$ROOT/../shared/bench" "/work/shared/bench"; do
        if [[ -f "$cand/common.py" ]]; then BENCH_DIR="$cand"; break; fi
    done
fi
if [[ -z "$BENCH_DIR" || ! -f "$BENCH_DIR/common.py" ]]; then
    echo "bench_pytorch.sh: reference scripts not found (give their folder as the first argument)" >&2
    exit 2
fi
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"

THREADS="${THREADS:-2}"
SIZES="${SIZES:-0 1 2 3 4}"
BENCHES="${BENCHES:-mdlm llada sedd fm categorical}"
BENCH_ARGS="${BENCH_ARGS:---reps 3 --min-total-s 1 --variant-cap 60 --quiet-wait 5}"
AS_GIB="${AS_GIB:-16}"
VENV="${VENV:-$ROOT/target/pytorch-venv}"
OUT="${OUT:-$ROOT/target/perf/pytorch.jsonl}"

# The variants the report compares against (perf_report.rs maps them to the crate's steps).
declare -A VARIANTS=(
    [mdlm]="ddpm_update,subs_ddpm_update"
    [llada]="T0_f32,T1_f32noise,T1_f64noise"
    [sedd]="analytic,euler"
    [fm]="reimpl_step,fast_step"
    [categorical]="multinomial_softmax,gumbel_logits,c_sum,c_exp,c_argmax"
)

mkdir -p "$(dirname "$OUT")"
[[ "${FRESH:-0}" == 1 ]] && : >"$OUT"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV" >&2
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, numpy" 2>/dev/null; then
    echo "installing torch and numpy into $VENV (a few minutes)" >&2
    "$VENV/bin/pip" install --quiet torch numpy
fi
PY="$VENV/bin/python"
"$PY" -c "import torch; print('torch', torch.__version__, torch.backends.cpu.get_cpu_capability())" >&2

RUN_ID="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
HOST="$(hostname)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' ','; }

for s in $SIZES; do
    for b in $BENCHES; do
        script="$BENCH_DIR/bench_$b.py"
        [[ -f "$script" ]] || { echo "missing $script" >&2; continue; }
        var_args=()
        if [[ "${ALL_VARIANTS:-0}" != 1 && -n "${VARIANTS[$b]:-}" ]]; then
            var_args=(--variants "${VARIANTS[$b]}")
        fi
        part="$TMP/$b-$s.jsonl"
        : >"$part"
        lb="$(loadavg)"
        t0=$(date +%s)
        echo "== $b size $s threads $THREADS (load $lb)" >&2
        # shellcheck disable=SC2086
        set +e
        (
            ulimit -v $((AS_GIB * 1024 * 1024))
            cd "$BENCH_DIR" && exec "$PY" "$script" --sizes "$s" --threads "$THREADS" \
                --out "$part" "${var_args[@]}" $BENCH_ARGS
        )
        rc=$?
        set -e
        la="$(loadavg)"
        "$PY" - "$part" "$OUT" "$RUN_ID" "$lb" "$la" "$CPU_MODEL" "$HOST" "$b" "$s" "$rc" "$(( $(date +%s) - t0 ))" <<'EOF'
import json, sys
part, out, run_id, lb, la, cpu, host, bench, size, rc, wall = sys.argv[1:]
extra = {"run_id": run_id, "loadavg_before": [float(v) for v in lb.split(",")],
         "loadavg_after": [float(v) for v in la.split(",")], "cpu_model": cpu, "host": host,
         "script": bench, "size_index": int(size), "subprocess_rc": int(rc),
         "subprocess_wall_s": int(wall)}
lines = [l for l in open(part) if l.strip()]
with open(out, "a") as f:
    for l in lines:
        r = json.loads(l)
        r.update(extra)
        f.write(json.dumps(r) + "\n")
    if not lines:
        f.write(json.dumps({"bench": bench, "error": f"no record (exit status {rc})", **extra}) + "\n")
EOF
    done
done
if [[ "${COMPILED:-0}" == 1 ]]; then
    COUT="$(dirname "$OUT")/pytorch_compiled.jsonl"
    csizes="$(echo "$SIZES" | tr ' ' ',')"
    lb="$(loadavg)"
    echo "== compiled sizes $csizes threads $THREADS (load $lb)" >&2
    set +e
    (
        ulimit -v $((AS_GIB * 1024 * 1024))
        cd "$BENCH_DIR" && exec "$PY" bench_compiled.py --sizes "$csizes" --threads "$THREADS" --reps 3
    ) >"$TMP/compiled.jsonl"
    set -e
    la="$(loadavg)"
    "$PY" - "$TMP/compiled.jsonl" "$COUT" "$RUN_ID" "$lb" "$la" <<'EOF'
import json, sys
part, out, run_id, lb, la = sys.argv[1:]
with open(out, "a") as f:
    for l in open(part):
        if l.strip().startswith("{"):
            r = json.loads(l)
            r.update({"run_id": run_id, "loadavg_before": [float(v) for v in lb.split(",")],
                      "loadavg_after": [float(v) for v in la.split(",")]})
            f.write(json.dumps(r) + "\n")
EOF
    echo "wrote $COUT" >&2
fi
echo "wrote $OUT (run $RUN_ID)" >&2
exit 0
}
