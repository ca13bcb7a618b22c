# shellcheck shell=bash
# Copies the Nix-generated CI pipelines into the work tree (run from the repository root).
set -euo pipefail
cp -r --no-preserve=mode "$GENERATED"/. .
echo "wrote .github/workflows/ and .gitlab-ci.yml"
