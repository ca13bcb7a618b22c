# Evaluates modules/nixos against minimal stand-ins for the NixOS options it sets (no nixpkgs
# needed), and returns named booleans: each one a property of the resulting systemd unit.
# Run by nix/eval-offline.sh; on a machine with nixpkgs the VM tests (nix/tests) go further.
{ lib, module }:
let
  inherit (lib) mkOption types;
  anything = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  # Only what the module touches, declared loosely: the module's own options stay strict.
  stubs =
    { config, ... }:
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.attrs;
          default = [ ];
        };
        systemd.services = mkOption {
          type = types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; });
          default = { };
        };
        services.postgresql = anything;
        services.nginx = anything;
        services.redis.servers = mkOption {
          type = types.attrsOf (
            types.submodule (
              { name, ... }:
              {
                freeformType = types.attrsOf types.anything;
                options.unixSocket = mkOption { default = "/run/redis-${name}/redis.sock"; };
                options.group = mkOption { default = "redis-${name}"; };
              }
            )
          );
          default = { };
        };
        networking.firewall.allowedTCPPorts = mkOption {
          type = types.listOf types.port;
          default = [ ];
        };
      };
      config._module.args.pkgs = {
        inherit lib;
        stdenv.hostPlatform.system = "x86_64-linux";
        # Builders only produce paths here; what matters is where the unit uses them.
        writeShellScript = name: _: "/nix/store/00000000000000000000000000000000-${name}";
        runCommand = name: _: _: "/nix/store/00000000000000000000000000000000-${name}";
      };
      config.services.mcp-server.package = {
        type = "derivation";
        name = "mcp-server";
        outPath = "/nix/store/00000000000000000000000000000000-mcp-server";
        meta.mainProgram = "mcp-server";
      };
      config.warnings = [ ];
    };
  eval =
    extra:
    (lib.evalModules {
      modules = [
        stubs
        { options.warnings = mkOption { default = [ ]; }; }
        module
        extra
      ];
    }).config;

  basic = eval {
    services.mcp-server = {
      enable = true;
      database.createLocally = true;
      redis.createLocally = true;
      openFirewall = true;
      environmentFile = "/run/secrets/mcp-server.env";
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
  storeSecret = eval {
    services.mcp-server = {
      enable = true;
      environmentFile = "/nix/store/11111111111111111111111111111111-secrets.env";
    };
  };
  secretInSettings = eval {
    services.mcp-server = {
      enable = true;
      settings.JWT_SECRET = "oops";
    };
  };
  credentials = eval {
    services.mcp-server = {
      enable = true;
      credentials.JWT_SECRET = "/run/secrets/jwt";
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
  "hardening keys" = lib.all (k: sc ? ${k}) [
    "ProtectSystem"
    "ProtectHome"
    "PrivateTmp"
    "PrivateDevices"
    "NoNewPrivileges"
    "CapabilityBoundingSet"
    "RestrictAddressFamilies"
    "SystemCallFilter"
    "MemoryDenyWriteExecute"
    "LockPersonality"
    "ProtectKernelTunables"
    "ProtectKernelModules"
    "ProtectKernelLogs"
    "ProtectControlGroups"
    "RestrictNamespaces"
    "UMask"
  ];
  "ProtectSystem=strict" = sc.ProtectSystem == "strict";
  "empty CapabilityBoundingSet" = sc.CapabilityBoundingSet == [ "" ];
  "SystemCallFilter" = sc.SystemCallFilter == [ "@system-service" "~@privileged" "~@resources" ];
  "RestrictAddressFamilies" = sc.RestrictAddressFamilies == [ "AF_INET" "AF_INET6" "AF_UNIX" ];
  "UMask 0077" = sc.UMask == "0077";
  "Environment from settings" =
    unit.environment.PORT == "8080"
    && unit.environment.RATE_LIMIT_ENABLED == "true"
    && unit.environment.OTEL_SERVICE_NAME == "mcp"
    && unit.environment.LOG_FORMAT == "json";
  "local PostgreSQL over the socket" =
    lib.hasInfix "host=/run/postgresql" unit.environment.DATABASE_URL
    && basic.services.postgresql.ensureDatabases == [ "mcp-server" ];
  "local Redis over the socket" = unit.environment.REDIS_URL == "unix:///run/redis-mcp-server/redis.sock";
  "ordered after postgresql and redis" =
    lib.elem "postgresql.service" unit.after && lib.elem "redis-mcp-server.service" unit.after;
  "EnvironmentFile" = sc.EnvironmentFile == [ "/run/secrets/mcp-server.env" ];
  "build-time config check" = lib.hasInfix "mcp-server-config-check" unit.environment.MCP_SERVER_CONFIG_CHECKED;
  "firewall opens the ports" = basic.networking.firewall.allowedTCPPorts == [ 8080 9090 ];
  "no assertion fails for a good config" = failed basic == [ ];
  "store-path secret refused" = lib.any (lib.hasInfix "environmentFile is in the Nix store") (failed storeSecret);
  "secret in settings refused" = lib.any (lib.hasInfix "holds a secret") (failed secretInSettings);
  "LoadCredential" = credentials.systemd.services.mcp-server.serviceConfig.LoadCredential == [ "JWT_SECRET:/run/secrets/jwt" ];
}
