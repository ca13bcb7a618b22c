#!/usr/bin/env bash
# The committed manifests without Nix: schema validation (strict) against two Kubernetes
# versions, the policy test, the deploy scripts with fake kubectl/skopeo, and shellcheck.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
pip_tool pyyaml==6.0.2 kubernetes-validate==1.33.1

status=0
for version in 1.32.0 1.33.0; do
  # Custom resources (Rollout, AnalysisTemplate, ServiceMonitor, PrometheusRule, ExternalSecret, and
  # CloudNativePG's Cluster, ScheduledBackup, ObjectStore) have no schema here: they are typed by
  # the kubenix modules instead. Everything else must validate.
  out=$(kubernetes-validate --strict --kubernetes-version "$version" deploy/rendered/*/*.yaml 2>&1) || status=1
  if grep -v -e '^INFO' -e "Couldn't find schema for kind \(Rollout\|AnalysisTemplate\|ServiceMonitor\|PrometheusRule\|ExternalSecret\|Cluster\|ScheduledBackup\|ObjectStore\)" <<<"$out" | grep .; then
    status=1
  fi
  echo "kubernetes-validate --strict $version: $(grep -c '^INFO' <<<"$out") documents valid"
done
python3 tests/policy/test_policy.py || status=1
python3 tests/deploy/test_deploy.py || status=1
shellcheck -x nix/*.sh scripts/test scripts/lib.sh bench/run bench/*.sh .ci/run .ci/checks/*.sh || status=1
exit $status
