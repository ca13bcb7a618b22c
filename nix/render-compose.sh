# shellcheck shell=bash
# Copies the Nix-rendered compose files into the work tree (run from the repository root); an
# operator's deploy/compose/.env is left alone.
set -euo pipefail
mkdir -p deploy/compose
cp --no-preserve=mode "$GENERATED"/docker-compose.prod.yml "$GENERATED"/nginx.conf "$GENERATED"/.env.example deploy/compose/
echo "wrote deploy/compose/"
