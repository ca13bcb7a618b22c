# services.mcp-server: the server as a hardened systemd service (Type=notify), with optional
# local PostgreSQL and Redis over unix sockets and an nginx virtual host.
{ self }:
{
  config,
  options,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption mkIf mkDefault types optional optionals optionalAttrs;
  cfg = config.services.mcp-server;
  common = import ./common.nix { inherit lib pkgs cfg; };
  inherit (common) user environment run hardening;
  settingsFormat = {
    type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.int types.bool ]));
  };

  # network-online.target only when the service reaches beyond this host: it listens on a
  # non-loopback address or a setting names a remote endpoint. An environmentFile may hold such
  # endpoints, so it counts as remote.
  local = v: lib.any (p: lib.hasInfix p (toString v)) [ "127.0.0.1" "localhost" "[::1]" "/run/" "unix:" ];
  remoteSettings = [ "DATABASE_URL" "DB_HOST" "REDIS_URL" "REDIS_HOST" "OAUTH_ISSUER" "OAUTH_JWKS_URL" "OAUTH_INTROSPECTION_URL" "OTEL_EXPORTER_OTLP_ENDPOINT" "JAEGER_HOST" "EMBEDDINGS_URL" ];
  secrets = import ../../nix/secrets.nix;
  reachesNetwork =
    !(lib.elem cfg.settings.HOST [ "127.0.0.1" "::1" "localhost" ])
    || cfg.environmentFile != null
    || lib.any (n: environment ? ${n} && !local environment.${n}) remoteSettings;
  nginxScheme = if cfg.nginx.enableACME then "https" else "http";

  monitoring = import ../../nix/monitoring.nix { inherit lib; };
  rulesFile = pkgs.writeText "mcp-server-rules.yml" (builtins.toJSON monitoring.rules);
  dashboards = pkgs.writeTextDir "mcp-server.json" (builtins.toJSON monitoring.dashboard);

  # The binary validates the rendered settings at build time, so a bad value fails
  # nixos-rebuild instead of the boot (secrets are not available yet: --no-secrets).
  checkedConfig = pkgs.runCommand "mcp-server-config-check" { inherit environment; __structuredAttrs = true; } ''
    source "$NIX_ATTRS_SH_FILE"
    for name in "''${!environment[@]}"; do export "$name=''${environment[$name]}"; done
    ${lib.getExe cfg.package} check-config --no-secrets
    touch $out
  '';

in
{
  imports = [ ./backup.nix ];

  options.services.mcp-server = {
    enable = mkEnableOption "the mcp-server knowledge-graph memory (MCP over Streamable HTTP)";

    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      defaultText = lib.literalExpression "mcp-server.packages.\${system}.default";
      description = "The mcp-server package.";
    };

    settings = mkOption {
      description = ''
        The server's environment variables (see `mcp-server --help`), RFC 42 style: any
        variable may be set; the common ones are typed. Never put secrets here (they would land in
        the world-readable Nix store): use `environmentFile` or `credentials`.
      '';
      default = { };
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          HOST = mkOption { type = types.str; default = "127.0.0.1"; description = "Listen address."; };
          PORT = mkOption { type = types.port; default = 8000; description = "MCP HTTP port."; };
          METRICS_PORT = mkOption { type = types.port; default = 9090; description = "Prometheus metrics port."; };
          LOG_LEVEL = mkOption { type = types.str; default = "info,rmcp=warn"; description = "Log filter (EnvFilter syntax)."; };
          LOG_FORMAT = mkOption { type = types.enum [ "json" "pretty" ]; default = "json"; description = "Log format."; };
          ENVIRONMENT = mkOption { type = types.enum [ "development" "staging" "production" ]; default = "production"; description = "Deployment environment."; };
          RATE_LIMIT_ENABLED = mkOption { type = types.bool; default = false; description = "Per-tenant rate limiting (shared through Redis)."; };
          RATE_LIMIT_REQUESTS_PER_MINUTE = mkOption { type = types.ints.positive; default = 60; description = "Requests per tenant per minute."; };
        };
      };
    };

    # externalPath: an absolute path string outside the store. A path literal (./jwt) would be
    # copied into the world-readable store, so the type refuses it, like a store path.
    environmentFile = mkOption {
      type = types.nullOr types.externalPath;
      default = null;
      example = "/run/secrets/mcp-server.env";
      description = "File with secret variables (JWT_SECRET=…, DB_PASSWORD=…, REDIS_PASSWORD=…, OAUTH_CLIENT_SECRET=…). Must not be in the Nix store.";
    };

    credentials = mkOption {
      type = types.attrsOf types.externalPath;
      default = { };
      example = { JWT_SECRET = "/run/secrets/jwt"; };
      description = "Secret variables loaded with systemd LoadCredential: variable name → file holding the value. Files must not be in the Nix store.";
    };

    database.createLocally = mkOption {
      type = types.bool;
      default = false;
      description = "Create a local PostgreSQL database and role, used over the unix socket with peer authentication. Without any database setting the embedded SQLite file in the state directory is used.";
    };

    redis.createLocally = mkOption {
      type = types.bool;
      default = false;
      description = "Run a local Redis (services.redis.servers.mcp-server) on a unix socket, for rate limits.";
    };

    embeddings.localModel = mkOption {
      type = types.bool;
      default = false;
      description = "Search by meaning with the bundled all-MiniLM-L6-v2 model run in the server (EMBEDDINGS=local, EMBEDDING_MODEL_DIR its store path; ~91 MB, fetched by hash). For an embeddings endpoint instead, set EMBEDDINGS=endpoint, EMBEDDINGS_URL and EMBEDDINGS_MODEL in settings and EMBEDDINGS_API_KEY in environmentFile or credentials.";
    };

    watchdogSec = mkOption {
      type = types.nullOr types.str;
      default = "30s";
      description = "systemd WatchdogSec: the server pings at half this interval while its runtime is responsive; null disables the watchdog. A database outage does not stop the pings (no restart loop).";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open PORT (and METRICS_PORT) in the firewall.";
    };

    monitoring = {
      prometheus = mkEnableOption "scraping by this host's services.prometheus, with the alert rules";
      grafana = mkEnableOption "the dashboard in this host's services.grafana (provisioned)";
    };

    nginx = {
      enable = mkEnableOption "an nginx virtual host in front of the server";
      domain = mkOption { type = types.str; example = "mcp.example.com"; description = "Virtual host name."; };
      enableACME = mkOption { type = types.bool; default = true; description = "Get a certificate with ACME and force HTTPS."; };
    };
  };

  config = mkIf cfg.enable (lib.mkMerge [
    {
      assertions = [
        {
          assertion = cfg.monitoring.prometheus -> options.services ? prometheus;
          message = "services.mcp-server.monitoring.prometheus needs NixOS's services.prometheus module.";
        }
        {
          assertion = !(lib.any (n: lib.elem n secrets) (lib.attrNames environment));
          message = "services.mcp-server.settings holds a secret (${lib.concatStringsSep ", " secrets}): use environmentFile or credentials.";
        }
      ];

      services.mcp-server.settings = {
        DATA_DIR = mkDefault "/var/lib/mcp-server";
      }
      // optionalAttrs cfg.database.createLocally {
        DATABASE_URL = mkDefault "postgres:///${user}?host=/run/postgresql&user=${user}";
        MIGRATE_ON_START = mkDefault false;
      }
      // optionalAttrs cfg.redis.createLocally {
        REDIS_URL = mkDefault "unix://${config.services.redis.servers.mcp-server.unixSocket}";
      }
      // optionalAttrs cfg.embeddings.localModel {
        EMBEDDINGS = mkDefault "local";
        EMBEDDING_MODEL_DIR = mkDefault "${self.packages.${pkgs.stdenv.hostPlatform.system}.embedding-model}";
      }
      # Behind nginx the Host header is the domain, and tokens are for the public URL.
      // optionalAttrs cfg.nginx.enable {
        ALLOWED_HOSTS = mkDefault "localhost,127.0.0.1,::1,${cfg.nginx.domain}";
        MCP_RESOURCE_URL = mkDefault "${nginxScheme}://${cfg.nginx.domain}/mcp";
      };

      services.postgresql = mkIf cfg.database.createLocally {
        enable = true;
        ensureDatabases = [ user ];
        ensureUsers = [
          {
            name = user;
            ensureDBOwnership = true;
          }
        ];
      };

      services.redis.servers.mcp-server = mkIf cfg.redis.createLocally {
        enable = true;
        port = 0;
        unixSocketPerm = 660;
      };

      services.grafana.provision.dashboards.settings.providers = mkIf cfg.monitoring.grafana [
        {
          name = "mcp-server";
          options.path = dashboards;
        }
      ];

      networking.firewall.allowedTCPPorts = optionals cfg.openFirewall [ cfg.settings.PORT cfg.settings.METRICS_PORT ];

      services.nginx = mkIf cfg.nginx.enable {
        enable = true;
        recommendedProxySettings = true;
        recommendedTlsSettings = true;
        virtualHosts.${cfg.nginx.domain} = {
          forceSSL = cfg.nginx.enableACME;
          enableACME = cfg.nginx.enableACME;
          locations = lib.genAttrs [ "/mcp" "/.well-known/oauth-protected-resource" ] (_: {
            proxyPass = "http://${cfg.settings.HOST}:${toString cfg.settings.PORT}";
            # Streamable HTTP answers with SSE: no buffering, long-lived responses.
            extraConfig = ''
              proxy_buffering off;
              proxy_request_buffering off;
              proxy_read_timeout 1h;
              proxy_http_version 1.1;
              client_max_body_size 1m;
            '';
          });
        };
      };

      systemd.services.mcp-server = {
        description = "mcp-server knowledge-graph memory";
        wantedBy = [ "multi-user.target" ];
        wants = optional reachesNetwork "network-online.target";
        # postgresql.target: NixOS creates the role and database in postgresql-setup.service, which
        # the target waits for; postgresql.service alone is up before the role exists.
        after =
          [ "network.target" ]
          ++ optional reachesNetwork "network-online.target"
          ++ optional cfg.database.createLocally "postgresql.target"
          ++ optional cfg.redis.createLocally "redis-mcp-server.service";
        requires =
          optional cfg.database.createLocally "postgresql.target"
          ++ optional cfg.redis.createLocally "redis-mcp-server.service";
        environment = environment // {
          # Forces the build-time configuration check.
          MCP_SERVER_CONFIG_CHECKED = "${checkedConfig}";
        };
        serviceConfig = hardening // {
          Type = "notify";
          NotifyAccess = "main";
          ExecStartPre = "${run} migrate";
          ExecStart = "${run} serve";
          Restart = "on-failure";
          RestartSec = 5;
          TimeoutStopSec = 40;
          WatchdogSec = mkIf (cfg.watchdogSec != null) cfg.watchdogSec;
          EnvironmentFile = optional (cfg.environmentFile != null) cfg.environmentFile;
          LoadCredential = lib.mapAttrsToList (name: path: "${name}:${path}") cfg.credentials;
          SupplementaryGroups = optional cfg.redis.createLocally config.services.redis.servers.mcp-server.group;
        };
      };
    }
    # A pruned nixpkgs without the Prometheus module still evaluates the rest (an assertion says
    # what is missing when the option is on).
    (lib.optionalAttrs (options.services ? prometheus) {
      services.prometheus = mkIf cfg.monitoring.prometheus {
        ruleFiles = [ rulesFile ];
        scrapeConfigs = [
          {
            job_name = "mcp-server";
            static_configs = [ { targets = [ "${cfg.settings.HOST}:${toString cfg.settings.METRICS_PORT}" ]; } ];
          }
        ];
      };
    })
  ]);
}
