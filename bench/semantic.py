#!/usr/bin/env python3
"""Search by meaning's costs, through an MCP server over stdio with EMBEDDINGS=local.

    bench/semantic.py index  --entities N  --db URL -- SERVER COMMAND...
    bench/semantic.py search --entities N  --db URL --model ID -- SERVER COMMAND...

`index`: creates N entities (synthetic sentences) in batches of 100 and waits until the
background indexer has embedded them all (the database's embedding_queue empty, N vectors),
polling the server's CPU time and peak RSS: entities embedded a second, CPU per entity.

`search`: fills a fresh database with N entities (`mcp-server import`, before embeddings are
on, so nothing is queued) and a random unit vector each (made by numpy, stored as the server
stores them, under the model id ID, with the state row of a server that embedded them, so no
model time is spent on them, and the check that nothing is queued),
then starts the server and times semantic searches (the query vectors are cached after their
first use, so what is timed is ranking N vectors and building the page): p50/p99, the first
search (which reads the vectors into memory), and the server's peak RSS; then the same search
by time (`asOf` now, and a `since` that keeps every entity: each reads the graph at that moment
from the database), p50/p99 over --timed-calls.

Prints one JSON line. URL is sqlite:///path/to/file.db or postgres://….
"""

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from retrieval import Server  # noqa: E402

WORDS = ("river mountain violin garden lantern harbor meadow engine copper orchard thunder "
         "library bicycle canyon festival glacier compass pepper marble whistle").split()


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(12))


def sql(url, statement):
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            return db.execute(statement).fetchall()
    out = subprocess.run(["psql", "-qtA", url, "-c", statement], check=True, capture_output=True, text=True)
    return [tuple(line.split("|")) for line in out.stdout.splitlines() if line]


class Process:
    """CPU seconds and peak RSS of the server process."""

    def __init__(self, pid):
        self.pid = pid

    def cpu(self):
        fields = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100

    def peak_rss_mib(self):
        for line in open(f"/proc/{self.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0


def index(args):
    rng = random.Random(7)
    server = Server(args.command)
    proc = Process(server.process.pid)
    time.sleep(1)
    cpu0, started = proc.cpu(), time.monotonic()
    for start in range(0, args.entities, 100):
        batch = [{"name": f"e{i}", "entityType": "note", "observations": [sentence(rng), sentence(rng)]}
                 for i in range(start, min(start + 100, args.entities))]
        server.tool("create_entities", {"entities": batch})
    written = time.monotonic() - started
    while True:
        (queued,), (vectors,) = sql(args.db, "SELECT count(*) FROM embedding_queue")[0], \
            sql(args.db, "SELECT count(*) FROM entity_vectors")[0]
        if int(queued) == 0 and int(vectors) >= args.entities:
            break
        time.sleep(0.5)
    took, cpu = time.monotonic() - started, proc.cpu() - cpu0
    result = {"phase": "index", "entities": args.entities, "writes_s": round(written, 2),
              "indexed_s": round(took, 1), "entities_per_s": round(args.entities / took, 1),
              "cpu_ms_per_entity": round(1000 * cpu / args.entities, 2), "peak_rss_mib": round(proc.peak_rss_mib(), 1)}
    server.close()
    return result


def fill(args):
    """N entities with one observation each, imported as the server imports (so its indexes hold
    them), then a random unit vector each, straight into the database."""
    text = random.Random(7)
    path = f"{args.work}/import.jsonl"
    with open(path, "w") as out:
        for i in range(args.entities):
            out.write(json.dumps({"type": "entity", "name": f"e{i}", "entityType": "note",
                                  "observations": [sentence(text)]}) + "\n")
    env = {"PATH": "/usr/bin:/bin", "LOG_LEVEL": "warn", "DATABASE_URL": args.db}
    subprocess.run([args.bin, "import", path], check=True, env=env, stdout=subprocess.DEVNULL)
    rng = np.random.default_rng(7)
    for start in range(0, args.entities, 10_000):
        n = min(10_000, args.entities - start)
        vectors = rng.standard_normal((n, 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [(f"e{start + i}", vectors[i].astype("<f4").tobytes()) for i in range(n)]
        if args.db.startswith("sqlite"):
            with sqlite3.connect(args.db.removeprefix("sqlite://")) as db:
                db.executemany("INSERT INTO entity_vectors (entity_id, tenant, model, vector, seq) "
                               "SELECT id, tenant, ?, ?, id FROM entities WHERE tenant = 'default' AND name = ?",
                               [(args.model, v, name) for name, v in rows])
        else:
            copy = "".join(f"{name}\t\\\\x{v.hex()}\n" for name, v in rows)
            script = ("CREATE TEMP TABLE load (name TEXT, vector BYTEA);\nCOPY load FROM STDIN;\n" + copy + "\\.\n"
                      "INSERT INTO entity_vectors (entity_id, tenant, model, vector, seq) "
                      f"SELECT e.id, e.tenant, '{args.model}', l.vector, nextval('entity_vectors_seq') "
                      "FROM load l JOIN entities e ON e.tenant = 'default' AND e.name = l.name;\n")
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", args.db], input=script, check=True, text=True)
    # As if a server had embedded them: with no state row, the server's start would queue every
    # entity to be embedded again, and the searches would be timed beside the indexer at work.
    state = f"INSERT INTO embedding_state (id, model) VALUES (1, '{args.model}')"
    if args.db.startswith("sqlite"):
        with sqlite3.connect(args.db.removeprefix("sqlite://")) as db:
            db.execute(state)
    else:
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", args.db, "-c", state], check=True)
        subprocess.run(["psql", "-q", args.db, "-c", "VACUUM ANALYZE", "-c", "CHECKPOINT"], check=True)


def search(args):
    if not args.seeded:
        fill(args)
    server = Server(args.command)
    proc = Process(server.process.pid)
    queries = [f"{w} and {v}" for w, v in zip(WORDS, reversed(WORDS))][:20]
    call = lambda q: server.tool("search_nodes", {"query": q, "mode": "semantic", "limit": 10})
    started = time.monotonic()
    first = call(queries[0])
    first_s = time.monotonic() - started
    assert len(first["structuredContent"]["entities"]) == 10, first
    (queued,) = sql(args.db, "SELECT count(*) FROM embedding_queue")[0]
    assert int(queued) == 0, f"{queued} entities queued: the indexer would run beside the searches"
    for q in queries:  # each query's vector once, so the timed calls rank only
        call(q)
    times = []
    for i in range(args.calls):
        t = time.perf_counter()
        call(queries[i % len(queries)])
        times.append(time.perf_counter() - t)
    pct = lambda times, p: round(1000 * sorted(times)[min(len(times) - 1, int(p * len(times)))], 2)
    result = {"phase": "search", "entities": args.entities, "first_search_s": round(first_s, 2),
              "p50_ms": pct(times, 0.50), "p99_ms": pct(times, 0.99), "calls": len(times)}
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    for label, moment in (("as_of", {"asOf": now}), ("since", {"since": "2000-01-01T00:00:00Z"})):
        timed = []
        for i in range(args.timed_calls):
            t = time.perf_counter()
            found = server.tool("search_nodes", {"query": queries[i % len(queries)], "mode": "semantic",
                                                 "limit": 10, **moment})
            timed.append(time.perf_counter() - t)
            assert len(found["structuredContent"]["entities"]) == 10, found
        result |= {f"{label}_p50_ms": pct(timed, 0.50), f"{label}_p99_ms": pct(timed, 0.99)}
    result |= {"timed_calls": args.timed_calls, "peak_rss_mib": round(proc.peak_rss_mib(), 1)}
    server.close()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["index", "search"])
    parser.add_argument("--entities", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--model", default="")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--timed-calls", type=int, default=20, help="searches with asOf, and with since (search)")
    parser.add_argument("--bin", help="the mcp-server binary, for `import` (search)")
    parser.add_argument("--work", help="a directory for the import file (search)")
    parser.add_argument("--seeded", action="store_true", help="the database holds the entities already (search)")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    print(json.dumps(index(args) if args.phase == "index" else search(args)), flush=True)


if __name__ == "__main__":
    main()
