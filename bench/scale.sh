#!/usr/bin/env bash
# One tenant of SCALE_SIZE (1,000,000) entities over stdio (bench-stdio, bench/stdio.rs), on
# SQLite and on PostgreSQL, with the graph cache at each budget in BUDGETS (GRAPH_CACHE_BYTES:
# "268435456 2147483648": the default, which such a graph exceeds so the database answers, and one
# that holds it): load time, one-hit search and write p50/p99 over SCALE_MIXED (2,000) mixed calls,
# and the server's peak RSS (VmHWM, polled); then the same store served over HTTP, one-hit
# searches of random entities by wrk (bench/scale.lua) at each of SCALE_HTTP_CONNECTIONS ("1 4")
# for SCALE_HTTP_SECONDS (20). Writes bench/results/<date>-scale.{md,jsonl}.
#
#   bench/scale.sh           the full run (~30 min on 2 cores)
#   bench/scale.sh --smoke   2,000 entities on a debug build
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source bench/lib.sh

if $smoke; then
  profile=dev dir=debug size=2000 mixed=40 budgets=(100000 10000000) seconds=1
else
  profile=${BENCH_PROFILE:-soak} dir=${BENCH_PROFILE:-soak} size=${SCALE_SIZE:-1000000} mixed=${SCALE_MIXED:-2000}
  seconds=${SCALE_HTTP_SECONDS:-20}
  read -ra budgets <<<"${BUDGETS:-268435456 2147483648}"
fi

read -ra connections <<<"${SCALE_HTTP_CONNECTIONS:-1 4}"
command -v wrk >/dev/null || { echo "bench/scale.sh needs wrk (Debian: apt-get install wrk)" >&2; exit 1; }

log "build ($profile)"
cargo build --locked --profile "$profile" --bin mcp-server
cargo build --locked --profile "$profile" --example bench-stdio
bin=$PWD/target/$dir

bench_workspace scale

# The largest VmHWM of the process whose command line matches PATTERN, until stopped.
peak_rss() { # PATTERN OUT
  local peak=0 pid hwm
  while :; do
    pid=$(pgrep -f -- "$1" | head -1 || true)
    if [[ -n $pid ]]; then
      hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
      ((${hwm:-0} > peak)) && peak=$hwm && echo "$peak" >"$2"
    fi
    sleep 0.2
  done
}

for backend in sqlite postgres; do
  for budget in "${budgets[@]}"; do
    log "$backend, GRAPH_CACHE_BYTES=$budget: $size entities"
    rss=$work/$backend-$budget.rss
    if [[ $backend == sqlite ]]; then
      store=(DATA_DIR="$work/$backend-$budget")
      mkdir -p "$work/$backend-$budget"
    else
      psql -q "$pg/postgres" -c "drop database if exists $db with (force)" -c "create database $db"
      DATABASE_URL=$pg/$db "$bin/mcp-server" migrate >/dev/null
      # A million entities take about DB_STATEMENT_TIMEOUT's default (10 s) to load here: at it,
      # a budget that would hold the graph gets it only some of the time (the others search the
      # database, graph_cache_reads_total{result="load_failed"}).
      store=(DATABASE_URL="$pg/$db" DB_STATEMENT_TIMEOUT="${SCALE_PG_STATEMENT_TIMEOUT:-20s}")
    fi
    # The machine's PostgreSQL runs without autovacuum; a server's would vacuum and analyze after
    # a bulk load (since PostgreSQL 13 inserts alone start it). Then what the load and the vacuum
    # left dirty is written out, so that the calls measure searches and writes, not that
    # checkpoint (during it, about one search in a hundred waited up to ~28 ms).
    after_load=true
    [[ $backend == sqlite ]] || after_load="psql -q '$pg/$db' -c 'vacuum analyze' -c checkpoint"
    echo 0 >"$rss"
    peak_rss "^$bin/mcp-server stdio\$" "$rss" &
    poller=$!
    # The stdio server writes the default tenant, which the HTTP pass reads without a token.
    line=$("$bin/examples/bench-stdio" --label "mcp-server-$backend" --sizes "$size" --mixed "$mixed" --cap 3600 --after-load "$after_load" -- \
      env "${store[@]}" GRAPH_CACHE_BYTES="$budget" LOG_LEVEL=warn "$bin/mcp-server" stdio)
    kill "$poller"
    wait "$poller" 2>/dev/null || true
    line="{\"backend\":\"$backend\",\"budget\":$budget,\"peak_rss_kib\":$(cat "$rss"),${line#\{}"
    # The same graph over HTTP. A budget that holds it loads it on the first search, before wrk.
    [[ $backend == sqlite ]] || psql -q "$pg/$db" -c checkpoint
    port=$(free_port)
    env "${store[@]}" GRAPH_CACHE_BYTES="$budget" LOG_LEVEL=warn PORT="$port" METRICS_PORT="$(free_port)" \
      "$bin/mcp-server" serve >"$work/$backend-$budget.log" 2>&1 &
    server=$!
    wait_ready "http://127.0.0.1:$port/health/ready" "$server"
    curl -sf "http://127.0.0.1:$port/mcp" "${mcp_headers[@]}" -d "$(tool_call_body search_nodes '{"query":"t000000x"}')" >/dev/null
    http=()
    for c in "${connections[@]}"; do
      http+=("$(SCALE_SIZE=$size SCALE_CONNECTIONS=$c wrk -t1 -c"$c" -d"${seconds}s" --timeout 10s -s bench/scale.lua "http://127.0.0.1:$port/mcp" | tail -1)")
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
    line="${line%\}},\"http\":[$(IFS=,; echo "${http[*]}")]}"
    echo "  $line"
    echo "$line" >>"$results"
  done
done

report() {
  python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rows if "gave_up" in r or any(h["bad"] or h["errors"] or not h["requests"] for h in r["http"])]
if bad:
    sys.exit(f"runs gave up: {bad}")
print("Over stdio:\n")
print("| backend | GRAPH_CACHE_BYTES | entities | load s | search p50 ms | search p99 ms | write p50 ms | write p99 ms | mixed s | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['backend']} | {r['budget']:,} | {r['size']:,} | {r['load_seconds']:.0f} | {r['search_p50_ms']:.2f} | {r['search_p99_ms']:.2f} | "
          f"{r['write_p50_ms']:.2f} | {r['write_p99_ms']:.2f} | {r['mixed_seconds']:.1f} | {r['peak_rss_kib'] / 1024:.0f} |")
print("\nOver HTTP (wrk, one-hit searches of random entities, every reply checked):\n")
print("| backend | GRAPH_CACHE_BYTES | connections | searches/s | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|")
for r in rows:
    for h in r["http"]:
        print(f"| {r['backend']} | {r['budget']:,} | {h['connections']} | {h['rps']:.0f} | {h['p50_ms']:.2f} | {h['p99_ms']:.2f} |")
PY
}
if $smoke; then
  report >/dev/null
  echo "smoke run: every run valid"
else
  bench_publish scale "One tenant of $size entities over stdio and HTTP" \
    "bench-stdio: load $size entities (create_entities, 1,000 a call), then $mixed mixed calls (create, one-hit search, add_observations, search); the first search of a graph the budget holds loads it (its time is in \"mixed s\", not in the p99: one search of 1,000)."
fi
