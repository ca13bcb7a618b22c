# mcp.nix: the memory server behind nginx with HTTPS, on local PostgreSQL and Redis.
{
  services.mcp-server = {
    enable = true;
    database.createLocally = true; # PostgreSQL, peer auth over /run/postgresql
    redis.createLocally = true; # Redis on a unix socket, for rate limits
    environmentFile = "/run/secrets/mcp-server.env"; # JWT_SECRET=… (never a store path)
    settings.RATE_LIMIT_ENABLED = true;
    # HTTPS for mcp.example.com; the public URL becomes MCP_RESOURCE_URL, the token audience.
    nginx = {
      enable = true;
      domain = "mcp.example.com";
    };
  };
  # The certificate comes from Let's Encrypt, whose terms need accepting once.
  security.acme = {
    acceptTerms = true;
    defaults.email = "ops@example.com";
  };
  networking.firewall.allowedTCPPorts = [
    80
    443
  ];
}
