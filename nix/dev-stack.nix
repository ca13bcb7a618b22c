# `nix run .#dev-stack`: the Nix replacement for the guide's docker-compose files. PostgreSQL,
# Redis (with a password generated into the state dir, never into the store), an OTLP trace
# collector where nixpkgs has one, three server replicas built from the work tree and restarted
# when the build changes (hot reload), and a round-robin nginx on :8000 in front of them.
# State lives in ./.state/dev-stack; Ctrl-C stops everything.
{ pkgs }:
let
  inherit (pkgs) lib;
  replicas = [ 1 2 3 ];
  collector = lib.optionalString (pkgs ? jaeger) ''
    jaeger:
      command: ${pkgs.jaeger}/bin/jaeger --config=""
      is_daemon: false
  '';
  replica = n: ''
    replica-${toString n}:
      command: >-
        watchexec --restart --watch target/debug/mcp-server --
        env PORT=${toString (8000 + n)} METRICS_PORT=${toString (9090 + n)} target/debug/mcp-server serve
      depends_on:
        build: { condition: process_log_ready }
        postgres: { condition: process_healthy }
        redis: { condition: process_started }
  '';
  nginxConf = pkgs.writeText "dev-stack-nginx.conf" ''
    daemon off;
    worker_processes 1;
    error_log stderr;
    pid @STATE@/nginx.pid;
    events { }
    http {
      access_log off;
      client_body_temp_path @STATE@/nginx;
      proxy_temp_path @STATE@/nginx;
      upstream replicas { ${lib.concatMapStrings (n: "server 127.0.0.1:${toString (8000 + n)}; ") replicas}}
      server {
        listen 127.0.0.1:8000;
        location / {
          proxy_pass http://replicas;
          proxy_buffering off;
          proxy_read_timeout 1h;
          proxy_next_upstream error timeout http_503;
        }
      }
    }
  '';
in
pkgs.writeShellApplication {
  name = "dev-stack";
  runtimeInputs = with pkgs; [
    process-compose
    postgresql
    redis
    nginx
    watchexec
    cargo-watch
    openssl
    coreutils
    gnused
    rustc
    cargo
  ];
  text = ''
    state=$PWD/.state/dev-stack
    mkdir -p "$state/nginx"
    [[ -f $state/redis-password ]] || (umask 077; openssl rand -hex 24 >"$state/redis-password")
    [[ -d $state/pg ]] || initdb --username=postgres --auth=trust --no-instructions -D "$state/pg" >/dev/null
    sed "s|@STATE@|$state|g" ${nginxConf} >"$state/nginx.conf"
    REDIS_PASSWORD=$(<"$state/redis-password")
    export REDIS_PASSWORD
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres MIGRATE_ON_START=true
    export REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:6379" RATE_LIMIT_ENABLED=true
    export LOG_FORMAT=pretty OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
    cat >"$state/process-compose.yaml" <<YAML
    version: "0.5"
    processes:
      postgres:
        command: postgres -D $state/pg -k $state -c listen_addresses=127.0.0.1
        readiness_probe:
          exec: { command: "pg_isready -h 127.0.0.1" }
      redis:
        command: redis-server --bind 127.0.0.1 --port 6379 --requirepass "\$REDIS_PASSWORD" --dir $state
      build:
        command: cargo watch --watch src --watch migrations --exec build
        ready_log_line: Finished
      nginx:
        command: nginx -c $state/nginx.conf -e stderr
    ${lib.concatMapStrings (n: lib.replaceStrings [ "\n" ] [ "\n  " ] ("  " + replica n)) replicas}
    ${lib.replaceStrings [ "\n" ] [ "\n  " ] ("  " + collector)}
    YAML
    exec process-compose up --config "$state/process-compose.yaml"
  '';
}
