# Staging: two replicas, self-contained (PostgreSQL and Redis in the namespace), rolling updates.
{
  imports = [ ./default.nix ];
  mcp = {
    environment = "staging";
    host = "staging.mcp.example.com";
    replicas = 2;
    strategy = "rolling";
    hpa.enable = false;
    inCluster = {
      postgres = true;
      redis = true;
    };
    database.host = "postgres";
    redisHost = "redis";
    config.LOG_LEVEL = "debug,rmcp=info";
  };
}
