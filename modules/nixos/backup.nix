# services.mcp-server.backup: `mcp-server backup` on a systemd timer into a state directory,
# keeping the newest `keep` files, and mcp-server-restore@FILE.service to put one back.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption mkIf types optional;
  cfg = config.services.mcp-server;
  bcfg = cfg.backup;
  common = import ./common.nix { inherit lib pkgs cfg; };
  inherit (common) environment run hardening;
  # DynamicUser units can only own directories systemd creates for them: StateDirectory, relative
  # to /var/lib (bind-mount another disk there to keep backups elsewhere).
  stateName = lib.removePrefix "/var/lib/" bcfg.directory;
  database = {
    after = optional cfg.database.createLocally "postgresql.target";
    requires = optional cfg.database.createLocally "postgresql.target";
  };
  # The same variables, secrets and database as the server, but not its runtime directory: systemd
  # removes a unit's RuntimeDirectory when it stops, and the server still runs.
  serviceConfig = hardening // {
    Type = "oneshot";
    StateDirectory = [ "mcp-server" stateName ];
    RuntimeDirectory = "mcp-server-backup";
    EnvironmentFile = optional (cfg.environmentFile != null) cfg.environmentFile;
    LoadCredential = lib.mapAttrsToList (name: path: "${name}:${path}") cfg.credentials;
  };
in
{
  options.services.mcp-server.backup = {
    enable = mkEnableOption "scheduled backups with `mcp-server backup` (SQLite or PostgreSQL, whichever the server uses)";
    schedule = mkOption {
      type = types.str;
      default = "daily";
      example = "*-*-* 03:15:00";
      description = "When to back up: a systemd OnCalendar expression. A run missed while the host was off happens at the next boot (Persistent=true).";
    };
    keep = mkOption {
      type = types.ints.positive;
      default = 7;
      description = "How many backups to keep; older ones are deleted after each successful backup.";
    };
    directory = mkOption {
      type = types.str;
      default = "/var/lib/mcp-server-backups";
      description = "Where backups go, readable only by the service user: a directory under /var/lib (a systemd StateDirectory; bind-mount another disk there to keep backups off the data disk).";
    };
  };

  config = mkIf (cfg.enable && bcfg.enable) {
    assertions = [
      {
        assertion = lib.hasPrefix "/var/lib/" bcfg.directory && stateName != "" && !(lib.hasInfix ".." bcfg.directory) && stateName != "mcp-server";
        message = "services.mcp-server.backup.directory must be a directory under /var/lib/ other than the server's own /var/lib/mcp-server (got ${bcfg.directory}).";
      }
    ];

    systemd.services.mcp-server-backup = database // {
      description = "mcp-server backup";
      inherit environment;
      # Names sort by time, so the prune keeps the newest. It runs only after a good backup.
      script = ''
        ${run} backup "${bcfg.directory}/mcp-server-$(date -u +%Y%m%dT%H%M%SZ).backup"
        ls -1 "${bcfg.directory}"/mcp-server-*.backup | sort | head -n -${toString bcfg.keep} | xargs -r rm -f --
      '';
      inherit serviceConfig;
    };

    systemd.timers.mcp-server-backup = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = bcfg.schedule;
        Persistent = true;
        RandomizedDelaySec = "5m";
      };
    };

    # `systemctl start mcp-server-restore@mcp-server-20261206T031500Z.backup` stops the server
    # (Conflicts), replaces the graph with that file's, and leaves the server stopped for a check.
    systemd.services."mcp-server-restore@" = database // {
      description = "mcp-server restore from ${bcfg.directory}/%i";
      conflicts = [ "mcp-server.service" ];
      inherit environment;
      serviceConfig = serviceConfig // {
        ExecStart = "${run} restore --replace ${bcfg.directory}/%i";
      };
    };
  };
}
