# What the server unit and the backup units share: the environment rendered from settings, the
# wrapper that turns LoadCredential files into variables, and one hardening block.
{
  lib,
  pkgs,
  cfg,
}:
let
  user = "mcp-server";
  toEnv = v: if lib.isBool v then lib.boolToString v else toString v;
in
{
  inherit user;
  environment = lib.mapAttrs (_: toEnv) (lib.filterAttrs (_: v: v != null) cfg.settings);

  # Exports the LoadCredential secrets as the variables they name, then runs the binary: the
  # same wrapper for migrations, the server (which stays the main process), backup and restore.
  run = pkgs.writeShellScript "mcp-server-run" ''
    ${lib.concatStrings (
      lib.mapAttrsToList (name: _: ''
        ${name}="$(< "$CREDENTIALS_DIRECTORY/${name}")"
        export ${name}
      '') cfg.credentials
    )}
    exec ${lib.getExe cfg.package} "$@"
  '';

  # One hardening block for every unit (systemd-analyze security: exposure well under 2.0).
  hardening = {
    DynamicUser = true;
    User = user;
    Group = user;
    StateDirectory = "mcp-server";
    StateDirectoryMode = "0700";
    RuntimeDirectory = "mcp-server";
    UMask = "0077";
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateUsers = true;
    PrivateMounts = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    CapabilityBoundingSet = [ "" ];
    AmbientCapabilities = [ "" ];
    RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
    DevicePolicy = "closed";
  };
}
