# Optional in-cluster PostgreSQL and Redis, for a self-contained staging. Their passwords come
# from the same existing Secret as the server's; nothing secret is rendered.
{ config, lib, ... }:
let
  cfg = config.mcp;
  k = import ./lib.nix cfg;
  labelsFor = name: {
    "app.kubernetes.io/name" = name;
    "app.kubernetes.io/instance" = "${name}-${cfg.environment}";
    "app.kubernetes.io/component" = "dependency";
    "app.kubernetes.io/part-of" = k.name;
    "app.kubernetes.io/managed-by" = "kubenix";
  };
  secretEnv = name: key: {
    inherit name;
    valueFrom.secretKeyRef = {
      name = cfg.secretName;
      inherit key;
    };
  };
  security = {
    allowPrivilegeEscalation = false;
    capabilities.drop = [ "ALL" ];
    seccompProfile.type = "RuntimeDefault";
  };
  statefulSet = name: image: port: container: {
    metadata = { namespace = cfg.namespace; labels = labelsFor name; };
    spec = {
      serviceName = name;
      replicas = 1;
      selector.matchLabels = labelsFor name;
      template = {
        metadata.labels = labelsFor name;
        spec = {
          automountServiceAccountToken = false;
          securityContext = { runAsNonRoot = true; runAsUser = 999; runAsGroup = 999; fsGroup = 999; };
          containers = [
            ({
              inherit name image;
              ports = [ { name = name; containerPort = port; protocol = "TCP"; } ];
              securityContext = security;
              resources = {
                requests = { cpu = "100m"; memory = "256Mi"; };
                limits = { cpu = "500m"; memory = "512Mi"; };
              };
              volumeMounts = [ { name = "data"; mountPath = "/data"; } ];
            } // container)
          ];
        };
      };
      volumeClaimTemplates = [
        {
          metadata.name = "data";
          spec = {
            accessModes = [ "ReadWriteOnce" ];
            resources.requests.storage = "5Gi";
          };
        }
      ];
    };
  };
  headless = name: port: {
    metadata = { namespace = cfg.namespace; labels = labelsFor name; };
    spec = {
      selector = labelsFor name;
      ports = [ { name = name; inherit port; targetPort = name; protocol = "TCP"; } ];
    };
  };
in
{
  kubernetes.resources = {
    statefulSets =
      lib.optionalAttrs cfg.inCluster.postgres {
        postgres = statefulSet "postgres" "docker.io/library/postgres:15.10" 5432 {
          env = [
            (secretEnv "POSTGRES_USER" "DB_USER")
            (secretEnv "POSTGRES_PASSWORD" "DB_PASSWORD")
            { name = "POSTGRES_DB"; value = cfg.database.name; }
            { name = "PGDATA"; value = "/data/pgdata"; }
          ];
        };
      }
      // lib.optionalAttrs cfg.inCluster.redis {
        redis = statefulSet "redis" "docker.io/library/redis:7.2" 6379 {
          env = [ (secretEnv "REDIS_PASSWORD" "REDIS_PASSWORD") ];
          command = [ "sh" "-c" "exec redis-server --requirepass \"$REDIS_PASSWORD\" --dir /data --appendonly yes" ];
        };
      };
    services =
      lib.optionalAttrs cfg.inCluster.postgres { postgres = headless "postgres" 5432; }
      // lib.optionalAttrs cfg.inCluster.redis { redis = headless "redis" 6379; };
  };
}
