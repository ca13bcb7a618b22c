#!/usr/bin/env bash
# Reads by time over HTTP, measured by wrk (one connection, TIME_SECONDS each), on SQLite and on
# PostgreSQL, for a tenant of each of TIME_SIZES ("10000 100000") entities of which a tenth were
# then deleted (so history holds them): a one-hit search as the reference makes it, the same with
# include ["time"] (the present, times looked up for the page), with asOf before the deletions
# (the graph and history read at that moment), and open_nodes with that asOf. Also what the
# history triggers cost a deletion: the first half of the deletions runs with them, the second
# with them dropped (SQLite) or disabled (PostgreSQL). Writes bench/results/<date>-time.{md,jsonl}.
#
#   bench/time.sh           the full run (~10 min on 2 cores)
#   bench/time.sh --smoke   500 entities on a debug build; checks every reply
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source bench/lib.sh

if $smoke; then
  profile=dev dir=debug sizes=(500) seconds=1
else
  profile=${BENCH_PROFILE:-soak} dir=${BENCH_PROFILE:-soak} seconds=${TIME_SECONDS:-10}
  read -ra sizes <<<"${TIME_SIZES:-10000 100000}"
fi
command -v wrk >/dev/null || { echo "bench/time.sh needs wrk (Debian: apt-get install wrk)" >&2; exit 1; }

log "build ($profile)"
cargo build --locked --profile "$profile" --bin mcp-server
bin=$PWD/target/$dir/mcp-server

bench_workspace time

call() { # PORT TOOL ARGUMENTS_JSON
  curl -sf "http://127.0.0.1:$1/mcp" "${mcp_headers[@]}" -d "$(tool_call_body "$2" "$3")"
}

for size in "${sizes[@]}"; do
  # Entities e00000… with one matching observation each, a chain of relations.
  python3 - "$size" >"$work/graph.jsonl" <<'PY'
import json, sys
n = int(sys.argv[1])
for i in range(n):
    print(json.dumps({"type": "entity", "name": f"e{i:06d}", "entityType": "thing",
                      "observations": [f"tag t{i:06d}x", f"note {i % 97}"]}))
for i in range(n - 1):
    print(json.dumps({"type": "relation", "from": f"e{i:06d}", "to": f"e{i + 1:06d}", "relationType": "next"}))
PY
  for backend in sqlite postgres; do
    log "$backend: $size entities"
    if [[ $backend == sqlite ]]; then
      rm -rf "$work/data" && mkdir -p "$work/data"
      store=(DATA_DIR="$work/data")
    else
      psql -q "$pg/postgres" -c "drop database if exists $db with (force)" -c "create database $db"
      store=(DATABASE_URL="$pg/$db")
      env "${store[@]}" "$bin" migrate >/dev/null
    fi
    env "${store[@]}" LOG_LEVEL=warn "$bin" import "$work/graph.jsonl" 2>/dev/null
    port=$(free_port)
    env "${store[@]}" PORT="$port" METRICS_PORT="$(free_port)" LOG_LEVEL=warn "$bin" serve >"$work/server.log" 2>&1 &
    pid=$!
    wait_ready "http://127.0.0.1:$port/health/ready" "$pid"
    sleep 0.01
    before=$(python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"))')
    sleep 0.01
    # A tenth deleted, 100 names a call (fewer for a small graph), every tenth entity from e000001: the first half kept as
    # history, the second not (its triggers gone), each half's time per entity.
    python3 - "$size" "$work/deletions" <<'PY'
import json, sys
names = [f"e{i:06d}" for i in range(1, int(sys.argv[1]), 10)]
per = max(1, min(100, len(names) // 4))
calls = [json.dumps({"entityNames": names[k:k + per]}) for k in range(0, len(names), per)]
half = len(calls) // 2
for suffix, part in (("kept", calls[:half]), ("not_kept", calls[half:])):
    with open(f"{sys.argv[2]}.{suffix}", "w") as f:
        f.write("".join(c + "\n" for c in part))
PY
    delete_ms() { # FILE: milliseconds per entity deleted
      local started count
      started=$(date +%s.%N) count=$(grep -o '"e[0-9]*"' "$1" | wc -l)
      while read -r args; do call "$port" delete_entities "$args" >/dev/null; done <"$1"
      awk -v a="$started" -v b="$(date +%s.%N)" -v n="$count" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }'
    }
    kept_ms=$(delete_ms "$work/deletions.kept")
    if [[ $backend == sqlite ]]; then
      python3 - "$work/data/mcp-server.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for name in ("entities_history", "observations_history", "relations_history"):
    db.execute(f"DROP TRIGGER {name}")
db.commit()
PY
    else
      for t in entities observations relations; do psql -q "$pg/$db" -c "alter table $t disable trigger ${t}_history"; done
    fi
    not_kept_ms=$(delete_ms "$work/deletions.not_kept")
    # e000001 is deleted: found as it was, not now.
    target=e000001 tag=t000001x
    declare -A reads=(
      [search]="search_nodes {\"query\":\"t000042x\"}"
      [search_with_times]="search_nodes {\"query\":\"t000042x\",\"include\":[\"time\"]}"
      [search_as_of]="search_nodes {\"query\":\"$tag\",\"asOf\":\"$before\"}"
      [open_as_of]="open_nodes {\"names\":[\"$target\"],\"asOf\":\"$before\"}"
    )
    for read in search search_with_times search_as_of open_as_of; do
      read -r tool args <<<"${reads[$read]}"
      expect=t000042x
      [[ $read == *as_of ]] && expect=$tag
      body=$(tool_call_body "$tool" "$args")
      line=$(WRK_BODY=$body WRK_EXPECT=$expect wrk -t1 -c1 -d"${seconds}s" --timeout 30s -s bench/wrk.lua \
        "http://127.0.0.1:$port/mcp" | tail -1)
      echo "  $read: $line"
      echo "{\"backend\":\"$backend\",\"entities\":$size,\"read\":\"$read\",\"delete_kept_ms\":$kept_ms,\"delete_not_kept_ms\":$not_kept_ms,\"peak_rss_kib\":$(rss_kib "$pid" VmHWM),${line#\{}" >>"$results"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done

report() {
  python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rows if r["bad"] or r["errors"] or not r["requests"]]
if bad:
    sys.exit(f"invalid measurements: {bad}")
print("| backend | entities | read | req/s | p50 ms | p99 ms | reply bytes | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['backend']} | {r['entities']} | {r['read']} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
          f"{r['reply_bytes']} | {r['peak_rss_kib'] / 1024:.0f} |")
print("\nDeletions (delete_entities of 100 names a call, each entity with two observations and two relations):\n")
print("| backend | entities | ms per entity, kept as history | ms per entity, history triggers off |")
print("|---|---|---|---|")
for r in rows:
    if r["read"] == "search":
        print(f"| {r['backend']} | {r['entities']} | {r['delete_kept_ms']} | {r['delete_not_kept_ms']} |")
PY
}
if $smoke; then
  report >/dev/null
  echo "smoke run: every measurement valid"
else
  bench_publish time "Reads by time over HTTP (wrk, one connection)" \
    "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), 1 thread, 1 connection, ${seconds} s a read, on the same two cores as the server. Graph: imported entities with two observations each and a chain of relations; a tenth then deleted. asOf is a moment before the deletions."
fi
