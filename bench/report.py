"""Render bench/run's measurements (JSON lines) as the results page, or --check that a run
produced a complete, valid set of measurements (the CI smoke run). usage: report.py [--check] FILE"""

import json
import statistics
import sys

OURS = ("mcp-server-sqlite", "mcp-server-postgres")
PEERS = ("python-sdk", "typescript-sdk")
# Bare axum returning our search's result bytes, and rmcp's service returning a copy of that result.
FLOORS = ("ceiling", "rmcp-floor")
# Our PostgreSQL statements for the stdio mixed calls, run by pgbench.
FLOOR = "database floor (pgbench)"


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    kinds = {}
    for row in rows:
        kinds.setdefault(row["kind"], []).append(row)
    return kinds


def check(kinds):
    problems = []
    http = kinds.get("http", [])
    for target, tools in [(t, ("search_nodes", "create_entities")) for t in OURS + PEERS] + [(t, ("search_nodes",)) for t in FLOORS]:
        for tool in tools:
            rows = [r for r in http if r["target"] == target and r["tool"] == tool]
            if not rows:
                problems.append(f"no {tool} measurement for {target}")
            for r in rows:
                if r["errors"] or r["requests"] <= 0 or r["rps"] <= 0 or not 0 < r["p50_ms"] <= r["p99_ms"] \
                        or not r.get("server_cpu_s", 0) > 0:
                    problems.append(f"invalid {target} {tool} c={r['concurrency']}: {r}")
    # Every target must be measured answering the same search (runs before 2026-12-02 did not say).
    found = {(r["target"], r["entities_found"]) for r in http if r["tool"] == "search_nodes" and "entities_found" in r}
    if len({n for _, n in found}) > 1:
        problems.append(f"the targets' searches found different entities: {sorted(found)}")
    for r in kinds.get("startup", []) or [{}]:
        if not r or r["ready_ms"] <= 0 or r["idle_rss_kib"] <= 0 or r["binary_bytes"] <= 0:
            problems.append(f"invalid start-up measurement: {r}")
    for kind in ("pgbench", "create_floor"):
        for r in kinds.get(kind, []) or [{}]:
            if not r or not r["tps"] > 0:
                problems.append(f"invalid {kind} measurement: {r}")
    stdio = kinds.get("stdio", [])
    for server in OURS + ("reference",):
        rows = [r for r in stdio if r["server"] == server]
        if not rows:
            problems.append(f"no stdio measurement for {server}")
        for r in rows:
            if "gave_up" not in r and not (r["mixed_seconds"] > 0 and 0 < r["search_p50_ms"] <= r["search_p99_ms"]):
                problems.append(f"invalid stdio measurement: {r}")
            if server in OURS and "gave_up" in r:
                problems.append(f"our server gave up: {r}")
    floors = kinds.get("stdio_floor", [])
    if not floors:
        problems.append("no database floor for the stdio mixed calls")
    for r in floors:
        if not r["mixed_seconds"] > 0:
            problems.append(f"invalid database floor: {r}")
    return problems


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "n/a"


def cpu_per_request(r):
    """Server CPU µs per request answered, or None for runs recorded before it was measured."""
    return r["server_cpu_s"] * 1e6 / r["requests"] if r.get("server_cpu_s") and r.get("requests") else None


def cpu_text(r):
    value = cpu_per_request(r)
    return f"{value:.0f}" if value else "–"


def verdict(ok):
    return "met" if ok else "**missed**"


def render(kinds):
    m = kinds["machine"][0]
    http = {(r["target"], r["tool"], r["concurrency"]): r for r in kinds["http"]}
    conc = sorted({r["concurrency"] for r in kinds["http"]})
    top = conc[-1]
    idle = {r["target"]: r["rss_kib"] for r in kinds.get("idle", [])}
    startup = kinds["startup"]
    ready = statistics.median(r["ready_ms"] for r in startup)
    idle_rss = statistics.median(r["idle_rss_kib"] for r in startup) / 1024
    size_mb = startup[0]["binary_bytes"] / 1e6
    out = [
        "# Benchmark results",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, {m['os']}, Linux {m['kernel']}. "
        f"{m['rustc']}; Node {m['node']}; Python {m['python']}; {m['postgres']}; {m['redis']}.",
        "Load generator and servers share these cores (loopback), so every figure includes the load generator's cost.",
        "",
        "## Start-up and footprint (mcp-server, SQLite, release build)",
        "",
        table(["start to /health/ready (median of 5)", "idle RSS", "binary"],
              [[f"{ready:.0f} ms", f"{idle_rss:.1f} MiB", f"{size_mb:.1f} MB"]]),
        "",
        "## HTTP tools/call (1,000-entity graph; search_nodes matches 110 entities)",
        "",
    ]
    rows = []
    for (target, tool, c), r in sorted(http.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        rows.append([target, tool, c, f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", cpu_text(r),
                     f"{r['peak_rss_kib'] / 1024:.1f}", f"{idle.get(target, 0) / 1024:.1f}", r["errors"]])
    out += ["Server CPU is the target process's user + system time over the run, per request answered: what a",
            "request costs the server, whatever the load generator's share of the machine.", "",
            table(["target", "tool", "c", "req/s", "p50 ms", "p99 ms", "server CPU µs/req", "peak RSS MiB",
                   "RSS after seeding MiB", "errors"], rows), ""]

    def rps(target, tool, c):
        return http.get((target, tool, c), {}).get("rps")

    out += ["### Ratios (req/s)", ""]
    rows = []
    for tool in ("search_nodes", "create_entities"):
        for c in conc:
            for ours in OURS:
                rows.append([tool, c, ours, ratio(rps(ours, tool, c), rps("ceiling", tool, c)),
                             ratio(rps(ours, tool, c), rps("rmcp-floor", tool, c)),
                             ratio(rps(ours, tool, c), rps("python-sdk", tool, c)),
                             ratio(rps(ours, tool, c), rps("typescript-sdk", tool, c))])
    out += [table(["tool", "c", "server", "vs ceiling", "vs rmcp floor", "vs Python SDK", "vs TypeScript SDK"], rows), ""]
    if rps("rmcp-floor", "search_nodes", top):
        out += [f"The rmcp floor (rmcp's Streamable HTTP service answering with a copy of a prepared result) reaches "
                f"{ratio(rps('rmcp-floor', 'search_nodes', top), rps('ceiling', 'search_nodes', top))} the ceiling's "
                f"req/s at c={top}: no server on rmcp goes faster here.", ""]

    def cpu(target, tool, c):
        return cpu_per_request(http.get((target, tool, c), {}))

    out += ["### Server CPU per request: the peer's (or the ceiling's) over ours (above 1× means we use less)", ""]
    rows = [[tool, c, ours, ratio(cpu("ceiling", tool, c), cpu(ours, tool, c)), ratio(cpu("rmcp-floor", tool, c), cpu(ours, tool, c)),
             ratio(cpu("python-sdk", tool, c), cpu(ours, tool, c)), ratio(cpu("typescript-sdk", tool, c), cpu(ours, tool, c))]
            for tool in ("search_nodes", "create_entities") for c in conc for ours in OURS]
    out += [table(["tool", "c", "server", "ceiling / ours", "rmcp floor / ours", "Python SDK / ours", "TypeScript SDK / ours"],
                  rows), ""]

    pgbench = {r["concurrency"]: r["tps"] for r in kinds.get("pgbench", [])}
    # Runs before 2026-12-03-2 did not measure the create floor.
    create_floor = {r["concurrency"]: r["tps"] for r in kinds.get("create_floor", [])}
    out += ["## Write ceiling: pgbench single-row INSERT vs create_entities on PostgreSQL", ""]
    rows = []
    for c in sorted(pgbench):
        ours, floor = rps("mcp-server-postgres", "create_entities", c), create_floor.get(c)
        rows.append([c, f"{pgbench[c]:.0f}", f"{ours or 0:.0f}", ratio(ours, pgbench[c]),
                     f"{floor:.0f}" if floor else "–", ratio(floor, pgbench[c]), ratio(ours, floor)])
    out += [table(["c", "pgbench INSERT tps", "create_entities req/s", "ours / INSERT", "create floor tps",
                   "floor / INSERT", "ours / floor"], rows), "",
            "create floor: our create statement for the same one-entity write, one a transaction, run by pgbench "
            "on our schema (its indexes and graph-version triggers): the database alone. Our server can pass it, "
            "as it folds concurrent creates into one statement.", ""]

    stdio = kinds.get("stdio", [])
    out += ["## stdio: load N entities (create_entities, 1,000 per call), then 1,000 mixed calls",
            "", "Mixed calls: create_entities (1 entity), search_nodes (one entity's tag), add_observations, search_nodes, repeated.", ""]
    rows = []
    for r in sorted(stdio, key=lambda r: (r["size"], r["server"])):
        if "gave_up" in r:
            rows.append([r["server"], r["size"], f"{r.get('load_seconds', 0):.2f}" if "load_seconds" in r else "–",
                         f"gave up ({r['gave_up']}, {r['seconds']:.0f} s cap)", "–", "–", "–", "–"])
        else:
            # Runs before 2026-12-01 timed the searches only.
            writes = [f"{r[k]:.2f}" if k in r else "–" for k in ("write_p50_ms", "write_p99_ms")]
            rows.append([r["server"], r["size"], f"{r['load_seconds']:.2f}", f"{r['mixed_seconds']:.2f}",
                         f"{r['search_p50_ms']:.2f}", f"{r['search_p99_ms']:.2f}", *writes])
    floors = {r["size"]: r["mixed_seconds"] for r in kinds.get("stdio_floor", [])}
    rows += [[FLOOR, size, "–", f"{seconds:.2f}", "–", "–", "–", "–"] for size, seconds in sorted(floors.items())]
    out += [table(["server", "entities", "load s", "mixed s", "search p50 ms", "search p99 ms", "write p50 ms",
                   "write p99 ms"], rows), "",
            f"{FLOOR}: the statements mcp-server-postgres sends for the mixed calls (each create, observation "
            "addition and search's graph-version read), in order, run by pgbench on the graph it loaded: what the "
            "database itself needs, whatever the server.", ""]

    def mixed(server, size):
        r = next((r for r in stdio if r["server"] == server and r["size"] == size), None)
        if r is None:
            return None, False
        if "gave_up" in r:  # a lower bound for the reference: the rate it reached, extrapolated
            rate = r.get("mixed_calls_per_second")
            return (r["mixed_calls"] / rate if rate else None), True
        return r["mixed_seconds"], False

    sizes = sorted({r["size"] for r in stdio})
    rows = []
    for size in sizes:
        ref, lower_bound = mixed("reference", size)
        for ours in OURS:
            t, _ = mixed(ours, size)
            label = ratio(ref, t) + (" (at least; the reference gave up, extrapolated)" if lower_bound else "")
            rows.append([size, ours, label])
        if size in floors:
            rows.append([size, FLOOR, ratio(ref, floors[size]) + (" (at least)" if lower_bound else "")])
    out += [table(["entities", "server", "mixed calls: faster than the reference by"], rows), ""]

    def stdio_p99(server, size):
        return next((r.get("search_p99_ms") for r in stdio if r["server"] == server and r["size"] == size), None)

    big = max(sizes)
    ref10k, _ = mixed("reference", 10000)
    def read_vs(ours, other, factor):
        return (rps(ours, "search_nodes", top) or 0) >= factor * (rps(other, "search_nodes", top) or 1e12)

    # The issue names no backend for the read targets: each is judged on both.
    targets = [
        (f"read c={top} ≥ {factor} {name} ({backend})", read_vs(ours, other, float(factor.rstrip("×"))))
        for factor, name, other in (("0.70×", "ceiling", "ceiling"), ("10×", "Python SDK", "python-sdk"),
                                    ("3×", "TypeScript SDK", "typescript-sdk"))
        for ours, backend in zip(OURS, ("SQLite", "PostgreSQL"))
    ] + [
        ("stdio 10k ≥ 50× the reference (SQLite)", bool(ref10k and mixed(OURS[0], 10000)[0] and ref10k >= 50 * mixed(OURS[0], 10000)[0])),
        ("stdio 10k ≥ 50× the reference (PostgreSQL)", bool(ref10k and mixed(OURS[1], 10000)[0] and ref10k >= 50 * mixed(OURS[1], 10000)[0])),
        (f"search p99 < 5 ms at {big} entities, SQLite", (stdio_p99(OURS[0], big) or 1e9) < 5),
        (f"search p99 < 5 ms at {big} entities, PostgreSQL", (stdio_p99(OURS[1], big) or 1e9) < 5),
        ("create_entities on PostgreSQL ≥ 0.5× pgbench (c=16)", (rps(OURS[1], "create_entities", 16) or 0) >= 0.5 * pgbench.get(16, 1e12)),
        ("idle RSS < 20 MB", idle_rss * 1.048576 < 20),
        (f"RSS under c={top} < 80 MB", max((http.get((t, tool, top), {}).get("peak_rss_kib", 1e9) for t in OURS for tool in ("search_nodes", "create_entities"))) * 1024 / 1e6 < 80),
        ("ready < 300 ms (SQLite)", ready < 300),
    ]
    # What bounds a target, measured in the same run, beside its verdict.
    notes = {
        f"read c={top} ≥ 0.70× ceiling ({backend})":
            f"the rmcp floor: {ratio(rps('rmcp-floor', 'search_nodes', top), rps('ceiling', 'search_nodes', top))}"
        for backend in ("SQLite", "PostgreSQL")
    }
    if create_floor.get(16) and pgbench.get(16):
        notes["create_entities on PostgreSQL ≥ 0.5× pgbench (c=16)"] = \
            f"the create floor: {ratio(create_floor[16], pgbench[16])}"
    if ref10k and floors.get(10000):
        notes["stdio 10k ≥ 50× the reference (PostgreSQL)"] = f"the database floor: {ratio(ref10k, floors[10000])}"
    out += ["## Targets", "", table(["target", "", "bound measured in this run"],
                                    [[name, verdict(ok), notes.get(name, "")] for name, ok in targets]), ""]
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    kinds = load(args[-1])
    problems = check(kinds)
    if "--check" in args:
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1 if problems else 0)
    # A full run still gets its page when a server gave up: that is a result, shown as such.
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    print(render(kinds))


if __name__ == "__main__":
    main()
