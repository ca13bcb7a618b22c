# Scheduled backups on both backends: the timer exists, the backup unit writes a file the server
# user alone can read, old files are pruned to `keep`, and the restore unit brings back the graph
# as it was at the backup (a write made after it is gone).
{ self }:
let
  node = extra: {
    imports = [ (import ./lib/node.nix self) ];
    services.mcp-server = extra // {
      settings.ALLOW_UNAUTHENTICATED = true;
      backup = {
        enable = true;
        keep = 2;
      };
    };
  };
in
{
  name = "mcp-server-backup";
  nodes = {
    sqlite = node { };
    postgres = node { database.createLocally = true; };
  };
  testScript = ''
    import json

    def call(machine, name, arguments):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
        return machine.succeed(f"curl -fsS http://127.0.0.1:8000/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d '{body}'")

    def backups(machine):
        return machine.succeed("ls -1 /var/lib/mcp-server-backups/").split()

    start_all()
    for machine in [sqlite, postgres]:
        machine.wait_for_unit("mcp-server.service")
        machine.wait_until_succeeds("mcp-server healthcheck --url http://127.0.0.1:8000/health")
        machine.succeed("systemctl list-timers --all | grep -q mcp-server-backup.timer")

        call(machine, "create_entities", {"entities": [{"name": "kept", "entityType": "t", "observations": ["before the backup"]}]})
        machine.succeed("systemctl start mcp-server-backup.service")
        [first] = backups(machine)
        machine.succeed(f"test \"$(stat -Lc %a /var/lib/mcp-server-backups/{first})\" = 600")

        # Two more runs (names carry the second) leave the newest two.
        for _ in range(2):
            machine.succeed("sleep 1.1 && systemctl start mcp-server-backup.service")
        kept = backups(machine)
        assert len(kept) == 2 and first not in kept, kept

        call(machine, "create_entities", {"entities": [{"name": "later", "entityType": "t", "observations": ["after the backup"]}]})
        machine.succeed(f"systemctl start mcp-server-restore@{kept[-1]}.service")
        machine.fail("systemctl is-active mcp-server.service")
        machine.succeed("systemctl start mcp-server.service")
        machine.wait_until_succeeds("mcp-server healthcheck --url http://127.0.0.1:8000/health")
        graph = call(machine, "read_graph", {})
        assert "before the backup" in graph and "after the backup" not in graph, graph
  '';
}
