#!/usr/bin/env bash
# Evaluates the flake against real inputs offline (../shared/nix-offline/flake-check: the real
# crane, kubenix, treefmt-nix, advisory-db and a near-real nixpkgs), building nothing:
#   - `nix flake check --no-build`: every package, check, app, devShell, module and VM test
#     instantiates (its output names the package and image derivations);
#   - the README's NixOS example host (nix/examples/mcp.nix, byte-identical to the README block)
#     instantiates its system toplevel;
#   - the NixOS module's properties in real NixOS configurations (nix/nixos-eval/test.nix);
#   - the kubenix modules refuse contradictory settings (nix/kubernetes-eval/test.nix);
#   - the image config (user, ports, entrypoint, healthcheck);
#   - the kubenix manifests equal deploy/rendered/, the dashboard, alert rules and their metric
#     list deploy/monitoring/, the compose files deploy/compose/, the CI pipelines the
#     committed files (or, with --write, are written there).
# usage: nix/eval.sh FLAKE_CHECK [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
flake_check=${1:?usage: nix/eval.sh PATH/TO/flake-check [--write]}
write=${2:-}
system=x86_64-linux
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
quiet() { grep -v -e '^• ' -e "^    '" -e '^  → ' -e 'not writing modified lock file' -e '^warning: Git tree' >&2 || true; }

echo "== nix flake check --no-build"
if "$flake_check" --flake . >"$work/check.log" 2>&1; then
  for pkg in default image; do
    drv=$(grep -A1 "^checking derivation packages.$system.$pkg\.\.\.\$" "$work/check.log" | sed -n 's/^derivation evaluated to //p')
    if [[ $drv == /nix/store/*.drv ]]; then echo "ok   packages.$pkg: $drv"; else echo "FAIL: no drvPath for packages.$pkg"; fail=1; fi
  done
  if grep -q -- '-mcp-server-audit-[0-9.]*\.drv$' "$work/check.log"; then echo "ok   checks.audit is named"; else echo "FAIL: checks.audit has no pname"; fail=1; fi
  echo "ok   $(grep -c '^derivation evaluated to' "$work/check.log") derivations instantiate; $(tail -n 3 "$work/check.log" | grep -m1 'checks passed' || true)"
else
  grep -v -e '^checking ' -e '^derivation evaluated' "$work/check.log" | quiet 2>&1 | tail -n 40
  echo "FAIL: nix flake check --no-build"
  fail=1
fi

echo "== README's NixOS example"
readme_block=$(awk '/^```nix title="mcp.nix"$/ {on=1; next} on && /^```$/ {exit} on' README.md)
if [[ $readme_block == "$(<nix/examples/mcp.nix)" ]]; then
  echo "ok   README's mcp.nix is nix/examples/mcp.nix"
else
  echo "FAIL: README's mcp.nix block differs from nix/examples/mcp.nix"; fail=1
fi

# One evaluation for everything else (each call re-reads nixpkgs).
"$flake_check" --flake . -- eval --json ".#legacyPackages.$system" --apply 'l: {
  inherit (l) imageConfig kubernetes kubernetesModuleTest ci monitoring compose nixosModuleTest;
  exampleHost = l.exampleHost.config.system.build.toplevel.drvPath;
}' >"$work/eval.json" 2> >(quiet) || { echo "FAIL: legacyPackages.$system does not evaluate"; exit 1; }

$python - "$work" "$write" <<'PY' || fail=1
import json, os, subprocess, sys
work, write = sys.argv[1], sys.argv[2]
out = json.load(open(f"{work}/eval.json"))
ok = True
def report(name, good):
    global ok
    print(("ok   " if good else "FAIL ") + name)
    ok &= bool(good)

report(f"example host toplevel: {out['exampleHost']}", out["exampleHost"].endswith(".drv"))

c = out["imageConfig"]
report("image: User 1000:1000", c["User"] == "1000:1000")
report("image: Entrypoint", c["Entrypoint"] == ["/bin/mcp-server"] and c["Cmd"] == ["serve"])
report("image: ExposedPorts", set(c["ExposedPorts"]) == {"8000/tcp", "9090/tcp"})
report("image: Env HOST/PORT", {"HOST=0.0.0.0", "PORT=8000"} <= set(c["Env"]))
report("image: Healthcheck", c["Healthcheck"]["Test"] == ["CMD", "/bin/mcp-server", "healthcheck"])
report("image: OCI labels", {"org.opencontainers.image.source", "org.opencontainers.image.revision",
       "org.opencontainers.image.version", "org.opencontainers.image.licenses"} <= set(c["Labels"]))

for name, good in out["nixosModuleTest"].items():
    report(f"NixOS module: {name}", good)
for name, good in out["kubernetesModuleTest"].items():
    report(name, good)

for env, objects in out["kubernetes"].items():
    path = f"{work}/{env}.json"
    json.dump(objects, open(path, "w"))
    subprocess.run([sys.executable, "nix/render-yaml.py", path, f"{work}/rendered/{env}"], check=True)
mon = f"{work}/monitoring"
os.makedirs(mon)
with open(f"{mon}/dashboard.json", "w") as f:
    json.dump(out["monitoring"]["dashboard"], f, indent=2); f.write("\n")
import yaml
with open(f"{mon}/rules.yml", "w") as f:
    yaml.safe_dump(out["monitoring"]["rules"], f, sort_keys=False, width=1000)
with open(f"{mon}/metrics.txt", "w") as f:
    f.write("".join(name + "\n" for name in out["monitoring"]["metrics"]))
with open(f"{mon}/metrics-embeddings.txt", "w") as f:
    f.write("".join(name + "\n" for name in out["monitoring"]["embeddingMetrics"]))
json.dump(out["compose"], open(f"{work}/compose.json", "w"))
subprocess.run([sys.executable, "nix/render-compose.py", f"{work}/compose.json", f"{work}/compose"], check=True)
json.dump(out["ci"], open(f"{work}/ci.json", "w"))
os.makedirs(f"{work}/ci")
subprocess.run([sys.executable, "nix/render-ci.py", f"{work}/ci.json", f"{work}/ci"], check=True)
sys.exit(0 if ok else 1)
PY

echo "== generated files"
if [[ $write == --write ]]; then
  rm -rf deploy/rendered deploy/monitoring && mkdir -p deploy
  cp -r "$work/rendered" deploy/rendered
  cp -r "$work/monitoring" deploy/monitoring
  # Not rm -rf: deploy/compose/.env is an operator's secrets.
  mkdir -p deploy/compose && cp -r "$work/compose/." deploy/compose/
  cp -r "$work/ci/." .
  echo "wrote deploy/rendered/, deploy/monitoring/, deploy/compose/ and the CI files"
else
  if diff -ru deploy/rendered "$work/rendered"; then
    echo "ok   deploy/rendered/ equals the kubenix modules"
  else
    echo "FAIL: deploy/rendered/ differs from the modules (nix/eval.sh FLAKE_CHECK --write)"; fail=1
  fi
  if diff -ru deploy/monitoring "$work/monitoring"; then
    echo "ok   deploy/monitoring/ equals nix/monitoring.nix"
  else
    echo "FAIL: deploy/monitoring/ differs from nix/monitoring.nix (nix/eval.sh FLAKE_CHECK --write)"; fail=1
  fi
  if diff -ru -x .env deploy/compose "$work/compose"; then
    echo "ok   deploy/compose/ equals nix/compose.nix"
  else
    echo "FAIL: deploy/compose/ differs from nix/compose.nix (nix/eval.sh FLAKE_CHECK --write)"; fail=1
  fi
  while IFS= read -r file; do
    if ! diff -u "${file#"$work/ci/"}" "$file"; then echo "FAIL: ${file#"$work/ci/"} is out of date"; fail=1; fi
  done < <(find "$work/ci" -type f)
  echo "checked the CI files against nix/ci.nix"
fi
exit $fail
