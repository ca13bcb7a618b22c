// Peer for bench/run: the reference memory server's create_entities and search_nodes on the
// official TypeScript SDK, stateless Streamable HTTP with JSON responses (the SDK's documented
// stateless pattern: a server and transport per request), the graph held in memory.
// usage: BENCH_NODE_MODULES=DIR node ts_peer.cjs PORT
const http = require("node:http");
const { createRequire } = require("node:module");
const load = createRequire(`${process.env.BENCH_NODE_MODULES}/`);
const { McpServer } = load("@modelcontextprotocol/sdk/server/mcp.js");
const { StreamableHTTPServerTransport } = load("@modelcontextprotocol/sdk/server/streamableHttp.js");
const { z } = load("zod");

const graph = new Map();
const relations = [];
const entity = z.object({ name: z.string(), entityType: z.string(), observations: z.array(z.string()) });
const text = (value) => ({ content: [{ type: "text", text: JSON.stringify(value, null, 2) }] });

function newServer() {
  const server = new McpServer({ name: "ts-peer", version: "1.0.0" });
  server.registerTool(
    "create_entities",
    { description: "Create new entities; existing names are skipped.", inputSchema: { entities: z.array(entity) } },
    async ({ entities }) => {
      const created = entities.filter((e) => !graph.has(e.name));
      for (const e of created) graph.set(e.name, e);
      return text(created);
    },
  );
  server.registerTool(
    "search_nodes",
    { description: "Entities matching the query, and the relations between them.", inputSchema: { query: z.string() } },
    async ({ query }) => {
      const q = query.toLowerCase();
      const entities = [...graph.values()].filter(
        (e) =>
          e.name.toLowerCase().includes(q) ||
          e.entityType.toLowerCase().includes(q) ||
          e.observations.some((o) => o.toLowerCase().includes(q)),
      );
      const names = new Set(entities.map((e) => e.name));
      return text({ entities, relations: relations.filter((r) => names.has(r.from) && names.has(r.to)) });
    },
  );
  return server;
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString());
      } catch {
        res.writeHead(req.method === "POST" ? 400 : 405).end();
        return;
      }
      const server = newServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on("close", () => {
        transport.close();
        server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    });
  })
  .listen(Number(process.argv[2]), "127.0.0.1");
