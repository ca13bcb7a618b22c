#!/usr/bin/env bash
# Search by meaning's costs with the local model (bench/semantic.py), on SQLite and PostgreSQL:
# how fast the background indexer embeds (SEMANTIC_INDEX, 2,000 new entities: entities a second,
# CPU per entity, peak RSS), and semantic search p50/p99 and peak RSS with SEMANTIC_SIZES
# ("10000 100000 1000000") entities holding random vectors, also by time (asOf, since:
# SEMANTIC_TIMED_CALLS each, default 20). Writes
# bench/results/<date>-semantic.{md,jsonl}.
#
#   bench/semantic.sh           on the soak build
#   bench/semantic.sh --smoke   a few entities on a debug build (CI runs it)
#   SEMANTIC_COMPARE="a=BIN b=BIN" bench/semantic.sh
#                               binaries built elsewhere, compared within the run: each size's
#                               database is seeded once and searched by each in turn
#   SEMANTIC_BACKENDS=postgres  one backend (default "sqlite postgres")
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source bench/lib.sh

if $smoke; then
  profile=dev dir=debug indexed=50 sizes=(500) calls=20
else
  profile=${BENCH_PROFILE:-soak} dir=${BENCH_PROFILE:-soak} indexed=${SEMANTIC_INDEX:-2000} calls=${SEMANTIC_CALLS:-500}
  read -ra sizes <<<"${SEMANTIC_SIZES:-10000 100000 1000000}"
fi

read -ra compare <<<"${SEMANTIC_COMPARE:-}"
read -ra backends <<<"${SEMANTIC_BACKENDS:-sqlite postgres}"
if ((${#compare[@]})); then
  profile="(the binaries compared: ${compare[*]})"
else
  log "build ($profile)"
  cargo build --locked --profile "$profile" --bin mcp-server
  compare=("$profile=$PWD/target/$dir/mcp-server")
fi
bin=${compare[0]#*=}
embedding_model
pip_tool numpy==2.4.6
# The id the server gives the model's vectors (embed::local): its weights' hash.
model=local:sha256:$(sha256sum "$MCP_TEST_EMBEDDING_MODEL_DIR/model.safetensors" | cut -c1-16)

bench_workspace semantic
fresh() { # BACKEND NAME: a new, migrated database; prints its URL
  local url
  if [[ $1 == sqlite ]]; then url=sqlite://$work/$2.db; else
    psql -q "$pg/postgres" -c "drop database if exists $db with (force)" -c "create database $db"
    url=$pg/$db
  fi
  DATABASE_URL=$url "$bin" migrate >/dev/null
  echo "$url"
}
run() { # BACKEND VARIANT PHASE ARGS...: one JSON line, labelled
  local backend=$1 variant=$2 line
  shift 2
  line=$(python3 bench/semantic.py "$@")
  echo "  $backend $variant: $line"
  echo "{\"backend\":\"$backend\",\"variant\":\"$variant\",${line#\{}" >>"$results"
}
# Room for a million vectors however they are kept (float32 took ~1.5 GiB, int8 ~0.4 GiB).
embeddings=(env EMBEDDINGS=local EMBEDDING_MODEL_DIR="$MCP_TEST_EMBEDDING_MODEL_DIR" VECTOR_CACHE_BYTES=4294967296 LOG_LEVEL=warn)
for backend in "${backends[@]}"; do
  log "$backend: indexing $indexed entities"
  url=$(fresh "$backend" index)
  run "$backend" "${compare[0]%%=*}" index --entities "$indexed" --db "$url" -- "${embeddings[@]}" DATABASE_URL="$url" "$bin" stdio
  for size in "${sizes[@]}"; do
    url=$(fresh "$backend" "search-$size")
    seeded=()
    for variant in "${compare[@]}"; do
      log "$backend: semantic search among $size entities (${variant%%=*})"
      run "$backend" "${variant%%=*}" search --entities "$size" --db "$url" --model "$model" --calls "$calls" \
        --timed-calls "${SEMANTIC_TIMED_CALLS:-20}" --bin "$bin" --work "$work" "${seeded[@]}" -- "${embeddings[@]}" DATABASE_URL="$url" "${variant#*=}" stdio
      seeded=(--seeded)
    done
    [[ $backend == sqlite ]] && rm -f "$work/search-$size.db"*
  done
done

report() {
  python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("Indexing (all-MiniLM-L6-v2 in process, batches of EMBEDDINGS_BATCH=32):\n")
print("| backend | entities | written in | indexed in | entities/s | CPU ms/entity | peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if r["phase"] == "index":
        print(f"| {r['backend']} | {r['entities']} | {r['writes_s']} s | {r['indexed_s']} s | {r['entities_per_s']} | {r['cpu_ms_per_entity']} | {r['peak_rss_mib']} |")
print("\nSemantic search, limit 10, query vectors cached (random unit vectors, 384 dimensions);")
print("by time: the same with asOf (now) and with since (keeping every entity), each reading the graph then:\n")
print("| backend | binary | entities | first search | p50 ms | p99 ms | calls | asOf p50 / p99 ms | since p50 / p99 ms | calls by time | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["phase"] == "search":
        by_time = (f"{r['as_of_p50_ms']} / {r['as_of_p99_ms']} | {r['since_p50_ms']} / {r['since_p99_ms']} | {r['timed_calls']}"
                   if "timed_calls" in r else "| |")
        print(f"| {r['backend']} | {r['variant']} | {r['entities']} | {r['first_search_s']} s | {r['p50_ms']} | {r['p99_ms']} | {r['calls']} | {by_time} | {r['peak_rss_mib']} |")
PY
}
if $smoke; then
  report >/dev/null
  echo "smoke run: every phase ran"
else
  bench_publish semantic "Search by meaning: indexing and search costs" "Model $model."
fi
