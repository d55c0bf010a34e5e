#!/usr/bin/env python3
"""Finds import circles between the modules of each crate of the workspace.

A module depends on another when its code names it through `crate::` (or
`$crate::`) or `super::`; names the crate root or a parent module
re-exports (`crate::Error`, `super::LockGuard`) count for the module they
come from. Comments and string literals are skipped. Modules are taken at
the top level (`backend::time` counts as `backend`), except those given
with --split (default: blocking), whose submodules count one by one. A
parent's own `mod` and `pub use child::..` lines are its public face, not
a dependency. Unit-test modules (`#[cfg(test)] mod name { .. }`) are
left out: a test may drive its module through the crate's front door
without making the library's modules depend on each other.

Prints each crate's strongly connected components of more than one module
(Tarjan) with one circle through each, and exits 1 when there is any.

    python3 scripts/circles.py [--split blocking,testkit] [crate dirs...]
"""

import argparse
import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(source):
    """Source with comments, string and char literals blanked out."""
    out = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if source.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif source.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', source[i:]):
            hashes = re.match(r"r(#*)\"", source[i:]).group(1)
            end = source.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", source[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", source[i:]).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_tests(code):
    """`code` without its `#[cfg(test)] mod name { .. }` blocks."""
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{")
    while True:
        m = pattern.search(code)
        if not m:
            return code
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        code = code[: m.start()] + code[i:]


def module_path(src, file):
    """`a/b.rs` and `a/b/mod.rs` are `("a", "b")`; lib.rs and main.rs `()`."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


def split_items(group):
    """The items of a `{a, b::{c, d}}` group, split at its top-level commas."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(group):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(group[start:i])
            start = i + 1
    items.append(group[start:])
    return [item.strip() for item in items if item.strip()]


def expand(rest):
    """The paths a `use` tree starting at `rest` names, as segment lists."""
    rest = rest.lstrip()
    if rest.startswith("{"):
        depth = 0
        for i, c in enumerate(rest):
            depth += c == "{"
            depth -= c == "}"
            if depth == 0:
                break
        paths = []
        for item in split_items(rest[1:i]):
            paths.extend(expand(item))
        return paths
    m = re.match(rf"({IDENT})\s*(::\s*)?", rest)
    if not m:
        return [[]]
    if m.group(2) is None:
        return [[m.group(1)]]
    return [[m.group(1)] + tail for tail in expand(rest[m.end():])]


def inline_modules(code):
    """(start, end, name) of each inline `mod name { .. }` block."""
    blocks = []
    for m in re.finditer(rf"\bmod\s+({IDENT})\s*\{{", code):
        depth = 0
        for i in range(m.end() - 1, len(code)):
            depth += code[i] == "{"
            depth -= code[i] == "}"
            if depth == 0:
                blocks.append((m.start(), i, m.group(1)))
                break
    return blocks


class Crate:
    def __init__(self, src, split):
        self.src = src
        self.split = split
        self.files = {
            module_path(src, f): without_tests(strip(f.read_text())) for f in sorted(src.rglob("*.rs"))
        }
        self.modules = set(self.files)
        self.reexports = {path: self.reexports_of(path, code) for path, code in self.files.items()}

    def node(self, path):
        """The graph node of module `path`."""
        if not path:
            return "(root)"
        if path[0] in self.split and len(path) > 1:
            return "::".join(path[:2])
        return path[0]

    def reexports_of(self, path, code):
        """Names `path` re-exports from its own children: name -> child path."""
        names = {}
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", code):
            for segments in expand(m.group(1)):
                if len(segments) >= 2 and path + (segments[0],) in self.modules:
                    names[segments[-1]] = path + (segments[0],)
        return names

    def resolve(self, segments):
        """The module a path from the crate root names (through re-exports)."""
        path = ()
        for seg in segments:
            if path + (seg,) in self.modules:
                path = path + (seg,)
                continue
            seen = 0
            while seg in self.reexports.get(path, {}) and seen < 8:
                path, seen = self.reexports[path][seg], seen + 1
            break
        return path

    def references(self, path, code):
        """Module paths that `path`'s code names through crate:: or super::."""
        blocks = inline_modules(code)
        found = []
        for m in re.finditer(r"(?<![A-Za-z0-9_])(\$?crate|super)\s*::", code):
            here = path + tuple(name for start, end, name in blocks if start < m.start() < end)
            if m.group(1) == "super":
                base = here[:-1]
                rest = code[m.end():]
                while re.match(r"\s*super\s*::", rest):
                    base = base[:-1]
                    rest = rest[re.match(r"\s*super\s*::", rest).end():]
            else:
                base, rest = (), code[m.end():]
            for segments in expand(rest):
                found.append(self.resolve(list(base) + segments))
        return found

    def graph(self):
        edges = {}
        for path, code in self.files.items():
            source = self.node(path)
            edges.setdefault(source, set())
            for target in self.references(path, code):
                node = self.node(target)
                if node not in (source, "(root)"):
                    edges[source].add(node)
        return edges


def tarjan(edges):
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return components


def circle_through(start, component, edges):
    """One shortest circle from `start` back to it inside `component`."""
    members, queue, parent = set(component), [start], {start: None}
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                path = [v]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    return [start]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crates", nargs="*", help="crate directories (default: every crate of the workspace)")
    parser.add_argument("--split", default="blocking", help="modules whose submodules count one by one")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every edge")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    crates = [Path(c) for c in args.crates] or [root] + sorted(p.parent for p in root.glob("*/Cargo.toml"))
    split = set(filter(None, args.split.split(",")))
    circles = 0
    for crate in crates:
        src = crate / "src"
        if not src.is_dir():
            continue
        edges = Crate(src, split).graph()
        name = crate.name if crate != root else "shylock (facade)"
        count = sum(len(targets) for targets in edges.values())
        components = [c for c in tarjan(edges) if len(c) > 1]
        print(f"{name}: {len(edges)} modules, {count} edges, {len(components)} circle(s)")
        if args.verbose:
            for source in sorted(edges):
                for target in sorted(edges[source]):
                    print(f"    {source} -> {target}")
        for component in components:
            circles += 1
            print(f"  circle among {', '.join(component)}")
            print(f"    e.g. {' -> '.join(circle_through(component[0], component, edges))}")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
