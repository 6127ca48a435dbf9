#!/usr/bin/env bash
# Smoke-runs every fuzz target for SECONDS each (default 30); exits non-zero
# if any target crashes (the input is left in fuzz/artifacts/<target>/).
#
#   bash fuzz/smoke.sh 30
#
# Installs cargo-fuzz and the nightly toolchain if they are missing, runs the
# bodies' unit tests on stable, seeds fuzz/corpus/ (fuzz/seed.sh), builds,
# then runs. Needs no terminal: safe
# under CI=true with stdin closed.
set -euo pipefail

secs="${1:-30}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;;
esac

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir"
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked </dev/null
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "smoke: installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal </dev/null
fi

# The bodies' own unit tests, on stable, from the main workspace (the
# workspace's plain `cargo test` leaves the fuzzing features off).
(cd "$fuzz_dir/.." && cargo test -p procmon-core -p procmon-sim -p procmon \
    --features procmon-core/fuzzing,procmon-sim/fuzzing,procmon/fuzzing --lib fuzzing </dev/null)

bash "$fuzz_dir/seed.sh"
cargo +nightly fuzz build </dev/null

failed=()
for target in $(cargo +nightly fuzz list </dev/null); do
    echo "smoke: $target for ${secs}s"
    mkdir -p "corpus/$target"
    if ! cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -print_final_stats=1 </dev/null; then
        echo "smoke: $target FAILED; crash inputs:" >&2
        ls -1 "artifacts/$target" >&2 2>/dev/null || true
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "smoke: failed: ${failed[*]} (see docs/fuzzing.md: a crash input becomes a test)" >&2
    exit 1
fi
echo "smoke: every target ran ${secs}s without a crash"
