# Production: three replicas, HPA 3–10, Argo Rollouts canary, secrets from the secret store,
# PostgreSQL as a three-instance CloudNativePG Cluster.
{
  imports = [ ./default.nix ];
  mcp = {
    environment = "production";
    host = "mcp.example.com";
    replicas = 3;
    strategy = "canary";
    hpa = {
      min = 3;
      max = 10;
    };
    serviceMonitor = true;
    externalSecret.enable = true;
    # A replicated PostgreSQL with backups to object storage; replace the placeholder bucket.
    database.cloudnativepg = {
      enable = true;
      backup = {
        destinationPath = "s3://mcp-backups/production";
        credentialsSecret = "mcp-server-backup-s3";
      };
    };
  };
}
