#!/usr/bin/env bash
# Durable activations/s and latency of several server binaries, interleaved round by round on
# one embedded (sled) store each: for comparing two builds, or a build with release 0.1.0's.
#
#   benches/ab.sh ROUNDS SECONDS BINARY...
#
# e.g. benches/ab.sh 3 8 target/compat-0.1.0/target-release/release/licet-server /tmp/before target/release/licet-server
# (benches/cluster.sh builds the 0.1.0 binary). Each run: `init`, `serve --rate-limit 0`,
# examples/loadgen with 64 keep-alive clients; one line per binary and round.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1
seconds=$2
shift 2
cargo build --release --quiet --example loadgen
for round in $(seq 1 "$rounds"); do
    for bin in "$@"; do
        dir=$(mktemp -d)
        token=$("$bin" init --json --data-dir "$dir/data" | sed -n 's/.*"admin_token":"\([^"]*\)".*/\1/p')
        LICET_LOG=error "$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --rate-limit 0 >"$dir/out" 2>/dev/null &
        pid=$!
        for _ in $(seq 1 100); do
            grep -q listening "$dir/out" 2>/dev/null && break
            sleep 0.05
        done
        url=$(head -n 1 "$dir/out" | sed 's/listening on //')
        printf '%-60s r%s  ' "$bin" "$round"
        target/release/examples/loadgen --urls "$url" --admin "$token" 64 "$seconds" | tail -n 1
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        rm -rf "$dir"
    done
done
