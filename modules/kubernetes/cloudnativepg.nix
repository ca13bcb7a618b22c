# PostgreSQL as a CloudNativePG Cluster (operator and its Barman Cloud plugin installed in the
# cluster), typed like the other custom resources. Backups go through the plugin's ObjectStore,
# as the in-tree barmanObjectStore is deprecated since CNPG 1.26. Credentials are references only.
{
  config,
  options,
  lib,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption types;
  cfg = config.mcp;
  cnpg = cfg.database.cloudnativepg;
  opt = type: mkOption { inherit type; };
  optional = type: mkOption { type = types.nullOr type; default = null; };
  submodule = options: types.submodule { inherit options; };
  secretKey = submodule { name = opt types.str; key = opt types.str; };
  plugin = "barman-cloud.cloudnative-pg.io";
  objectStore = "${cnpg.name}-backups";
  hostPriority = 900;

  clusterSpec = {
    instances = opt types.ints.positive;
    imageName = optional types.str;
    primaryUpdateStrategy = optional (types.enum [ "unsupervised" "supervised" ]);
    postgresql.parameters = opt (types.attrsOf types.str);
    bootstrap.initdb = { database = opt types.str; owner = opt types.str; };
    storage = { size = opt types.str; storageClass = optional types.str; };
    resources = opt types.attrs;
    affinity = { enablePodAntiAffinity = opt types.bool; topologyKey = opt types.str; };
    plugins = opt (types.listOf (submodule {
      name = opt types.str;
      isWALArchiver = optional types.bool;
      parameters = opt (types.attrsOf types.str);
    }));
  };
  objectStoreSpec = {
    retentionPolicy = opt types.str;
    configuration = {
      destinationPath = opt types.str;
      endpointURL = optional types.str;
      s3Credentials = { accessKeyId = opt secretKey; secretAccessKey = opt secretKey; };
      wal.compression = opt (types.enum [ "gzip" "bzip2" "snappy" "lz4" "xz" "zstd" ]);
      data.compression = opt (types.enum [ "gzip" "bzip2" "snappy" "lz4" "xz" "zstd" ]);
    };
  };
  scheduledBackupSpec = {
    schedule = opt types.str;
    immediate = optional types.bool;
    backupOwnerReference = opt (types.enum [ "none" "self" "cluster" ]);
    cluster.name = opt types.str;
    method = opt (types.enum [ "barmanObjectStore" "volumeSnapshot" "plugin" ]);
    pluginConfiguration.name = opt types.str;
  };

  labels = {
    "app.kubernetes.io/name" = "postgres";
    "app.kubernetes.io/instance" = "postgres-${cfg.environment}";
    "app.kubernetes.io/component" = "database";
    "app.kubernetes.io/part-of" = "mcp-server";
    "app.kubernetes.io/managed-by" = "kubenix";
  };
  meta = name: { inherit name labels; namespace = cfg.namespace; };

  # Contradictions fail the render, naming what to change.
  refuse = lib.concatLists [
    (lib.optional cfg.inCluster.postgres "mcp.database.cloudnativepg.enable and mcp.inCluster.postgres both run a PostgreSQL: choose one")
    (lib.optional (options.mcp.database.host.highestPrio < hostPriority) "mcp.database.host names an external database, but mcp.database.cloudnativepg.enable sets it to ${cnpg.name}-rw: choose one")
    (lib.optional (cnpg.backup.destinationPath == null) "mcp.database.cloudnativepg.backup.destinationPath is required (e.g. s3://bucket/path)")
    (lib.optional (lib.length (lib.splitString " " cnpg.backup.schedule) != 6) "mcp.database.cloudnativepg.backup.schedule must have six fields (CNPG's cron starts with seconds), got \"${cnpg.backup.schedule}\"")
  ];
  checked = lib.throwIf (refuse != [ ]) (lib.concatStringsSep "; " refuse);
in
{
  options.mcp.database.cloudnativepg = {
    enable = mkEnableOption "PostgreSQL as a CloudNativePG Cluster with scheduled backups to object storage";
    name = mkOption { type = types.str; default = "mcp-server-postgres"; description = "Cluster name; the server connects to <name>-rw with the <name>-app credentials."; };
    instances = mkOption { type = types.ints.positive; default = 3; description = "PostgreSQL instances (one primary, the rest streaming replicas)."; };
    storage = {
      size = mkOption { type = types.str; default = "20Gi"; description = "Volume size of each instance."; };
      class = mkOption { type = types.nullOr types.str; default = null; description = "StorageClass (the cluster default when null)."; };
    };
    resources = mkOption {
      type = types.attrs;
      default = { requests = { cpu = "500m"; memory = "1Gi"; }; limits = { cpu = "2"; memory = "1Gi"; }; };
      description = "Resources of each instance.";
    };
    backup = {
      schedule = mkOption { type = types.str; default = "0 0 2 * * *"; description = "ScheduledBackup cron, six fields with seconds first (daily at 02:00)."; };
      retentionPolicy = mkOption { type = types.str; default = "30d"; description = "How long base backups and WAL are kept in the object store."; };
      destinationPath = mkOption { type = types.nullOr types.str; default = null; example = "s3://mcp-backups/production"; description = "Object store path for base backups and WAL archive."; };
      endpointURL = mkOption { type = types.nullOr types.str; default = null; description = "S3-compatible endpoint (MinIO, Ceph…); null for AWS S3."; };
      credentialsSecret = mkOption { type = types.str; default = "mcp-server-backup-s3"; description = "Existing Secret with ACCESS_KEY_ID and ACCESS_SECRET_KEY (never rendered)."; };
    };
  };

  config = {
    kubernetes.customTypes = [
      { group = "postgresql.cnpg.io"; version = "v1"; kind = "Cluster"; attrName = "cnpgClusters"; module.options = clusterSpec; }
      { group = "postgresql.cnpg.io"; version = "v1"; kind = "ScheduledBackup"; attrName = "cnpgScheduledBackups"; module.options = scheduledBackupSpec; }
      { group = "barmancloud.cnpg.io"; version = "v1"; kind = "ObjectStore"; attrName = "barmanObjectStores"; module.options = objectStoreSpec; }
    ];

    mcp.database.host = lib.mkIf cnpg.enable (lib.mkOverride hostPriority "${cnpg.name}-rw");

    kubernetes.resources = lib.mkIf cnpg.enable (checked {
      cnpgClusters.${cnpg.name} = {
        metadata = meta cnpg.name;
        spec = {
          inherit (cnpg) instances resources;
          primaryUpdateStrategy = "unsupervised";
          postgresql.parameters.max_connections = "200";
          bootstrap.initdb = { database = cfg.database.name; owner = "mcp"; };
          storage = { inherit (cnpg.storage) size; storageClass = cnpg.storage.class; };
          affinity = { enablePodAntiAffinity = true; topologyKey = "kubernetes.io/hostname"; };
          plugins = [ { name = plugin; isWALArchiver = true; parameters.barmanObjectName = objectStore; } ];
        };
      };
      barmanObjectStores.${objectStore} = {
        metadata = meta objectStore;
        spec = {
          inherit (cnpg.backup) retentionPolicy;
          configuration = {
            inherit (cnpg.backup) destinationPath endpointURL;
            s3Credentials = {
              accessKeyId = { name = cnpg.backup.credentialsSecret; key = "ACCESS_KEY_ID"; };
              secretAccessKey = { name = cnpg.backup.credentialsSecret; key = "ACCESS_SECRET_KEY"; };
            };
            wal.compression = "gzip";
            data.compression = "gzip";
          };
        };
      };
      cnpgScheduledBackups.${cnpg.name} = {
        metadata = meta cnpg.name;
        spec = {
          inherit (cnpg.backup) schedule;
          immediate = true;
          backupOwnerReference = "self";
          cluster.name = cnpg.name;
          method = "plugin";
          pluginConfiguration.name = plugin;
        };
      };
    });
  };
}
