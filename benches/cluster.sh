#!/usr/bin/env bash
# Durable activations/s and latency, in one run on the same machine: release 0.1.0's server
# (built from this clone's history, commit 03f0722), this release's server on its embedded sled
# store, and 1, 2 and 3 nodes of this release on one PostgreSQL database (a private server
# started here, fsync and synchronous_commit on). Every configuration gets fresh data and the same
# load generator (examples/loadgen.rs: CLIENTS keep-alive clients, each refreshing its host's
# binding for SECONDS s; on a cluster client i talks to node i % n).
#
#   benches/cluster.sh [CLIENTS=64] [SECONDS=10] [ROUNDS=1]
#
# Needs PostgreSQL's initdb/postgres (Debian's postgresql). Results go to stdout, one line per
# configuration and round; BENCHMARKS.md records them with the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-64}
seconds=${2:-10}
rounds=${3:-1}

echo "== building (release)" >&2
cargo build --release --quiet -p licet-server --bin licet-server
cargo build --release --quiet --example loadgen
old=target/compat-0.1.0
if [ ! -f "$old/src/Cargo.lock" ]; then
    mkdir -p "$old/src"
    git archive --format=tar 03f0722 | tar -x -C "$old/src"
fi
(cd "$old/src" && CARGO_TARGET_DIR=../target-release cargo build --release --quiet --locked -p licet-server --bin licet-server)
old_bin=$old/target-release/release/licet-server
new_bin=target/release/licet-server
loadgen=target/release/examples/loadgen

pg_bin=$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
work=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$work"
    as_pg=(runuser -u postgres --)
fi
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -f "$work/pg/postmaster.pid" ]; then "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=200" start >/dev/null
database=0
new_database() {
    psql -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE bench$database" >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/bench$database"
}

# Starts `BIN serve ARGS…` in the background and sets `served` to its URL. Not called in a
# command substitution: its process id must reach this shell's `pids`, or it would outlive us.
serve() {
    local bin=$1 out
    shift
    out=$(mktemp -p "$work")
    LICET_LOG=warn "$bin" serve --listen 127.0.0.1:0 --rate-limit 0 "$@" >"$out" 2>>"$work/servers.log" &
    pids+=($!)
    for _ in $(seq 1 200); do
        if grep -q '^listening on ' "$out"; then
            served=$(sed -n 's/^listening on //p' "$out" | head -n 1)
            return
        fi
        sleep 0.05
    done
    echo "a server did not start; see $work/servers.log" >&2
    exit 1
}

stop_servers() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}

run() {
    local name=$1 urls=$2 admin=$3 line
    line=$("$loadgen" "$clients" "$seconds" --urls "$urls" --admin "$admin")
    printf '%-22s %s\n' "$name" "$(echo "$line" | tail -n 1)"
    if [ "$(echo "$line" | wc -l)" -gt 2 ]; then
        printf '%-22s %s\n' "" "$(echo "$line" | grep refused)"
        grep -E 'WARN|ERROR' "$work/servers.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c 1-200 | sort | uniq -c | sort -rn | head -n 3 >&2
    fi
    : >"$work/servers.log"
    stop_servers
}

embedded() {
    local bin=$1 dir
    dir=$(mktemp -d -p "$work")
    admin=$("$bin" init --json --data-dir "$dir/data" | sed -n 's/.*"admin_token":"\([^"]*\)".*/\1/p')
    serve "$bin" --data-dir "$dir/data"
    url=$served
}

cluster() {
    local nodes=$1 dir db
    urls=""
    dir=$(mktemp -d -p "$work")
    database=$((database + 1))
    db=$(new_database)
    admin=$("$new_bin" init --json --data-dir "$dir/node0" --database "$db" | sed -n 's/.*"admin_token":"\([^"]*\)".*/\1/p')
    for i in $(seq 0 $((nodes - 1))); do
        [ "$i" = 0 ] || cp -a "$dir/node0" "$dir/node$i"
        serve "$new_bin" --data-dir "$dir/node$i" --database "$db"
        urls="$urls${urls:+,}$served"
    done
}

echo "== $clients clients, $seconds s each, $rounds round(s); $(nproc) cores" >&2
for round in $(seq 1 "$rounds"); do
    embedded "$old_bin"
    run "0.1.0 sled (r$round)" "$url" "$admin"
    embedded "$new_bin"
    run "sled (r$round)" "$url" "$admin"
    for nodes in 1 2 3; do
        cluster "$nodes"
        run "postgres x$nodes (r$round)" "$urls" "$admin"
    done
done
