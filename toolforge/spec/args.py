"""Call arguments: coerce ``--arg k=v`` strings by the schema, then validate."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator

from toolforge.errors import ArgumentError, UsageError
from toolforge.spec.models import ToolSpec


def parse_arg_pairs(pairs: Iterable[str], spec: ToolSpec) -> dict[str, Any]:
    """Turn ``["n=3", "name=x"]`` into typed values using the parameter schema."""
    props = spec.parameters.get("properties", {})
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--arg expects KEY=VALUE, got {pair!r}")
        args[key] = coerce(raw, props.get(key, {}))
    return args


def coerce(raw: str, schema: dict[str, Any]) -> Any:
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if types == ["string"]:
        return raw
    if not types and "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return raw
    for kind in types or ["json"]:
        try:
            if kind == "integer":
                return int(raw)
            if kind == "number":
                return float(raw) if any(c in raw for c in ".eE") else int(raw)
            if kind == "boolean":
                low = raw.lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                continue
            if kind == "null" and raw in ("null", ""):
                return None
            if kind in ("array", "object", "json"):
                return json.loads(raw)
        except (ValueError, json.JSONDecodeError):
            continue
    return raw  # let validation report the type mismatch with the schema path


def validate_args(spec: ToolSpec, args: Any) -> dict[str, Any]:
    """Validate ``args`` against the tool's parameter schema; raise ArgumentError listing all."""
    if not isinstance(args, dict):
        raise ArgumentError(spec.name, [("", "arguments must be a JSON object")])
    validator = Draft202012Validator(spec.parameters)
    problems = []
    for err in sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in err.absolute_path)
        schema_path = "/".join(str(p) for p in err.absolute_schema_path)
        problems.append((path, f"{err.message} (schema: {schema_path})"))
    if problems:
        raise ArgumentError(spec.name, problems)
    return args
