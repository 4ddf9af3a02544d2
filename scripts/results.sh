#!/usr/bin/env bash
# Regenerate docs/results.md: run every application example with its default arguments
# (each writes target/results/<domain>.json and an SVG plot), then the report.
# A missing or failing example is reported and skipped; the report names the domains
# without results.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
for ex in dna protein molecules text; do
    if [ ! -f "examples/$ex.rs" ] && [ ! -f "examples/$ex/main.rs" ]; then
        echo "== $ex: no such example, skipped"
        rm -f "target/results/$ex.json"
        continue
    fi
    echo "== $ex"
    # A stale file from an earlier run must not stand in for a failed one.
    rm -f "target/results/$ex.json"
    if ! cargo run --release --example "$ex"; then
        echo "== $ex failed"
        failed+=("$ex")
    fi
done
cargo run --release --example results_report || exit 1
if [ ${#failed[@]} -gt 0 ]; then
    echo "examples that failed: ${failed[*]}"
    exit 1
fi
