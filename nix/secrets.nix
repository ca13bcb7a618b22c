# The server's secret variables: the NixOS module refuses them in `settings` and the kubenix
# modules in `mcp.config` (they would land in the store or a rendered manifest).
[
  "JWT_SECRET"
  "DB_PASSWORD"
  "REDIS_PASSWORD"
  "OAUTH_CLIENT_SECRET"
  "EMBEDDINGS_API_KEY"
]
