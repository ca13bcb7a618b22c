# The README's example host (nix/examples/mcp.nix) as it is, but with ACME off (no CA in a VM):
# nginx proxies mcp.example.com to the server on local PostgreSQL and Redis, and a token minted
# from the secret in the environment file works through nginx, for the public resource URL.
{ self }:
{
  name = "mcp-server-example";
  nodes.machine =
    { lib, ... }:
    {
      imports = [
        (import ./lib/node.nix self)
        ../examples/mcp.nix
      ];
      services.mcp-server.nginx.enableACME = lib.mkForce false;
      networking.hosts."127.0.0.1" = [ "mcp.example.com" ];
      # The secret as an operator's secret manager would leave it: outside the store, root only.
      systemd.tmpfiles.rules = [
        "d /run/secrets 0700 root root -"
        "f /run/secrets/mcp-server.env 0400 root root - JWT_SECRET=vm-example-secret-0123456789abcdef0123"
      ];
    };
  testScript = ''
    machine.wait_for_unit("postgresql.target")
    machine.wait_for_unit("mcp-server.service")
    machine.wait_for_unit("nginx.service")
    machine.wait_until_succeeds("mcp-server healthcheck --url http://127.0.0.1:8000/health")
    status = machine.succeed("curl -s -o /dev/null -w '%{http_code}' -X POST http://mcp.example.com/mcp -H 'content-type: application/json' -d '{}'")
    assert status == "401", status
    token = machine.succeed(
      "env $(cat /run/secrets/mcp-server.env) MCP_RESOURCE_URL=http://mcp.example.com/mcp ENVIRONMENT=development mcp-server token --tenant vm"
    ).strip()
    machine.succeed(f"mcp-server smoke http://mcp.example.com/mcp --token {token}")
  '';
}
