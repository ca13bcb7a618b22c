# shellcheck shell=bash
# Deploys this revision: push the image, render the manifests with its tag, apply them
# server-side (pruning what we no longer render), wait for the rollout, smoke-test, and roll
# back on failure. Blue-green: deploy the idle colour, smoke it, then switch the Service.
# Canary: Argo Rollouts runs the steps and the analysis; we watch and abort on failure.
#
# From the app: ENVIRONMENT_NAME IMAGE_STREAM IMAGE_SUFFIX OBJECTS RENDER HOST STRATEGY.
# From the caller: REGISTRY IMAGE (where to push), optional SMOKE_TOKEN, KUBECONFIG.
# usage: deploy-<environment> [--dry-run] [--force]
set -euo pipefail

dry_run=false force=false
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=true ;;
    --force) force=true ;;
    *) echo "usage: deploy-$ENVIRONMENT_NAME [--dry-run] [--force]" >&2; exit 2 ;;
  esac
done
: "${REGISTRY:?set REGISTRY, e.g. ghcr.io}" "${IMAGE:?set IMAGE, e.g. example/mcp-server}"
namespace=mcp
selector=app.kubernetes.io/part-of=mcp-server

if [[ $ENVIRONMENT_NAME == production ]] && ! $force; then
  tag=$(git describe --exact-match --tags HEAD 2>/dev/null || true)
  if [[ $tag != v* ]]; then
    echo "refusing to deploy production from a commit without a v* tag (pass --force to override)" >&2
    exit 1
  fi
fi

sha=$(git rev-parse --short=12 HEAD)
ref="$REGISTRY/$IMAGE:$sha$IMAGE_SUFFIX"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$RENDER" "$OBJECTS" "$work/manifests" --image "$ref"

if $dry_run; then
  echo "dry run: the changes $ENVIRONMENT_NAME would get (image $ref)"
  kubectl diff --server-side -f "$work/manifests" || [[ $? == 1 ]]
  exit 0
fi

echo "pushing $ref"
"$IMAGE_STREAM" >"$work/image.tar"
skopeo copy --quiet "docker-archive:$work/image.tar" "docker://$ref"

# Server-side apply; objects we no longer render (labelled as ours) are pruned.
apply() {
  kubectl apply --server-side --force-conflicts --prune -l "$selector" -f "$1"
}
smoke() {
  mcp-server smoke "$1" ${SMOKE_TOKEN:+--token "$SMOKE_TOKEN"}
}

case $STRATEGY in
  rolling)
    apply "$work/manifests"
    if ! kubectl -n "$namespace" rollout status deployment/mcp-server --timeout=10m || ! smoke "https://$HOST/mcp"; then
      echo "deploy failed: rolling back" >&2
      kubectl -n "$namespace" rollout undo deployment/mcp-server
      kubectl -n "$namespace" rollout status deployment/mcp-server --timeout=10m
      exit 1
    fi
    ;;
  blue-green)
    active=$(kubectl -n "$namespace" get service mcp-server -o 'jsonpath={.spec.selector.version}' 2>/dev/null || true)
    idle=$([[ $active == blue ]] && echo green || echo blue)
    echo "active colour: ${active:-none}; deploying $idle"
    # Only the idle colour changes: the live Service and the active colour stay as they are
    # (so nothing is pruned here).
    rm -f "$work/manifests/service-mcp-server.yaml" "$work/manifests/deployment-mcp-server-${active:-none}.yaml"
    kubectl apply --server-side --force-conflicts -f "$work/manifests"
    kubectl -n "$namespace" rollout status "deployment/mcp-server-$idle" --timeout=10m
    kubectl -n "$namespace" port-forward "deployment/mcp-server-$idle" 18000:8000 >"$work/port-forward.log" 2>&1 &
    forward=$!
    sleep 2
    if ! smoke http://127.0.0.1:18000/mcp; then
      kill "$forward"
      echo "the $idle colour failed its smoke test: traffic stays on ${active:-none}" >&2
      kubectl -n "$namespace" rollout undo "deployment/mcp-server-$idle"
      exit 1
    fi
    kill "$forward"
    kubectl -n "$namespace" patch service mcp-server --type merge -p "{\"spec\":{\"selector\":{\"version\":\"$idle\"}}}"
    echo "switched traffic to $idle"
    ;;
  canary)
    apply "$work/manifests"
    if ! kubectl argo rollouts status mcp-server -n "$namespace" --timeout 45m || ! smoke "https://$HOST/mcp"; then
      echo "canary failed: aborting the rollout" >&2
      kubectl argo rollouts abort mcp-server -n "$namespace"
      exit 1
    fi
    ;;
  *) echo "unknown strategy $STRATEGY" >&2; exit 2 ;;
esac
echo "deployed $ref to $ENVIRONMENT_NAME"
