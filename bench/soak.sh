#!/usr/bin/env bash
# The soak: SOAK_SECONDS (600) of mixed load (bench/soak.rs: creates, searches, add_observations)
# at SOAK_CONCURRENCY (16) against one server on a fresh store, sampled every SOAK_INTERVAL (10 s):
# req/s, p99, the server's RSS, and the SQLite database and WAL file sizes (largest WAL seen
# between samples too). Appends to bench/results/<date>-soak.jsonl and renders <date>-soak.md
# from every run in it, so runs of two builds (SOAK_LABEL) sit side by side.
#
#   bench/soak.sh           SOAK_BACKENDS (sqlite; "sqlite postgres" for both), profile soak
#   bench/soak.sh --smoke   a few seconds on a debug build, results in a temp dir (CI)
#
# SOAK_SERVER measures a binary built elsewhere (another commit, SOAK_COMMIT) instead of this tree's.
# PostgreSQL: BENCH_PG, default postgres://postgres@127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

smoke=false
[[ ${1:-} == --smoke ]] && smoke=true
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
commit=${SOAK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
backends=${SOAK_BACKENDS:-sqlite} concurrency=${SOAK_CONCURRENCY:-16} label=${SOAK_LABEL:-$commit}
if $smoke; then
  profile=dev dir=debug seconds=4 interval=1
else
  # Release's optimisation without fat LTO (Cargo.toml's soak profile): a soak measures how
  # figures move over time, which LTO's few per cent do not change.
  profile=soak dir=soak seconds=${SOAK_SECONDS:-600} interval=${SOAK_INTERVAL:-10}
fi

log "build ($profile)"
[[ -n ${SOAK_SERVER:-} ]] || cargo build --locked --profile "$profile" --bin mcp-server
cargo build --locked --profile "$profile" --example bench-soak
target=${CARGO_TARGET_DIR:-target}
server=${SOAK_SERVER:-$target/$dir/mcp-server} soak=$target/$dir/examples/bench-soak

work=$(mktemp -d)
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$pg/postgres" -c "drop database if exists mcp_soak_$$ with (force)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if $smoke; then
  results=$work/soak.jsonl
else
  results=bench/results/$(date -u +%F)-soak.jsonl
fi
record() { echo "$1" >>"$results"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
record "{\"kind\":\"machine\",\"label\":\"$label\",\"date\":\"$(date -u +%FT%TZ)\",\"cpu\":\"$cpu\",\"cores\":$(nproc),\"profile\":\"$profile\",\"commit\":\"$commit\",\"server_sha256\":\"$(sha256sum "$server" | cut -c1-12)\"}"

for backend in $backends; do
  log "soak: $backend, ${seconds}s at c=$concurrency ($label)"
  port=$(free_port) metrics=$(free_port) data=$work/$backend
  mkdir -p "$data"
  if [[ $backend == postgres ]]; then
    url=$pg/mcp_soak_$$
    psql -q "$pg/postgres" -c "drop database if exists mcp_soak_$$ with (force)" -c "create database mcp_soak_$$" >/dev/null
    DATABASE_URL=$url "$server" migrate >/dev/null
    DATABASE_URL=$url PORT=$port METRICS_PORT=$metrics LOG_LEVEL=warn "$server" serve >"$work/$backend.log" 2>&1 &
  else
    DATA_DIR=$data PORT=$port METRICS_PORT=$metrics LOG_LEVEL=warn "$server" serve >"$work/$backend.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready" && break
    kill -0 $pid 2>/dev/null || { cat "$work/$backend.log"; exit 1; }
    sleep 0.05
  done
  db=$(find "$data" -name '*.db' 2>/dev/null | head -1)
  # The WAL's largest size between samples: it may grow and be reset within one interval.
  peak=$work/wal-peak
  echo 0 >"$peak"
  (while sleep 0.5; do
    wal=$(size "$db-wal")
    ((wal > $(cat "$peak"))) && echo "$wal" >"$peak"
  done) &
  sampler=$!
  "$soak" --url "http://127.0.0.1:$port/mcp" --concurrency "$concurrency" --duration "$seconds" --interval "$interval" |
    while read -r line; do
      rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")
      wal=$(size "$db-wal") wal_peak=$(cat "$peak")
      echo 0 >"$peak"
      db_bytes=$(size "$db")
      [[ $backend == postgres ]] && db_bytes=$(psql -At "$url" -c "select pg_database_size(current_database())")
      row="{\"kind\":\"soak\",\"label\":\"$label\",\"backend\":\"$backend\",\"concurrency\":$concurrency,\"rss_kib\":$rss,\"db_bytes\":$db_bytes,\"wal_bytes\":$wal,\"wal_peak_bytes\":$((wal_peak > wal ? wal_peak : wal)),${line#\{}"
      echo "  $row"
      record "$row"
    done
  kill $sampler $pid
  wait $pid 2>/dev/null || true
done

if $smoke; then
  python3 bench/soak_report.py --check "$results" >/dev/null
  echo "soak smoke run: every sample valid"
else
  python3 bench/soak_report.py "$results" >"${results%.jsonl}.md"
  echo "wrote ${results%.jsonl}.md"
fi
