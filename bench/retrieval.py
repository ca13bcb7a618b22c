#!/usr/bin/env python3
"""Retrieval quality on a labelled set: an MCP server over stdio is given the memories of
bench/retrieval/memories.jsonl (create_entities, create_relations), then asked each query of
bench/retrieval/queries.jsonl with search_nodes, once per mode; the rank of the query's target
among the entities returned gives recall@5 and the mean reciprocal rank (MRR). Prints one JSON
line per mode.

    bench/retrieval.py [--modes substring,hybrid] [--set DIR] -- SERVER COMMAND...

"substring" sends no `mode`, so the reference server answers it too; any other mode is sent as
the call's `mode` argument. Every query of the set is checked first to be no substring of its
target's text, the property that makes it a paraphrase, and every target to be found by its name.
Before other modes are measured, the server's background indexer must have embedded the set:
every target must come first when searched semantically by its own text (as the indexer
embeds it: its name, type and observations).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def load(directory):
    entities, relations = [], []
    for line in open(directory / "memories.jsonl"):
        item = json.loads(line)
        kind = item.pop("type")
        (entities if kind == "entity" else relations).append(item)
    queries = [json.loads(line) for line in open(directory / "queries.jsonl")]
    return entities, relations, queries


def check(entities, queries):
    by_name = {e["name"]: e for e in entities}
    for q in queries:
        target = by_name.get(q["target"])
        if target is None:
            sys.exit(f"query {q['query']!r}: target {q['target']!r} is not in the set")
        text = [target["name"], target["entityType"], *target["observations"]]
        if any(q["query"].lower() in t.lower() for t in text):
            sys.exit(f"query {q['query']!r} is a substring of its target {q['target']!r}")


class Server:
    def __init__(self, command):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": "bench-retrieval", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message):
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        for line in self.process.stdout:
            message = json.loads(line)
            if message.get("id") == self.next_id:
                if "error" in message:
                    sys.exit(f"{method} failed: {message['error']}")
                return message["result"]
        sys.exit(f"the server exited during {method}")

    def tool(self, name, arguments):
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        if result.get("isError"):
            sys.exit(f"{name} failed: {result}")
        return result

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


def ranked(result):
    """The names of the entities found, in the order returned (the text is the reference's JSON)."""
    found = result.get("structuredContent") or json.loads(result["content"][0]["text"])
    return [e["name"] for e in found["entities"]]


def wait_indexed(server, entities, queries, timeout=600):
    by_name = {e["name"]: e for e in entities}
    started = time.monotonic()
    waiting = sorted({q["target"] for q in queries})
    while waiting:
        if time.monotonic() - started > timeout:
            sys.exit(f"not indexed after {timeout} s: {waiting[:5]}")
        text = lambda e: "\n".join([f"{e['name']} ({e['entityType']})", *e["observations"]])
        probe = lambda n: {"query": text(by_name[n]), "mode": "semantic", "limit": 1}
        waiting = [n for n in waiting if ranked(server.tool("search_nodes", probe(n)))[:1] != [n]]
        if waiting:
            time.sleep(1)
    print(json.dumps({"indexed_in_s": round(time.monotonic() - started, 1)}), file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="substring")
    parser.add_argument("--set", type=Path, default=Path(__file__).parent / "retrieval")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    entities, relations, queries = load(args.set)
    check(entities, queries)
    server = Server(args.command)
    server.tool("create_entities", {"entities": entities})
    server.tool("create_relations", {"relations": relations})
    # The harness's own check: every target is found by its name, whatever the mode.
    for name in sorted({q["target"] for q in queries}):
        if name not in ranked(server.tool("search_nodes", {"query": name}))[:5]:
            sys.exit(f"the control search for {name!r} did not find it: the set did not load")
    modes = args.modes.split(",")
    if any(m != "substring" for m in modes):
        wait_indexed(server, entities, queries)
    for mode in modes:
        ranks = []
        for q in queries:
            arguments = {"query": q["query"]}
            if mode != "substring":
                arguments["mode"] = mode
            names = ranked(server.tool("search_nodes", arguments))
            ranks.append(names.index(q["target"]) + 1 if q["target"] in names else None)
        print(json.dumps({
            "mode": mode, "queries": len(queries), "entities": len(entities),
            "recall_at_5": sum(1 for r in ranks if r and r <= 5) / len(ranks),
            "mrr": sum(1 / r for r in ranks if r) / len(ranks),
            "found": sum(1 for r in ranks if r),
        }), flush=True)
    server.close()


if __name__ == "__main__":
    main()
