"""A small knowledge graph shared by the memory tests (ids 1–12 in this order)."""

from __future__ import annotations

from toolforge.memory.store import Graph

NODES = [
    ("code", "parse_args", "Parses command line arguments into an options object"),
    ("concept", "argument parsing", "Turning argv strings into typed options"),
    ("entity", "argparse", "The Python standard library module for command line parsing"),
    ("code", "load_config", "Reads the YAML configuration file from the home directory"),
    ("entity", "PyYAML", "YAML parser and emitter for Python"),
    ("concept", "configuration", "Settings that change how the program behaves"),
    ("code", "main", "Entry point: calls parse_args and load_config, then runs the command"),
    ("query", "how are settings loaded?", "Asked by the planner agent"),
    (
        "answer",
        "settings come from config.yaml",
        "load_config reads config.yaml under TOOLFORGE_HOME",
    ),
    ("event", "release 1.0", "Version 1.0 shipped with the new CLI"),
    ("entity", "Redis", "In-memory key value store used as a cache"),
    ("concept", "caching", "Keeping computed results to answer faster"),
]
EDGES = [
    ("main", "parse_args", "calls"),
    ("main", "load_config", "calls"),
    ("parse_args", "argparse", "uses"),
    ("parse_args", "argument parsing", "implements"),
    ("load_config", "PyYAML", "uses"),
    ("load_config", "configuration", "implements"),
    ("settings come from config.yaml", "how are settings loaded?", "answers"),
    ("settings come from config.yaml", "load_config", "about"),
    ("Redis", "caching", "implements"),
    ("release 1.0", "main", "about"),
]


def build(graph: Graph) -> Graph:
    for kind, label, content in NODES:
        graph.add_node(kind, label, content)
    for src, dst, kind in EDGES:
        graph.add_edge(src, dst, kind)
    return graph
