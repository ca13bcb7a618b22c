# HS256 from an environmentFile outside the store: 401 without a token, success with one
# minted by `mcp-server token`.
{ self }:
{
  name = "mcp-server-auth";
  nodes.machine = {
    imports = [ (import ./lib/node.nix self) ];
    services.mcp-server = {
      environmentFile = "/etc/mcp-server.env";
      settings.MCP_RESOURCE_URL = "http://127.0.0.1:8000/mcp";
    };
    environment.etc."mcp-server.env" = {
      text = "JWT_SECRET=vm-test-secret-0123456789abcdef0123456789\n";
      mode = "0400";
    };
  };
  testScript = ''
    machine.wait_for_unit("mcp-server.service")
    machine.wait_until_succeeds("mcp-server healthcheck --url http://127.0.0.1:8000/health")
    status = machine.succeed("curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:8000/mcp -H 'content-type: application/json' -d '{}'")
    assert status == "401", status
    token = machine.succeed(
      "env $(cat /etc/mcp-server.env) MCP_RESOURCE_URL=http://127.0.0.1:8000/mcp ENVIRONMENT=development mcp-server token --tenant vm"
    ).strip()
    machine.succeed(f"mcp-server smoke http://127.0.0.1:8000/mcp --token {token}")
  '';
}
