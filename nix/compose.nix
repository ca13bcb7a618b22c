# The single-host Docker Compose deployment: deploy/compose/{docker-compose.prod.yml,nginx.conf,
# .env.example}. `files` is pure (nix/eval.sh compares it with the committed files); `tree`
# renders it with nix/render-compose.py, the converter that wrote them, for the drift check.
#
# The replicas are one service with `deploy.replicas`, not three named copies: Compose waits for
# every replica's health check before the proxy starts, Docker's DNS answers `mcp-server` with
# every replica, and nginx re-resolves that name, so `--scale` needs no config change.
{ pkgs, version }:
let
  inherit (pkgs) lib;
  replicas = 3;
  # Secrets come from deploy/compose/.env (Compose reads it for interpolation and env_file):
  # the compose file names them, never holds them, and refuses to start while one is empty.
  required = name: "\${${name}:?set ${name} in deploy/compose/.env}";
  secrets = [
    "DB_PASSWORD"
    "REDIS_PASSWORD"
    "JWT_SECRET"
  ];

  logging = {
    driver = "json-file";
    options = {
      max-size = "10m";
      max-file = "3";
    };
  };
  limits = cpus: memory: { resources.limits = { inherit cpus memory; }; };
  seconds = s: "${toString s}s";
  health = test: {
    inherit test;
    interval = seconds 10;
    timeout = seconds 3;
    retries = 3;
    start_period = seconds 10;
  };
  # The proxy's and the collector's images have wget, not curl.
  httpHealth = url: health [ "CMD" "wget" "-q" "-O" "/dev/null" url ];
  when = condition: names: lib.genAttrs names (_: { inherit condition; });
  # Every service: restart, bounded logs, no privilege gain through setuid binaries.
  service =
    attrs:
    {
      restart = "unless-stopped";
      inherit logging;
      security_opt = [ "no-new-privileges:true" ];
    }
    // attrs;
  # Ours and the non-root third-party ones need no capability at all.
  unprivileged = attrs: service ({ cap_drop = [ "ALL" ]; } // attrs);

  # The image from `nix build .#image` loads as mcp-server:<version>; MCP_IMAGE picks another.
  server = {
    image = "\${MCP_IMAGE:-mcp-server:${version}}";
    user = "1000:1000";
    read_only = true;
    tmpfs = [ "/tmp" ];
    env_file = [ ".env" ];
    environment = {
      ENVIRONMENT = "production";
      DB_HOST = "postgres";
      DB_USER = "\${DB_USER:-mcp}";
      DB_NAME = "\${DB_NAME:-mcp}";
      REDIS_HOST = "redis";
      RATE_LIMIT_ENABLED = "true";
      OTEL_EXPORTER_OTLP_ENDPOINT = "http://jaeger:4318";
      OTEL_SERVICE_NAME = "mcp-server";
    };
  };

  compose = {
    name = "mcp-server";
    services = {
      # One-shot: the schema is migrated once, before any replica starts (serve refuses an
      # unknown schema). Its exit status is its health.
      migrate = unprivileged (
        server
        // {
          command = [ "migrate" ];
          restart = "no";
          healthcheck.disable = true;
          depends_on = when "service_healthy" [ "postgres" ];
          deploy = limits "0.5" "256M";
        }
      );

      mcp-server = unprivileged (
        server
        // {
          command = [ "serve" ];
          # Readiness, not liveness: "healthy" means the replica can serve (database reachable,
          # schema current). Compose never restarts an unhealthy container, so no restart loop.
          healthcheck = health [
            "CMD"
            "/bin/mcp-server"
            "healthcheck"
            "--url"
            "http://127.0.0.1:8000/health/ready"
          ];
          # SHUTDOWN_DELAY 5 s + SHUTDOWN_TIMEOUT 25 s of draining, then a margin; Docker's
          # default 10 s would kill requests mid-drain.
          stop_grace_period = seconds 40;
          depends_on =
            when "service_healthy" [
              "postgres"
              "redis"
            ]
            // when "service_completed_successfully" [ "migrate" ]
            # Traces are best effort: a collector that is down must not stop serving.
            // when "service_started" [ "jaeger" ];
          deploy = {
            inherit replicas;
          }
          // limits "1.0" "1G";
        }
      );

      proxy = service {
        image = "docker.io/library/nginx:1.28.0-alpine";
        # The prefix holds the pid file and temp dirs (relative in nginx.conf), on a tmpfs.
        command = [
          "nginx"
          "-p"
          "/var/cache/nginx/"
          "-c"
          "/etc/nginx/nginx.conf"
          "-g"
          "daemon off;"
        ];
        read_only = true;
        tmpfs = [ "/var/cache/nginx" ];
        volumes = [ "./nginx.conf:/etc/nginx/nginx.conf:ro" ];
        ports = [ "\${HTTP_PORT:-8000}:8080" ];
        # The master switches its workers to the nginx user and chowns their temp dirs.
        cap_drop = [ "ALL" ];
        cap_add = [
          "CHOWN"
          "SETGID"
          "SETUID"
        ];
        healthcheck = httpHealth "http://127.0.0.1:8080/nginx-health";
        depends_on = when "service_healthy" [ "mcp-server" ];
        deploy = limits "0.5" "128M";
      };

      postgres = unprivileged {
        image = "docker.io/library/postgres:15.10";
        user = "999:999";
        environment = {
          POSTGRES_USER = "\${DB_USER:-mcp}";
          POSTGRES_PASSWORD = required "DB_PASSWORD";
          POSTGRES_DB = "\${DB_NAME:-mcp}";
        };
        volumes = [ "postgres-data:/var/lib/postgresql/data" ];
        healthcheck = health [
          "CMD-SHELL"
          "pg_isready -U \"$$POSTGRES_USER\" -d \"$$POSTGRES_DB\""
        ];
        deploy = limits "1.0" "1G";
      };

      # The password reaches redis-server through the container's shell, not the command line
      # Compose stores; REDISCLI_AUTH keeps it off redis-cli's arguments too.
      redis = unprivileged {
        image = "docker.io/library/redis:7.2";
        user = "999:999";
        environment.REDIS_PASSWORD = required "REDIS_PASSWORD";
        command = [
          "sh"
          "-c"
          "exec redis-server --requirepass \"$$REDIS_PASSWORD\" --dir /data --appendonly yes"
        ];
        volumes = [ "redis-data:/data" ];
        healthcheck = health [
          "CMD-SHELL"
          "REDISCLI_AUTH=\"$$REDIS_PASSWORD\" redis-cli ping | grep -q PONG"
        ];
        deploy = limits "0.5" "512M";
      };

      # Jaeger v2 all-in-one: OTLP/HTTP on 4318 for the replicas, the UI on the host's loopback
      # only (it has no authentication).
      jaeger = unprivileged {
        image = "docker.io/jaegertracing/jaeger:2.15.0";
        command = [
          "--set"
          "receivers.otlp.protocols.http.endpoint=0.0.0.0:4318"
        ];
        ports = [ "127.0.0.1:16686:16686" ];
        healthcheck = httpHealth "http://127.0.0.1:13133/status";
        deploy = limits "0.5" "512M";
      };
    };
    volumes = {
      postgres-data = { };
      redis-data = { };
    };
  };

  # Round robin over every address Docker's DNS (127.0.0.11) gives for mcp-server; the name is
  # in a variable so nginx resolves it at run time (every 5 s), not once at start.
  nginxConf = ''
    worker_processes auto;
    error_log stderr warn;
    pid nginx.pid;
    events {
      worker_connections 1024;
    }
    http {
      default_type application/octet-stream;
      access_log /dev/stdout;
      client_body_temp_path client_body;
      proxy_temp_path proxy;
      fastcgi_temp_path fastcgi;
      uwsgi_temp_path uwsgi;
      scgi_temp_path scgi;
      server_tokens off;
      resolver 127.0.0.11 valid=5s ipv6=off;
      # Above MAX_BODY_BYTES, so the server's 413 (naming the limit) is what clients see.
      client_max_body_size 2m;
      server {
        listen 8080;
        location = /nginx-health {
          access_log off;
          return 200 "ok\n";
        }
        location / {
          set $replicas mcp-server:8000;
          proxy_pass http://$replicas;
          proxy_http_version 1.1;
          proxy_set_header Connection "";
          proxy_set_header Host $host;
          proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
          # SSE: stream events as they come, keep long-lived streams open.
          proxy_buffering off;
          proxy_cache off;
          proxy_read_timeout 1h;
          # A replica that refuses or drains: try another (POSTs only if not yet sent).
          proxy_next_upstream error timeout http_503;
        }
      }
    }
  '';

  envExample = ''
    # Copy to deploy/compose/.env (git-ignored) and fill in; the empty secrets refuse to start.
    # Generate each with: openssl rand -hex 32
    ${lib.concatMapStrings (s: "${s}=\n") secrets}
    # The public host (behind your TLS terminator) and the token audience.
    ALLOWED_HOSTS=mcp.example.com,localhost,127.0.0.1
    MCP_RESOURCE_URL=https://mcp.example.com/mcp
    # Optional: DB_USER, DB_NAME (default mcp), HTTP_PORT (default 8000), MCP_IMAGE, and any
    # other server setting from the README's Configuration table.
  '';

  files = {
    "docker-compose.prod.yml" = compose;
    "nginx.conf" = nginxConf;
    ".env.example" = envExample;
  };
  python = pkgs.python3.withPackages (ps: [ ps.pyyaml ]);
in
{
  inherit files;
  tree = pkgs.runCommand "mcp-server-compose" { nativeBuildInputs = [ python ]; } ''
    python3 ${./render-compose.py} ${pkgs.writeText "compose.json" (builtins.toJSON files)} $out
  '';
  committed = lib.fileset.toSource {
    root = ../deploy/compose;
    fileset = lib.fileset.unions (map (f: ../deploy/compose + "/${f}") (lib.attrNames files));
  };
}
