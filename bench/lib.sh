# shellcheck shell=bash
# Helpers shared by bench/run and bench/wrk.sh. Source it; never execute it.

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
