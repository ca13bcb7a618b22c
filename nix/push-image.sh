# shellcheck shell=bash
# Streams the image into a registry with skopeo: tags the git sha, the branch, and the version
# on v* tags. Needs REGISTRY (e.g. ghcr.io) and IMAGE (e.g. example/mcp-server); registry
# credentials come from skopeo's usual auth file or REGISTRY_AUTH_FILE, never from arguments.
set -euo pipefail
: "${REGISTRY:?set REGISTRY, e.g. ghcr.io}" "${IMAGE:?set IMAGE, e.g. example/mcp-server}"
sha=${GIT_SHA:-$(git rev-parse --short=12 HEAD)}
tags=("$sha")
if [[ -n ${GIT_BRANCH:-} ]]; then tags+=("${GIT_BRANCH//\//-}"); fi
if tag=$(git describe --exact-match --tags HEAD 2>/dev/null) && [[ $tag == v* ]]; then tags+=("${tag#v}"); fi
archive=$(mktemp)
trap 'rm -f "$archive"' EXIT
"$IMAGE_STREAM" >"$archive"
for tag in "${tags[@]}"; do
  skopeo copy --quiet "docker-archive:$archive" "docker://$REGISTRY/$IMAGE:$tag"
  echo "pushed $REGISTRY/$IMAGE:$tag"
done
