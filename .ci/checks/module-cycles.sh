#!/usr/bin/env bash
# The crate's modules import each other without cycles and keep the layers lib.rs states
# (scripts/module-cycles.py parses src/; no build needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 scripts/module-cycles.py
