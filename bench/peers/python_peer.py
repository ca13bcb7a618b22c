"""Peer for bench/run: the reference memory server's create_entities and search_nodes on the
official Python SDK (MCPServer, formerly FastMCP), stateless Streamable HTTP with JSON responses
under uvicorn, the graph held in memory. usage: python_peer.py PORT"""

import json
import sys

import uvicorn
from pydantic import BaseModel
from mcp.server.mcpserver import MCPServer


class Entity(BaseModel):
    name: str
    entityType: str
    observations: list[str]


GRAPH: dict[str, Entity] = {}
relations: list[dict] = []
server = MCPServer("python-peer")


@server.tool(name="create_entities", structured_output=False)
def create_entities_tool(entities: list[Entity]) -> str:
    """Create new entities; existing names are skipped."""
    created = [e for e in entities if e.name not in GRAPH]
    for e in created:
        GRAPH[e.name] = e
    return json.dumps([e.model_dump() for e in created], indent=2)


@server.tool(name="search_nodes", structured_output=False)
def search_nodes(query: str) -> str:
    """Entities whose name, type or observations contain the query (case-insensitive), and the relations between them."""
    q = query.lower()
    found = [
        e
        for e in GRAPH.values()
        if q in e.name.lower() or q in e.entityType.lower() or any(q in o.lower() for o in e.observations)
    ]
    names = {e.name for e in found}
    between = [r for r in relations if r["from"] in names and r["to"] in names]
    return json.dumps({"entities": [e.model_dump() for e in found], "relations": between}, indent=2)


if __name__ == "__main__":
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
