#!/usr/bin/env python3
"""Fails when the crate's modules import each other in a circle or against the declared layers.

Reads src/**/*.rs and resolves every `crate::`, `super::` and `self::` path (and `use` trees,
following `pub use` re-exports) to the module it names. A module may use its ancestors and
descendants; among the children of one module (the top-level modules, or e.g. storage::batch and
storage::writer) the "uses" relation must have no cycle. Top-level modules must also respect
LAYERS below. Python 3.11, standard library only.
"""

import re
import sys
from pathlib import Path

# Lower rank = lower layer; a module may only use modules of a strictly lower rank (or its own
# subtree). This is lib.rs's promise: http → mcp → memory → storage, config at the bottom with
# no imports of ours, and the composition root (app) above everything it wires together, the command line above it.
LAYERS = {
    "config": 0,
    "telemetry": 1,
    "embed": 1,
    "quota": 1,
    "redis": 1,
    "storage": 2,
    "ratelimit": 2,
    "memory": 3,
    "auth": 4,
    "sessions": 3,
    "backup": 4,
    "transfer": 4,
    "mcp": 5,
    "http": 6,
    "app": 7,
    "cli": 8,
}

# Pairs a lower layer would allow but the design forbids: http reaches the database only through
# `Memory`, so that readiness, metrics and shutdown need no knowledge of the store.
FORBIDDEN = {("http", "storage")}

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|[{}();,*]|\S")


def strip(text):
    """Source without comments, string and char literals (keeps line numbers)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:])):
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def file_modules(src):
    """Module path (tuple) for every .rs file under src (lib.rs is the crate root)."""
    mods = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        if rel.parts == ("main.rs",):  # the binary is its own crate
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] in ("mod", "lib"):
            parts.pop()
        mods[path] = tuple(parts)
    return mods


def parse_use_tree(tokens, i, prefix, out):
    """Expands a use tree starting at tokens[i]; appends (segments, alias, is_glob)."""
    path = list(prefix)
    while i < len(tokens):
        t = tokens[i]
        if t == "{":
            i += 1
            while tokens[i] != "}":
                i = parse_use_tree(tokens, i, path, out)
                if tokens[i] == ",":
                    i += 1
            i += 1
            return i
        if t == "*":
            out.append((path, None, True))
            return i + 1
        if t == "::":
            i += 1
            continue
        if re.match(r"[A-Za-z_]", t):
            path.append(t)
            i += 1
            if i < len(tokens) and tokens[i] == "as":
                out.append((path, tokens[i + 1], False))
                return i + 2
            if i < len(tokens) and tokens[i] != "::":
                out.append((path, path[-1], False))
                return i
            continue
        out.append((path, path[-1] if path else None, False))
        return i
    return i


def scan(text, base):
    """Inline modules, use trees and inline paths of one file, each tagged with its module."""
    tokens, lines = [], []
    for lineno, line in enumerate(strip(text).split("\n"), 1):
        for t in TOKEN.findall(line):
            tokens.append(t)
            lines.append(lineno)
    stack, depth = [], 0  # inline modules: (name, brace depth at which it closes)
    inline, uses, paths = set(), [], []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        module = base + tuple(name for name, _ in stack)
        if t == "mod" and i + 2 < len(tokens) and tokens[i + 2] == "{":
            stack.append((tokens[i + 1], depth))
            inline.add(base + tuple(n for n, _ in stack))
            depth += 1
            i += 3
            continue
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if stack and stack[-1][1] == depth:
                stack.pop()
        elif t == "use" and (i == 0 or tokens[i - 1] != "::"):
            public = i > 0 and (tokens[i - 1] == "pub" or tokens[i - 1] == ")")
            tree = []
            j = parse_use_tree(tokens, i + 1, [], tree)
            for segs, alias, glob in tree:
                uses.append((module, segs, alias, glob, public, lines[i]))
            i = j
            continue
        elif t in ("crate", "super", "self") and i + 1 < len(tokens) and tokens[i + 1] == "::" and (
            i == 0 or tokens[i - 1] not in ("::", "$")
        ):
            segs, j = [t], i + 1
            while j + 1 < len(tokens) and tokens[j] == "::" and re.match(r"[A-Za-z_]", tokens[j + 1]):
                segs.append(tokens[j + 1])
                j += 2
            paths.append((module, segs, lines[i]))
            i = j
            continue
        i += 1
    return inline, uses, paths


def main():
    root = Path(__file__).resolve().parent.parent
    src = root / "src"
    files = file_modules(src)
    modules = set(files.values())
    scanned = {}
    for path, base in files.items():
        inline, uses, paths = scan(path.read_text(), base)
        modules |= inline
        scanned[path] = (uses, paths)

    def absolute(module, segs):
        """Absolute segments for a path written in `module`, or None for other crates."""
        head, rest = segs[0], list(segs[1:])
        if head == "crate":
            return rest
        if head in ("self", "super"):
            cur = list(module)
            while segs and segs[0] in ("self", "super"):
                if segs[0] == "super":
                    cur.pop()
                segs = segs[1:]
            return cur + list(segs)
        if tuple(module) + (head,) in modules:  # a child module named without self::
            return list(module) + list(segs)
        return None

    # Re-exports: (module, name) -> absolute path, so `super::Writer` finds storage::writer.
    reexports = {}
    for path, (uses, _) in scanned.items():
        for module, segs, alias, glob, public, _ in uses:
            if public and not glob and segs and alias:
                target = absolute(module, segs)
                if target is not None:
                    reexports[(module, alias)] = target

    def resolve(segs, seen=0):
        """The deepest module an absolute path names (following re-exports)."""
        cur = ()
        for k, s in enumerate(segs):
            if cur + (s,) in modules:
                cur = cur + (s,)
            elif (cur, s) in reexports and seen < 20:
                return resolve(reexports[(cur, s)] + list(segs[k + 1 :]), seen + 1)
            else:
                break
        return cur

    edges = {}  # (from, to) -> first place seen
    for path, (uses, paths) in scanned.items():
        refs = [(m, s, line) for m, s, _, _, _, line in uses] + paths
        for module, segs, line in refs:
            target = absolute(module, segs)
            if target is None:
                continue
            to = resolve(target)
            frm = module
            # Reduce to the two children of the lowest common ancestor; skip ancestor/descendant.
            k = 0
            while k < len(frm) and k < len(to) and frm[k] == to[k]:
                k += 1
            if k == len(frm) or k == len(to):
                continue
            a, b = frm[: k + 1], to[: k + 1]
            where = f"{path.relative_to(root)}:{line}"
            edges.setdefault((a, b), where)

    def name(m):
        return "::".join(m)

    failures = []
    # Cycles: strongly connected components within each parent's children (Tarjan).
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, onstack, stack, sccs = {}, {}, set(), [], []

    def strongconnect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        onstack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in onstack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                onstack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    for comp in sorted(sccs):
        members = set(comp)
        failures.append("cycle: " + " <-> ".join(name(m) for m in comp))
        for (a, b), where in sorted(edges.items()):
            if a in members and b in members:
                failures.append(f"  {name(a)} -> {name(b)}  ({where})")

    for (a, b), where in sorted(edges.items()):
        if len(a) != 1:
            continue
        ra, rb = LAYERS.get(a[0]), LAYERS.get(b[0])
        if ra is None or rb is None:
            failures.append(f"layer: {name(a)} or {name(b)} is not in LAYERS ({where})")
        elif (a[0], b[0]) in FORBIDDEN:
            failures.append(f"layer: {name(a)} must not use {name(b)}  ({where})")
        elif rb >= ra:
            failures.append(f"layer: {name(a)} (rank {ra}) uses {name(b)} (rank {rb})  ({where})")

    if "--edges" in sys.argv:
        for (a, b), where in sorted(edges.items()):
            print(f"{name(a)} -> {name(b)}  ({where})")
    if failures:
        print("\n".join(failures))
        print(f"module-cycles: FAIL ({len(sccs)} cycles, {len(modules)} modules, {len(edges)} edges)")
        return 1
    print(f"module-cycles: OK, no cycles and layers kept ({len(modules)} modules, {len(edges)} edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
