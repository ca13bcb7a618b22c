# Evaluates modules/nixos inside real NixOS configurations (nothing is built) and returns named
# booleans, each a property of the resulting units and options. CI evaluates it against the
# bundled nixpkgs (.ci/checks/nix.sh); the VM tests (nix/tests) run the same module for real.
{
  lib,
  nixosSystem,
  module,
  system,
}:
let
  # What any host adds that the module does not care about.
  host = {
    boot.loader.grub.enable = false;
    fileSystems."/" = {
      device = "none";
      fsType = "tmpfs";
    };
    system.stateVersion = "26.05";
  };
  eval =
    extra:
    (nixosSystem {
      inherit system;
      modules = [
        module
        host
        extra
      ];
    }).config;

  basic = eval {
    services.mcp-server = {
      enable = true;
      database.createLocally = true;
      redis.createLocally = true;
      openFirewall = true;
      settings = {
        PORT = 8080;
        RATE_LIMIT_ENABLED = true;
        OTEL_SERVICE_NAME = "mcp";
      };
    };
  };
  unit = basic.systemd.services.mcp-server;
  sc = unit.serviceConfig;
  failed = config: map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  refused = value: !(builtins.tryEval (builtins.deepSeq value value)).success;

  withEnvFile = file: eval {
    services.mcp-server = {
      enable = true;
      environmentFile = file;
    };
  };
  withCredential = file: eval {
    services.mcp-server = {
      enable = true;
      credentials.JWT_SECRET = file;
    };
  };
  secretInSettings = eval {
    services.mcp-server = {
      enable = true;
      settings.JWT_SECRET = "oops";
    };
  };
  embeddingKey = eval {
    services.mcp-server = {
      enable = true;
      settings.EMBEDDINGS_API_KEY = "oops";
    };
  };
  withModel = eval {
    services.mcp-server = {
      enable = true;
      embeddings.localModel = true;
    };
  };
  remoteDb = eval {
    services.mcp-server = {
      enable = true;
      settings.DB_HOST = "db.internal";
    };
  };
  monitored = eval {
    services.mcp-server = {
      enable = true;
      monitoring.grafana = true;
      monitoring.prometheus = hasPrometheus;
    };
  };
  # The bundled nixpkgs CI evaluates against lacks the Prometheus module; real nixpkgs has it.
  hasPrometheus = (eval { }).services ? prometheus;
  behindNginx = eval {
    services.mcp-server = {
      enable = true;
      nginx = {
        enable = true;
        domain = "mcp.example.com";
        enableACME = false;
      };
    };
  };
  backedUp = eval {
    services.mcp-server = {
      enable = true;
      database.createLocally = true;
      backup = {
        enable = true;
        schedule = "hourly";
        keep = 3;
      };
    };
  };
  backupUnit = backedUp.systemd.services.mcp-server-backup;
  restoreUnit = backedUp.systemd.services."mcp-server-restore@";
  backupElsewhere = eval {
    services.mcp-server = {
      enable = true;
      backup = {
        enable = true;
        directory = "/srv/backups";
      };
    };
  };
in
{
  "Type=notify" = sc.Type == "notify";
  "WatchdogSec=30s" = sc.WatchdogSec == "30s";
  "ExecStart runs serve" = lib.hasSuffix "mcp-server-run serve" sc.ExecStart;
  "ExecStartPre runs migrate" = lib.hasSuffix "mcp-server-run migrate" sc.ExecStartPre;
  "Restart=on-failure" = sc.Restart == "on-failure";
  "DynamicUser with StateDirectory" = sc.DynamicUser && sc.StateDirectory == "mcp-server";
  "ProtectSystem=strict" = sc.ProtectSystem == "strict";
  "empty CapabilityBoundingSet" = sc.CapabilityBoundingSet == [ "" ];
  "SystemCallFilter" = sc.SystemCallFilter == [
    "@system-service"
    "~@privileged"
    "~@resources"
  ];
  "UMask 0077" = sc.UMask == "0077";
  "Environment from settings" =
    unit.environment.PORT == "8080"
    && unit.environment.RATE_LIMIT_ENABLED == "true"
    && unit.environment.OTEL_SERVICE_NAME == "mcp"
    && unit.environment.LOG_FORMAT == "json";
  "local PostgreSQL over the socket" =
    lib.hasInfix "host=/run/postgresql" unit.environment.DATABASE_URL
    && basic.services.postgresql.ensureDatabases == [ "mcp-server" ];
  "local Redis over the socket" =
    unit.environment.REDIS_URL == "unix:///run/redis-mcp-server/redis.sock";
  # The role and database exist only once postgresql-setup.service has run: postgresql.target.
  "after and requires postgresql.target, not postgresql.service" =
    lib.elem "postgresql.target" unit.after
    && lib.elem "postgresql.target" unit.requires
    && !(lib.elem "postgresql.service" unit.after);
  "postgresql.target waits for postgresql-setup" =
    lib.elem "postgresql-setup.service" basic.systemd.targets.postgresql.requires;
  "after redis" = lib.elem "redis-mcp-server.service" unit.after;
  "loopback-only: no network-online.target" =
    !(lib.elem "network-online.target" (unit.after ++ unit.wants));
  "remote database: waits for network-online.target" =
    lib.elem "network-online.target" remoteDb.systemd.services.mcp-server.after;
  "build-time config check" =
    lib.hasInfix "mcp-server-config-check" unit.environment.MCP_SERVER_CONFIG_CHECKED;
  "firewall opens the ports" =
    lib.elem 8080 basic.networking.firewall.allowedTCPPorts
    && lib.elem 9090 basic.networking.firewall.allowedTCPPorts;
  "no assertion fails for a good config" = failed basic == [ ];
  "EnvironmentFile outside the store" =
    (withEnvFile "/run/secrets/mcp-server.env").systemd.services.mcp-server.serviceConfig.EnvironmentFile
    == [ "/run/secrets/mcp-server.env" ];
  "environmentFile in the store refused" =
    refused (withEnvFile "/nix/store/11111111111111111111111111111111-secrets.env").services.mcp-server.environmentFile;
  # A path literal would be copied into the store by the unit's interpolation.
  "environmentFile path literal refused" =
    refused (withEnvFile ./test.nix).services.mcp-server.environmentFile;
  "LoadCredential" =
    (withCredential "/run/secrets/jwt").systemd.services.mcp-server.serviceConfig.LoadCredential
    == [ "JWT_SECRET:/run/secrets/jwt" ];
  "credential path literal refused" =
    refused (withCredential ./test.nix).services.mcp-server.credentials;
  "secret in settings refused" = lib.any (lib.hasInfix "holds a secret") (failed secretInSettings);
  "embeddings API key in settings refused" = lib.any (lib.hasInfix "holds a secret") (failed embeddingKey);
  "local embedding model: EMBEDDINGS=local and the model's store path" =
    withModel.systemd.services.mcp-server.environment.EMBEDDINGS == "local"
    && lib.hasInfix "all-minilm-l6-v2" withModel.systemd.services.mcp-server.environment.EMBEDDING_MODEL_DIR
    && failed withModel == [ ];
  "monitoring: Grafana provisions the dashboard" = lib.any (
    p: p.name == "mcp-server"
  ) monitored.services.grafana.provision.dashboards.settings.providers;
  "behind nginx: the domain is an allowed host and the resource URL" =
    lib.hasInfix "mcp.example.com" behindNginx.systemd.services.mcp-server.environment.ALLOWED_HOSTS
    && behindNginx.systemd.services.mcp-server.environment.MCP_RESOURCE_URL == "http://mcp.example.com/mcp";
  "backup: a oneshot with the server's database, user and hardening" =
    backupUnit.serviceConfig.Type == "oneshot"
    && backupUnit.serviceConfig.DynamicUser
    && backupUnit.serviceConfig.User == "mcp-server"
    && backupUnit.serviceConfig.ProtectSystem == "strict"
    && backupUnit.environment.DATABASE_URL == backedUp.systemd.services.mcp-server.environment.DATABASE_URL
    && lib.elem "postgresql.target" backupUnit.requires;
  "backup: writes into its own state directory, not the server's runtime directory" =
    backupUnit.serviceConfig.StateDirectory == [ "mcp-server" "mcp-server-backups" ]
    && backupUnit.serviceConfig.RuntimeDirectory != "mcp-server"
    && lib.hasInfix "backup \"/var/lib/mcp-server-backups/mcp-server-" backupUnit.script;
  "backup: keeps the newest `keep`" = lib.hasInfix "head -n -3" backupUnit.script;
  "backup: a persistent timer on the schedule" =
    backedUp.systemd.timers.mcp-server-backup.timerConfig.OnCalendar == "hourly"
    && backedUp.systemd.timers.mcp-server-backup.timerConfig.Persistent
    && lib.elem "timers.target" backedUp.systemd.timers.mcp-server-backup.wantedBy;
  "restore: a template that stops the server and replaces from the backup directory" =
    lib.elem "mcp-server.service" restoreUnit.conflicts
    && lib.hasSuffix "mcp-server-run restore --replace /var/lib/mcp-server-backups/%i" restoreUnit.serviceConfig.ExecStart;
  "backup: no assertion fails for a good config" = failed backedUp == [ ];
  "backup: a directory outside /var/lib refused" =
    lib.any (lib.hasInfix "backup.directory must be a directory under /var/lib/") (failed backupElsewhere);
  "no backup units unless enabled" = !(basic.systemd.services ? mcp-server-backup) && !(basic.systemd.timers ? mcp-server-backup);
}
// lib.optionalAttrs hasPrometheus {
  "monitoring: Prometheus scrapes the metrics port with the alert rules" =
    lib.any (c: c.job_name == "mcp-server") monitored.services.prometheus.scrapeConfigs
    && lib.any (f: lib.hasInfix "mcp-server-rules.yml" (toString f)) monitored.services.prometheus.ruleFiles;
}
