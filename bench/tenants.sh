#!/usr/bin/env bash
# Many tenants over HTTP: TENANTS (10,000) tenants of ENTITIES (100) entities, on SQLite and on
# PostgreSQL, each store seeded once and then measured with the graph cache at each budget in
# BUDGETS (GRAPH_CACHE_BYTES: "0 268435456 2147483648", no cache, the default and one that holds
# every tenant): one-hit and broad search and one-entity writes on random tenants (bench-tenants,
# bench/tenants.rs), the server's RSS beside what the cache says it holds (graph_cache_bytes).
# Writes bench/results/<date>-tenants.{md,jsonl}.
#
#   bench/tenants.sh           the full run
#   bench/tenants.sh --smoke   40 tenants on a debug build; checks every call (CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source bench/lib.sh

if $smoke; then
  profile=dev dir=debug tenants=40 entities=20 calls=200 budgets=(0 100000 10000000)
else
  profile=${BENCH_PROFILE:-soak} dir=${BENCH_PROFILE:-soak} tenants=${TENANTS:-10000} entities=${ENTITIES:-100}
  calls=${CALLS:-20000}
  read -ra budgets <<<"${BUDGETS:-0 268435456 2147483648}"
fi
concurrency=${CONCURRENCY:-8}

log "build ($profile)"
cargo build --locked --profile "$profile" --bin mcp-server
cargo build --locked --profile "$profile" --example bench-tenants
bin=$PWD/target/$dir

bench_workspace tenants
# A secret for this run only: never printed, gone with the run.
JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export JWT_SECRET

# One port for every start: the audience a token names is the server's URL.
port=$(free_port)
metrics=$(free_port)
serve() { # BACKEND BUDGET: our server on that store; sets pid and url
  if [[ $1 == sqlite ]]; then
    DATA_DIR=$work/sqlite GRAPH_CACHE_BYTES=$2 PORT=$port METRICS_PORT=$metrics LOG_LEVEL=warn \
      "$bin/mcp-server" serve >>"$work/server.log" 2>&1 &
  else
    DATABASE_URL=$pg/$db GRAPH_CACHE_BYTES=$2 PORT=$port METRICS_PORT=$metrics LOG_LEVEL=warn \
      "$bin/mcp-server" serve >>"$work/server.log" 2>&1 &
  fi
  pid=$!
  url=http://127.0.0.1:$port/mcp
  wait_ready "http://127.0.0.1:$port/health/ready" "$pid"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
# The issuer and audience the server checks, read off a token it mints.
claims=$(DATA_DIR=$work/probe PORT=$port "$bin/mcp-server" token --tenant probe | cut -d. -f2 |
  python3 -c 'import base64,json,sys; t=sys.stdin.read().strip(); c=json.loads(base64.urlsafe_b64decode(t+"="*(-len(t)%4))); print(c["iss"], c["aud"])')
read -r issuer audience <<<"$claims"
tool() { "$bin/examples/bench-tenants" --url "$url" --issuer "$issuer" --audience "$audience" \
  --tenants "$tenants" --entities "$entities" --concurrency "$concurrency" --calls "$calls" "$@"; }
record() { # BACKEND BUDGET JSON
  local line held
  held=$(curl -s "http://127.0.0.1:$metrics/metrics" | awk '$1 == "graph_cache_bytes" { print $2 }')
  line="{\"backend\":\"$1\",\"budget\":$2,\"cache_bytes\":${held:-0},\"rss_kib\":$(rss_kib "$pid" VmRSS),\"peak_rss_kib\":$(rss_kib "$pid" VmHWM),${3#\{}"
  echo "  $line"
  echo "$line" >>"$results"
}

mkdir -p "$work/sqlite"
psql -q "$pg/postgres" -c "create database $db"
DATABASE_URL=$pg/$db "$bin/mcp-server" migrate >/dev/null
for backend in sqlite postgres; do
  log "$backend: seed $tenants tenants × $entities entities"
  serve "$backend" "${budgets[0]}"
  line=$(tool --seed --phases '')
  record "$backend" "${budgets[0]}" "$line"
  stop
  # The machine's PostgreSQL runs without autovacuum; a server's would have analyzed by now.
  [[ $backend == sqlite ]] || psql -q "$pg/$db" -c "analyze"
  for budget in "${budgets[@]}"; do
    log "$backend: GRAPH_CACHE_BYTES=$budget"
    serve "$backend" "$budget"
    tool | while read -r line; do record "$backend" "$budget" "$line"; done
    stop
  done
done

log "report"
report() {
  python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| backend | GRAPH_CACHE_BYTES | phase | calls | seconds | req/s | p50 ms | p99 ms | cache holds MiB (estimate) | RSS after MiB | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    calls = r.get("calls", r.get("tenants"))
    rate = r.get("rps", r.get("entities_per_s"))
    rate_s = f"{rate:.0f}" + (" entities/s" if r["phase"] == "seed" else "")
    p50 = f"{r['p50_ms']:.2f}" if "p50_ms" in r else ""
    p99 = f"{r['p99_ms']:.2f}" if "p99_ms" in r else ""
    print(f"| {r['backend']} | {r['budget']:,} | {r['phase']} | {calls:,} | {r['seconds']:.1f} | {rate_s} | {p50} | {p99} | "
          f"{r['cache_bytes'] / 2**20:.0f} | {r['rss_kib'] / 1024:.0f} | {r['peak_rss_kib'] / 1024:.0f} |")
PY
}
if $smoke; then
  report >/dev/null
  echo "smoke run: every call valid"
else
  bench_publish tenants "$tenants tenants × $entities entities over HTTP" \
    "bench-tenants at $concurrency connections, every call on a random tenant with its own token; RSS of the server process after the phase and its peak since start (each budget is a fresh start on the seeded store)."
fi
