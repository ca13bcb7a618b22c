#!/usr/bin/env bash
# Retrieval quality on the labelled set in bench/retrieval/ (bench/retrieval.py): recall@5 and
# MRR of every search mode our server has, on SQLite and on PostgreSQL, and of the reference
# server's substring search. Writes bench/results/<date>-retrieval.{md,jsonl}.
#
#   bench/retrieval.sh           on the soak build
#   bench/retrieval.sh --smoke   on a debug build; checks the set and every run (CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source bench/lib.sh

if $smoke; then profile=dev dir=debug; else profile=${BENCH_PROFILE:-soak} dir=${BENCH_PROFILE:-soak}; fi
modes=${RETRIEVAL_MODES:-substring,lexical,semantic,hybrid}
embedding_model

log "build ($profile)"
cargo build --locked --profile "$profile" --bin mcp-server
bin=$PWD/target/$dir
npm_tool @modelcontextprotocol/server-memory@2026.8.31
reference=$TOOLS_DIR/npm/node_modules/@modelcontextprotocol/server-memory/dist/index.js

bench_workspace retrieval
psql -q "$pg/postgres" -c "create database $db"
DATABASE_URL=$pg/$db "$bin/mcp-server" migrate >/dev/null
run() { # LABEL MODES COMMAND...: one JSON line per mode, labelled
  local label=$1 modes=$2
  shift 2
  python3 bench/retrieval.py --modes "$modes" -- "$@" | while read -r line; do
    echo "  $label: $line"
    echo "{\"server\":\"$label\",${line#\{}" >>"$results"
  done
}
log "runs"
mkdir -p "$work/sqlite"
embeddings=(EMBEDDINGS=local EMBEDDING_MODEL_DIR="$MCP_TEST_EMBEDDING_MODEL_DIR")
run mcp-server-sqlite "$modes" env "${embeddings[@]}" DATA_DIR="$work/sqlite" LOG_LEVEL=warn "$bin/mcp-server" stdio
run mcp-server-postgres "$modes" env "${embeddings[@]}" DATABASE_URL="$pg/$db" LOG_LEVEL=warn "$bin/mcp-server" stdio
run reference substring env MEMORY_FILE_PATH="$work/reference.jsonl" node "$reference"

report() {
  python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{rows[0]['entities']} memories, {rows[0]['queries']} questions (bench/retrieval/), none a substring of its target.\n")
print("| server | mode | recall@5 | MRR | found at all |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['server']} | {r['mode']} | {r['recall_at_5']:.3f} | {r['mrr']:.3f} | {r['found']}/{r['queries']} |")
PY
}
if $smoke; then
  report >/dev/null
  echo "smoke run: the set and every run valid"
else
  bench_publish retrieval "Retrieval quality on the labelled set" "Modes: $modes."
fi
