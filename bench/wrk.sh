#!/usr/bin/env bash
# HTTP measured with an external load generator (wrk): mcp-server on SQLite and on PostgreSQL
# against the ceiling (bench/ceiling.rs, bare axum answering with our exact result bytes) and the
# rmcp floor (bench/rmcp_floor.rs, rmcp's Streamable HTTP service answering with that result: what
# the SDK costs before any server logic), for a search reply of 110, 10 and 1 entities, in one run. Writes bench/results/<date>-wrk.{md,jsonl}.
#
#   bench/wrk.sh           WRK_SECONDS (20) per measurement at WRK_CONNECTIONS ("16 64")
#   bench/wrk.sh --smoke   1 s per measurement on a debug build; checks every reply is valid
#
# Needs wrk (Debian package wrk; .ci/run installs it) and PostgreSQL at BENCH_PG.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source bench/lib.sh

if $smoke; then
  profile=dev dir=debug seconds=1 connections=(4)
else
  profile=${WRK_PROFILE:-soak} dir=${WRK_PROFILE:-soak} seconds=${WRK_SECONDS:-20}
  read -ra connections <<<"${WRK_CONNECTIONS:-16 64}"
fi
# Replies of 110 entities (topics 7 and 70-79 of the 1,000 seeded), 10 and 1.
queries=("topic-7" "entity-00012" "note 999")
command -v wrk >/dev/null || { echo "bench/wrk.sh needs wrk (Debian: apt-get install wrk)" >&2; exit 1; }

log "build ($profile)"
cargo build --locked --profile "$profile" --bin mcp-server
cargo build --locked --profile "$profile" --example bench-loadgen --example bench-ceiling --example bench-rmcp-floor
bin=$PWD/target/$dir

bench_workspace wrk

declare -A pids ports
start() { # LABEL COMMAND...: start a target on a free port (PORT, and any argument "{port}")
  local label=$1 port args=() a
  shift
  port=$(free_port)
  for a in "$@"; do args+=("${a//\{port\}/$port}"); done
  PORT=$port METRICS_PORT=$(free_port) "${args[@]}" >"$work/$label.log" 2>&1 &
  pids[$label]=$! ports[$label]=$port
}

log "targets"
mkdir -p "$work/sqlite"
DATA_DIR=$work/sqlite start sqlite "$bin/mcp-server" serve
psql -q "$pg/postgres" -c "create database $db"
DATABASE_URL=$pg/$db "$bin/mcp-server" migrate >/dev/null
DATABASE_URL=$pg/$db start postgres "$bin/mcp-server" serve
for label in sqlite postgres; do
  wait_ready "http://127.0.0.1:${ports[$label]}/health/ready" "${pids[$label]}"
  "$bin/examples/bench-loadgen" --url "http://127.0.0.1:${ports[$label]}/mcp" --seed 1000 >/dev/null
done

for query in "${queries[@]}"; do
  body=$(tool_call_body search_nodes "{\"query\":\"$query\"}")
  curl -sf "http://127.0.0.1:${ports[sqlite]}/mcp" "${mcp_headers[@]}" -d "$body" |
    python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"], separators=(",", ":")))' >"$work/result.json"
  # Every valid reply names the last entity found (the ceiling's reply is ours, byte for byte).
  expect=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["structuredContent"]["entities"][-1]["name"])' "$work/result.json")
  start ceiling "$bin/examples/bench-ceiling" "{port}" "$work/result.json"
  start rmcp-floor "$bin/examples/bench-rmcp-floor" "{port}" "$work/result.json"
  wait_ready "http://127.0.0.1:${ports[ceiling]}/" "${pids[ceiling]}"
  wait_ready "http://127.0.0.1:${ports[rmcp-floor]}/" "${pids[rmcp-floor]}"
  for c in "${connections[@]}"; do
    for label in ceiling rmcp-floor sqlite postgres; do
      pid=${pids[$label]}
      echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
      cpu=$(cpu_seconds "$pid")
      line=$(WRK_BODY=$body WRK_EXPECT=$expect wrk -t2 -c"$c" -d"${seconds}s" --timeout 10s -s bench/wrk.lua \
        "http://127.0.0.1:${ports[$label]}/mcp" | tail -1)
      cpu=$(awk -v a="$cpu" -v b="$(cpu_seconds "$pid")" 'BEGIN { printf "%.2f", b - a }')
      echo "  $label \"$query\" c=$c: $line (server CPU $cpu s)"
      echo "{\"target\":\"$label\",\"query\":\"$query\",\"connections\":$c,\"server_cpu_s\":$cpu,\"peak_rss_kib\":$(rss_kib "$pid" VmHWM),${line#\{}" >>"$results"
    done
  done
  kill "${pids[ceiling]}" "${pids[rmcp-floor]}"
  wait "${pids[ceiling]}" "${pids[rmcp-floor]}" 2>/dev/null || true
done

log "report"
report() {
  python3 - "$results" "$seconds" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rows if r["bad"] or r["errors"] or not r["requests"]]
if bad:
    sys.exit(f"invalid measurements: {bad}")
key = {(r["target"], r["query"], r["connections"]): r for r in rows}
print("| query | reply bytes | c | target | req/s | p50 ms | p99 ms | vs ceiling req/s | vs ceiling p99 | server CPU µs/req | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
targets = []
for r in rows:
    top = key[("ceiling", r["query"], r["connections"])]
    ratio, p99 = r["rps"] / top["rps"], r["p99_ms"] / top["p99_ms"]
    us = r["server_cpu_s"] * 1e6 / r["requests"]
    print(f"| `{r['query']}` | {r['reply_bytes']} | {r['connections']} | {r['target']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
          f"{r['p99_ms']:.2f} | {ratio:.2f}× | {p99:.2f}× | {us:.0f} | {r['peak_rss_kib'] / 1024:.1f} |")
    if r["target"] in ("sqlite", "postgres") and r["connections"] == max(x["connections"] for x in rows):
        targets.append(f"- {r['target']} `{r['query']}` c={r['connections']}: req/s {ratio:.2f}× the ceiling "
                       f"({'met' if ratio >= 0.35 else 'missed'}: ≥ 0.35×), p99 {p99:.2f}× ({'met' if p99 <= 2 else 'missed'}: ≤ 2×)")
print(f"\n{len(rows)} measurements of {sys.argv[2]} s, every reply checked (status 200 and the last entity found).\n")
print("## Targets\n")
print("\n".join(targets))
PY
}
if $smoke; then
  report >/dev/null
  echo "smoke run: every measurement valid"
else
  bench_publish wrk "HTTP with wrk: mcp-server against the bare axum ceiling" \
    "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), 2 threads, on the same two cores as the servers. Graph: 1,000 entities (bench-loadgen --seed). Default settings."
fi
