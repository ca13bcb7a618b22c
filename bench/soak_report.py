"""Render bench/soak.sh's samples (JSON lines, one or more runs told apart by label) as the soak's
results page, or --check that a run's samples are complete and valid (the CI smoke run).
usage: soak_report.py [--check] FILE"""

import json
import statistics
import sys

MIB = 1024 * 1024


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    machines = [r for r in rows if r["kind"] == "machine"]
    runs = {}
    for r in rows:
        if r["kind"] == "soak":
            runs.setdefault((r["label"], r["backend"]), []).append(r)
    return machines, runs


def check(runs):
    problems = [] if runs else ["no soak samples"]
    for (label, backend), samples in runs.items():
        for s in samples:
            if s["errors"] or s["requests"] <= 0 or s["rps"] <= 0 or not 0 < s["p50_ms"] <= s["p99_ms"] \
                    or s["rss_kib"] <= 0 or s["db_bytes"] <= 0:
                problems.append(f"invalid {label} {backend} sample: {s}")
    return problems


def mean_rps(samples, first, last):
    picked = [s["rps"] for s in samples if first <= s["t_s"] <= last]
    return statistics.mean(picked) if picked else 0.0


def render(machines, runs):
    out = ["# Soak", ""]
    out.append("bench/soak.sh: mixed load (per connection: create_entities of one new entity, search_nodes "
               "for one of its entities' tags, add_observations, the search again) at fixed concurrency on a "
               "fresh store, sampled every interval. RSS is the server's; WAL is the SQLite `-wal` file at the "
               "sample and the largest seen between samples (polled every 0.5 s).")
    out.append("")
    out.append("| label | date | commit | CPU | cores | build profile |")
    out.append("|---|---|---|---|---|---|")
    for m in machines:
        out.append(f"| {m['label']} | {m['date']} | {m['commit']} | {m['cpu']} | {m['cores']} | {m['profile']} |")
    out += ["", "## Summary", ""]
    out.append("| label | backend | c | seconds | entities | req/s first minute | req/s last minute | errors "
               "| largest WAL MiB | final WAL MiB | final DB MiB | final RSS MiB |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (label, backend), samples in runs.items():
        end = samples[-1]["t_s"]
        out.append(
            f"| {label} | {backend} | {samples[0]['concurrency']} | {end:.0f} | {samples[-1]['entities_created']} "
            f"| {mean_rps(samples, 0, 60):.0f} | {mean_rps(samples, end - 60, end):.0f} "
            f"| {sum(s['errors'] for s in samples)} | {max(s['wal_peak_bytes'] for s in samples) / MIB:.1f} "
            f"| {samples[-1]['wal_bytes'] / MIB:.1f} | {samples[-1]['db_bytes'] / MIB:.1f} "
            f"| {samples[-1]['rss_kib'] / 1024:.0f} |")
    for (label, backend), samples in runs.items():
        out += ["", f"## {label}, {backend}", ""]
        out.append("| t s | entities | req/s | p50 ms | p99 ms | search p99 ms | write p99 ms | errors | RSS MiB "
                   "| WAL MiB | WAL peak MiB | DB MiB |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in samples:
            out.append(
                f"| {s['t_s']:.0f} | {s['entities_created']} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
                f"| {s['search_p99_ms']:.2f} | {s['write_p99_ms']:.2f} | {s['errors']} | {s['rss_kib'] / 1024:.0f} "
                f"| {s['wal_bytes'] / MIB:.1f} | {s['wal_peak_bytes'] / MIB:.1f} | {s['db_bytes'] / MIB:.1f} |")
        errors = [s["first_error"] for s in samples if s.get("first_error")]
        if errors:
            out += ["", f"First error: `{errors[0]}`"]
    return "\n".join(out) + "\n"


def main():
    args = sys.argv[1:]
    checking = args[:1] == ["--check"]
    machines, runs = load(args[-1])
    if checking:
        problems = check(runs)
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1 if problems else 0)
    print(render(machines, runs), end="")


if __name__ == "__main__":
    main()
