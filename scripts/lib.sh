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
