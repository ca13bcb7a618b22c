# Production: three replicas, HPA 3–10, Argo Rollouts canary, secrets from the secret store.
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
  };
}
