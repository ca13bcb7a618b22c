# shellcheck shell=bash
# Helpers shared by the harnesses (bench/run, wrk.sh, tenants.sh, scale.sh, retrieval.sh). Source
# it, without arguments; never execute it.

# Read the same way by every harness: its --smoke flag (the sourcing script's first argument) and
# the PostgreSQL server (BENCH_PG).
# shellcheck disable=SC2034 # used by the scripts that source this
smoke=false
[[ ${1:-} == --smoke ]] && smoke=true
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # URL PID: until the URL answers 200 (ours: /health/ready) or any HTTP (peers), 30 s at most
  for _ in $(seq 600); do
    kill -0 "$2" 2>/dev/null || { echo "target died; see its log" >&2; return 1; }
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.05
  done
  echo "target never became ready: $1" >&2
  return 1
}
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; } # user + system, all threads
# The JSON-RPC body of one tools/call, and the headers a Streamable HTTP client sends with it.
tool_call_body() { # TOOL ARGUMENTS_JSON
  printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":%s}}' "$1" "$2"
}
# shellcheck disable=SC2034 # used by the scripts that source this
mcp_headers=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'
  -H 'mcp-protocol-version: 2025-11-25')

# bench_workspace NAME: $work (a temporary directory), $results in it, and $db (a PostgreSQL
# database name for this run, at $pg); at exit, jobs still running stop and both are removed.
bench_workspace() {
  work=$(mktemp -d) db=mcp_bench_$1_$$
  results=$work/results.jsonl
  trap bench_cleanup EXIT
}
bench_cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$pg/postgres" -c "drop database if exists $db with (force)" 2>/dev/null || true
  rm -rf "$work"
}

# bench_publish KIND TITLE DESCRIPTION: the run as bench/results/<date>-KIND.{jsonl,md} (a later
# run the same day gets -2, -3, …): the title, machine, commit and $profile, the description,
# then what the sourcing script's `report` prints.
bench_publish() {
  local day name n=1
  day=$(date -u +%F) name=$day-$1
  while [[ -e bench/results/$name.md ]]; do n=$((n + 1)) name=$day-$1-$n; done
  cp "$results" "bench/results/$name.jsonl"
  {
    echo "# $2, $day"
    echo
    echo "Machine: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, $(. /etc/os-release; echo "$PRETTY_NAME");"
    # shellcheck disable=SC2154 # $profile is the sourcing script's
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)'), profile $profile. $3"
    echo
    report
  } >"bench/results/$name.md"
  echo "wrote bench/results/$name.md"
}
