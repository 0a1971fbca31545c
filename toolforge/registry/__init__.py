"""The tool registry: tools on disk plus an index in SQLite."""

from toolforge.registry.store import Registry, ToolRecord, parse_ref

__all__ = ["Registry", "ToolRecord", "parse_ref"]
