#!/usr/bin/env python3
"""Reply sizes and peak memory of large graph reads (MAX_REPLY_BYTES).

Usage: bench/replies.py BINARY [ENTITIES...]   (default 40000 59000)

Starts BINARY on SQLite (default GRAPH_CACHE_ENTITIES=50000), grows one graph to each size in
turn over HTTP (create_entities in batches of 1000; every entity contains 'a'), then reports the
bytes of one `read_graph` and one `search_nodes {"query":"a"}` reply and, for 16 of those
searches at once, their time and the server's RSS before and at peak (VmHWM, reset before the
burst through /proc/PID/clear_refs). Below GRAPH_CACHE_ENTITIES reads come from the graph cache,
above it from the database.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def call(port, tool, arguments):
    """One session-less tools/call; returns the reply body's size and whether it has nextCursor."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}})
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    conn.request("POST", "/mcp", body, {"content-type": "application/json",
                                        "accept": "application/json, text/event-stream",
                                        "mcp-protocol-version": "2025-11-25"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"{tool}: HTTP {response.status} {data[:200]!r}")
    return len(data), b"nextCursor" in data


def main():
    binary = sys.argv[1]
    sizes = [int(n) for n in sys.argv[2:]] or [40_000, 59_000]
    port = free_port()
    env = dict(os.environ, PORT=str(port), METRICS_PORT=str(free_port()), DATA_DIR=tempfile.mkdtemp(),
               LOG_LEVEL="error", HOST=HOST, REQUEST_TIMEOUT="120s")
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection((HOST, port)).close()
                break
            except OSError:
                time.sleep(0.1)
        made = 0
        for size in sizes:
            while made < size:
                batch = [{"name": f"entity {i} alpha", "entityType": "thing",
                          "observations": [f"observation {i}: a note about a thing, " + "lorem ipsum " * 12]}
                         for i in range(made, min(made + 1000, size))]
                call(port, "create_entities", {"entities": batch})
                made += len(batch)
            graph, graph_more = call(port, "read_graph", {})
            search, search_more = call(port, "search_nodes", {"query": "a"})
            with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            before = status(proc.pid, "VmRSS")
            start = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                replies = list(pool.map(lambda _: call(port, "search_nodes", {"query": "a"}), range(16)))
            took = time.monotonic() - start
            peak = status(proc.pid, "VmHWM")
            print(f"{size} entities: read_graph {graph / 1e6:.1f} MB (nextCursor: {graph_more}), "
                  f"search_nodes 'a' {search / 1e6:.1f} MB (nextCursor: {search_more}); 16 at once: "
                  f"{took:.1f} s, {sum(r[0] for r in replies) / 1e6:.1f} MB in all, "
                  f"RSS {before:.0f} MB before, peak {peak:.0f} MB", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
