#!/usr/bin/env bash
# Backup and restore at BACKUP_ENTITIES (100k) entities on each backend of BACKUP_BACKENDS
# ("sqlite postgres"): the seconds `mcp-server backup` takes, the backup file's size, and the
# seconds `mcp-server restore` takes into a fresh database of the same backend. The graph is
# seeded with `mcp-server import` (the bench-stdio shape: `entity-000123`, a type, two
# observations; and a relation from every even entity to the next), not timed.
#
#   bench/backup.sh          profile soak (release without fat LTO)
#   BACKUP_PROFILE=dev ...   a debug build (quick, slower figures)
#   BACKUP_SERVER=path ...   measure a binary built elsewhere
#
# Prints one Markdown table row per backend. PostgreSQL: BENCH_PG, default
# postgres://postgres@127.0.0.1:5432.
set -euo pipefail
export PGOPTIONS=--client-min-messages=warning
cd "$(dirname "$0")/.."
source scripts/lib.sh

pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
entities=${BACKUP_ENTITIES:-100000} backends=${BACKUP_BACKENDS:-sqlite postgres}
profile=${BACKUP_PROFILE:-soak}
dir=$profile
[[ $profile == dev ]] && dir=debug

if [[ -z ${BACKUP_SERVER:-} ]]; then
  log "build ($profile)"
  cargo build --locked --profile "$profile" --bin mcp-server
fi
server=${BACKUP_SERVER:-${CARGO_TARGET_DIR:-target}/$dir/mcp-server}

work=$(mktemp -d)
cleanup() {
  for db in mcp_backup_src_$$ mcp_backup_dst_$$; do
    psql -q "$pg/postgres" -c "drop database if exists $db with (force)" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

log "seed file: $entities entities"
python3 - "$entities" >"$work/seed.jsonl" <<'EOF'
import json, sys
n = int(sys.argv[1])
for i in range(n):
    print(json.dumps({"type": "entity", "name": f"entity-{i:06}", "entityType": f"type-{i % 10}",
                      "observations": [f"works on topic-{i % 100} since 2023", f"tag t{i:06}x"]}))
for i in range(0, n - 1, 2):
    print(json.dumps({"type": "relation", "from": f"entity-{i:06}", "to": f"entity-{i + 1:06}",
                      "relationType": "next"}))
EOF

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
fresh_pg() {
  psql -q "$pg/postgres" -c "drop database if exists $1 with (force)" -c "create database $1" >/dev/null
  echo "$pg/$1"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "machine: $(nproc) cores, $cpu; $(date -u +%FT%TZ); $(git rev-parse --short HEAD)"
rows=()
for backend in $backends; do
  if [[ $backend == postgres ]]; then
    src=$(fresh_pg mcp_backup_src_$$) dst=$(fresh_pg mcp_backup_dst_$$)
  else
    src=sqlite://$work/src.db dst=sqlite://$work/dst.db
  fi
  log "$backend: seed"
  DATABASE_URL=$src LOG_LEVEL=warn "$server" migrate >/dev/null
  DATABASE_URL=$src LOG_LEVEL=warn "$server" import "$work/seed.jsonl" 2>&1 | tail -1
  log "$backend: backup"
  start=$(now)
  DATABASE_URL=$src LOG_LEVEL=warn "$server" backup "$work/$backend.bak"
  backup_s=$(since "$start")
  mib=$(python3 -c "import os, sys; print(f'{os.path.getsize(sys.argv[1]) / 2**20:.1f}')" "$work/$backend.bak")
  log "$backend: restore into a fresh database"
  DATABASE_URL=$dst LOG_LEVEL=warn "$server" migrate >/dev/null
  start=$(now)
  DATABASE_URL=$dst LOG_LEVEL=warn "$server" restore "$work/$backend.bak"
  restore_s=$(since "$start")
  rows+=("| $backend | $entities | $backup_s | $mib | $restore_s |")
done

echo
echo "| backend | entities | backup s | file MiB | restore s |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
