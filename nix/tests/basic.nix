# The module with local PostgreSQL and Redis: the unit starts (Type=notify), a real MCP round
# trip works, metrics are served, data survives a restart, and the unit's exposure stays low.
{ self }:
{
  name = "mcp-server-basic";
  nodes.machine = {
    imports = [ (import ./lib/node.nix self) ];
    services.mcp-server = {
      database.createLocally = true;
      redis.createLocally = true;
      settings = {
        ALLOW_UNAUTHENTICATED = true;
        RATE_LIMIT_ENABLED = true;
      };
    };
  };
  testScript = ''
    machine.wait_for_unit("mcp-server.service")
    machine.wait_until_succeeds("mcp-server healthcheck --url http://127.0.0.1:8000/health")
    machine.succeed("mcp-server smoke http://127.0.0.1:8000/mcp")
    machine.succeed("curl -fsS http://127.0.0.1:9090/metrics | grep -q mcp_tool_calls_total")

    write = """curl -fsS http://127.0.0.1:8000/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_entities","arguments":{"entities":[{"name":"kept","entityType":"t","observations":["survives restarts"]}]}}}'"""
    machine.succeed(write)
    machine.systemctl("restart mcp-server.service")
    machine.wait_for_unit("mcp-server.service")
    machine.wait_until_succeeds("mcp-server healthcheck --url http://127.0.0.1:8000/health")
    read = """curl -fsS http://127.0.0.1:8000/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"open_nodes","arguments":{"names":["kept"]}}}'"""
    assert "survives restarts" in machine.succeed(read)

    exposure = float(machine.succeed("systemd-analyze security mcp-server.service --no-pager | tail -1 | awk '{print $(NF-2)}'"))
    assert exposure <= 2.0, f"exposure {exposure} > 2.0"
  '';
}
