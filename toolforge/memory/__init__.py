"""Graph memory: a knowledge graph agents read and write instead of carrying everything in context.

with Forge() as forge:
    g = forge.memory("project")
    g.add_node("code", "parse_args", "CLI argument parser")
    g.add_node("concept", "argument parsing")
    g.add_edge("parse_args", "argument parsing", "implements")
    hits = g.query("argument parser", "similarity")
"""

from toolforge.memory.models import (
    EDGE_TYPES,
    Direction,
    Edge,
    GraphInfo,
    Hit,
    Mode,
    Node,
    NodeType,
    Relation,
)
from toolforge.memory.store import Graph, MemoryStore

__all__ = [
    "EDGE_TYPES",
    "Direction",
    "Edge",
    "Graph",
    "GraphInfo",
    "Hit",
    "MemoryStore",
    "Mode",
    "Node",
    "NodeType",
    "Relation",
]
