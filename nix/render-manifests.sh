# shellcheck shell=bash
# Copies the Nix-rendered manifests into the work tree (run from the repository root).
set -euo pipefail
rm -rf deploy/rendered
mkdir -p deploy
cp -r --no-preserve=mode "$RENDERED" deploy/rendered
echo "wrote deploy/rendered/ ($(find deploy/rendered -name '*.yaml' | wc -l) files)"
