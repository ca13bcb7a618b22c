# `nix develop`: the checks' toolchain plus what day-to-day work and the guide's hot-reload
# development image need.
{
  pkgs,
  craneLib,
  checks,
}:
craneLib.devShell {
  inherit checks;
  packages = with pkgs; [
    rust-analyzer
    sqlx-cli
    cargo-nextest
    cargo-watch
    bacon
    postgresql
    redis
    kubectl
    kubeconform
    skopeo
    process-compose
    nodejs_22
  ];
  # Tests find the dev stack's services (nix run .#dev-stack) by these.
  MCP_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";
  MCP_TEST_REDIS_URL = "redis://127.0.0.1:6379";
}
