#!/usr/bin/env bash
# The recorded reference responses stay current: replay tests/fixtures/differential.json against
# @modelcontextprotocol/server-memory 2026.8.31 and require byte-identical expected/memory/tools
# fixtures. The SDK and zod are pinned next to it because they write the error texts.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

pins=(@modelcontextprotocol/server-memory@2026.8.31 @modelcontextprotocol/sdk@1.32.2 zod@4.6.7)
npm_tool "${pins[@]}"
# npm_tool only checks presence; the shared prefix may hold other versions (server-memory's own
# ranges float), so enforce the pins.
for spec in "${pins[@]}"; do
  if [[ $(node -p "require('$TOOLS_DIR/npm/node_modules/${spec%@*}/package.json').version") != "${spec##*@}" ]]; then
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR/npm" "${pins[@]}" >/dev/null
    break
  fi
done
export MCP_REFERENCE_SERVER=$TOOLS_DIR/npm/node_modules/@modelcontextprotocol/server-memory/dist/index.js
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - <<'PY'
import json
script = json.load(open("tests/fixtures/differential.json"))
expected = json.load(open("tests/fixtures/differential.expected.json"))
assert len(script) >= 60, f"only {len(script)} calls"
assert len(script) == len(expected), f"{len(script)} calls but {len(expected)} recorded responses"
tools = {"create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
         "delete_relations", "read_graph", "search_nodes", "open_nodes"}
missing = tools - {s["tool"] for s in script}
assert not missing, f"tools never called: {sorted(missing)}"
PY

node tests/differential/replay-reference.mjs --memory-out "$work/memory.jsonl" --tools-list "$work/tools.json" \
  >"$work/expected.json"
status=0
for pair in expected.json:differential.expected.json memory.jsonl:differential.memory.jsonl tools.json:differential.tools.json; do
  if ! diff -u "tests/fixtures/${pair#*:}" "$work/${pair%%:*}"; then
    echo "FAIL: tests/fixtures/${pair#*:} differs from the reference's behaviour (regenerate: see docs/reference-behaviour.md)"
    status=1
  fi
done
((status == 0)) && echo "OK: differential fixtures match the reference ($(python3 -c 'import json; print(len(json.load(open("tests/fixtures/differential.json"))))') calls)"
exit $status
