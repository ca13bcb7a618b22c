#!/usr/bin/env bash
# Evaluates everything pure in the flake on a machine that cannot download nixpkgs, through
# ../shared/nix-offline (nixpkgs replaced by an eval-only stub, inputs from local git mirrors):
#   - the lock is accepted (nix flake metadata);
#   - the output attribute names are the intended ones;
#   - the image config (user, ports, entrypoint, healthcheck) has the intended values;
#   - the kubenix manifests render to exactly the committed deploy/rendered/ (or, with
#     --write, are written there);
#   - the generated CI pipelines equal the committed files (or, with --write, are written);
#   - the NixOS module evaluates against stub option declarations (nix/nixos-eval/test.nix).
# usage: nix/eval-offline.sh MIRRORS_DIR [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
mirrors=${1:?usage: nix/eval-offline.sh MIRRORS_DIR [--write]}
write=${2:-}
export NIX_OFFLINE_MIRRORS=$mirrors
system=x86_64-linux
quiet() { grep -v -e '^• ' -e "^    '" -e '^  → ' -e 'not writing modified lock file' -e '^warning: Git tree' >&2 || true; }
nix_eval() { nix-offline -- eval --json "$@" 2> >(quiet); }
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

echo "== nix flake metadata"
nix-offline -- flake metadata >/dev/null 2> >(quiet)

echo "== output names"
expect() {
  local got
  got=$(nix_eval --apply 'x: builtins.attrNames x' "$1" | tr -d '[]"' | tr ',' ' ')
  if [[ " $got " != *" $2 "* ]]; then echo "FAIL: $1 lacks $2 (has: $got)"; fail=1; fi
}
for attr in packages apps checks devShells formatter legacyPackages; do
  expect ".#$attr" "$system"
done
nix_eval --apply 'builtins.attrNames' .#nixosModules | grep -q '"default"' || { echo "FAIL: nixosModules.default"; fail=1; }
nix_eval --apply 'builtins.attrNames' .#overlays | grep -q '"default"' || { echo "FAIL: overlays.default"; fail=1; }

echo "== image config"
nix_eval ".#legacyPackages.$system.imageConfig" >"$work/image.json"
$python - "$work/image.json" <<'PY' || fail=1
import json, sys
c = json.load(open(sys.argv[1]))
checks = {
    "User": c["User"] == "1000:1000",
    "Entrypoint": c["Entrypoint"] == ["/bin/mcp-server"],
    "Cmd": c["Cmd"] == ["serve"],
    "ExposedPorts": set(c["ExposedPorts"]) == {"8000/tcp", "9090/tcp"},
    "Env HOST/PORT": {"HOST=0.0.0.0", "PORT=8000"} <= set(c["Env"]),
    "Healthcheck": c["Healthcheck"]["Test"] == ["CMD", "/bin/mcp-server", "healthcheck"],
    "Labels": {"org.opencontainers.image.source", "org.opencontainers.image.revision",
               "org.opencontainers.image.version", "org.opencontainers.image.licenses"} <= set(c["Labels"]),
}
for name, ok in checks.items():
    print(("ok   " if ok else "FAIL ") + name)
sys.exit(0 if all(checks.values()) else 1)
PY

echo "== kubernetes manifests"
variants=$(nix_eval --apply builtins.attrNames ".#legacyPackages.$system.kubernetes" | tr -d '[]"' | tr ',' ' ')
for env in $variants; do
  nix_eval ".#legacyPackages.$system.kubernetes.$env" >"$work/$env.json"
  $python nix/render-yaml.py "$work/$env.json" "$work/rendered/$env"
done
if [[ $write == --write ]]; then
  rm -rf deploy/rendered && mkdir -p deploy && cp -r "$work/rendered" deploy/rendered
  echo "wrote deploy/rendered/"
elif ! diff -ru deploy/rendered "$work/rendered"; then
  echo "FAIL: deploy/rendered/ differs from the modules (nix/eval-offline.sh MIRRORS --write)"; fail=1
else
  echo "ok   deploy/rendered/ matches the modules"
fi

echo "== CI pipelines"
nix_eval ".#legacyPackages.$system.ci" >"$work/ci.json"
mkdir -p "$work/ci"
$python nix/render-ci.py "$work/ci.json" "$work/ci"
if [[ $write == --write ]]; then
  cp -r "$work/ci/." .
  echo "wrote the CI files"
else
  while IFS= read -r file; do
    if ! diff -u "${file#"$work/ci/"}" "$file"; then echo "FAIL: ${file#"$work/ci/"} is out of date"; fail=1; fi
  done < <(find "$work/ci" -type f)
  [[ $fail == 1 ]] || echo "ok   CI files match nix/ci.nix"
fi

echo "== NixOS module (stub options)"
if out=$(nix_eval ".#legacyPackages.$system.nixosModuleTest"); then
  echo "$out" | $python -c 'import json,sys; r=json.load(sys.stdin); [print(("ok   " if v else "FAIL ")+k) for k,v in r.items()]; sys.exit(0 if all(r.values()) else 1)' || fail=1
else
  echo "FAIL: the NixOS module test did not evaluate"; fail=1
fi

exit $fail
