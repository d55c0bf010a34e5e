#!/usr/bin/env python3
"""Checks the declared rust-version against what the dependencies need.

Reads `cargo metadata` (all features) and prints, for what users build
(the workspace's crates with their normal and build dependencies, all
features, every platform) and for the whole workspace on this platform
(dev dependencies too), the newest `rust-version` any package of that
graph declares. Exits 1 when what users build needs a newer Rust than the
workspace's `rust-version` says.

Clippy's `incompatible_msrv` lint (on in `cargo clippy -D warnings`)
checks the workspace's own code for standard library items newer than
`rust-version`; this script checks the dependencies.

    scripts/msrv.py            # report, exit 1 on a mismatch
"""
import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def show(v):
    return ".".join(str(p) for p in v[:2]) + ("" if v[2] == 0 else f".{v[2]}")


def metadata(*extra):
    return json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked", *extra],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )


def host():
    for line in subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout.splitlines():
        if line.startswith("host: "):
            return line.split(": ", 1)[1]
    sys.exit("error: rustc -vV names no host")


def graph(nodes, members, roots, with_dev):
    seen, stack = set(), list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for dep in nodes[node]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            # Dev dependencies count only for workspace members' own tests.
            if kinds == {"dev"} and not (with_dev and node in members):
                continue
            stack.append(dep["pkg"])
    return seen


def newest(packages, ids):
    found = [
        (version(packages[i]["rust_version"]), packages[i]["name"], packages[i]["version"])
        for i in ids
        if packages[i].get("rust_version")
    ]
    return max(found)


every = metadata()
packages = {p["id"]: p for p in every["packages"]}
members = set(every["workspace_members"])
nodes = {n["id"]: n for n in every["resolve"]["nodes"]}
user_need = newest(packages, graph(nodes, members, members, with_dev=False))
here = metadata("--filter-platform", host())
here_nodes = {n["id"]: n for n in here["resolve"]["nodes"]}
dev_need = newest(packages, graph(here_nodes, members, members, with_dev=True))

declared = {version(packages[i]["rust_version"]) for i in members if packages[i].get("rust_version")}
if len(declared) != 1:
    sys.exit(f"error: the workspace crates declare different rust-versions: {sorted(declared)}")
declared = declared.pop()
print(f"declared rust-version:          {show(declared)}")
print(f"the crates users build need:    {show(user_need[0])} ({user_need[1]} {user_need[2]})")
print(f"tests, examples, benches need:  {show(dev_need[0])} ({dev_need[1]} {dev_need[2]}), not part of rust-version")
if user_need[0] > declared:
    sys.exit(
        f"error: {user_need[1]} {user_need[2]} needs Rust {show(user_need[0])}, newer than the "
        f"declared rust-version {show(declared)}: raise rust-version in Cargo.toml"
    )
