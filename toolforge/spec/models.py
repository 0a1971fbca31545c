"""The pydantic models of a tool: ToolSpec and its parts."""

from __future__ import annotations

import ast
import re
from enum import Enum
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
NAME_MAX = 64


class Language(str, Enum):
    python = "python"
    typescript = "typescript"
    bash = "bash"

    @property
    def main_file(self) -> str:
        return MAIN_FILES[self]


MAIN_FILES = {Language.python: "main.py", Language.typescript: "main.ts", Language.bash: "main.sh"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Limits(_Strict):
    """Per-call resource limits enforced by the sandbox."""

    timeout_s: float = Field(30.0, gt=0, le=3600, description="wall-time limit per call")
    memory_mb: int = Field(256, ge=16, le=65536, description="memory limit, swap disabled")
    cpus: float = Field(1.0, gt=0, le=64)
    pids: int = Field(64, ge=8, le=4096, description="max processes/threads in the container")
    output_kb: int = Field(1024, ge=1, le=65536, description="cap on result + stdout + stderr")


class Dependencies(_Strict):
    pip: list[str] = Field(default_factory=list)
    npm: list[str] = Field(default_factory=list)
    apt: list[str] = Field(default_factory=list)

    @field_validator("pip", "npm", "apt")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or any(ch in item for ch in " \t\n;&|`$"):
                raise ValueError(f"invalid package spec {item!r}")
        return value


def check_json_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise ValueError("must be a JSON Schema object (a mapping)")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path)
        raise ValueError(
            f"not a valid JSON Schema{f' at {where}' if where else ''}: {e.message}"
        ) from None
    return schema


class TestCase(_Strict):
    """One test: ``expect`` (equality), ``expect_error: true``, or ``check`` (a Python
    expression over ``result`` evaluated by toolforge, never by the tool)."""

    __test__ = False

    args: dict[str, Any] = Field(default_factory=dict)
    expect: Any = None
    expect_error: bool = False
    check: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TestCase:
        kinds: list[str] = [k for k in ("expect", "check") if k in self.model_fields_set]
        if self.expect_error:
            kinds.append("expect_error")
        if len(kinds) != 1:
            raise ValueError("a test needs exactly one of: expect, expect_error: true, check")
        if self.check is not None:
            try:
                ast.parse(self.check, mode="eval")
            except SyntaxError as e:
                raise ValueError(f"check is not a Python expression: {e.msg}") from None
        return self

    @property
    def kind(self) -> str:
        if self.expect_error:
            return "expect_error"
        return "check" if self.check is not None else "expect"


class ToolSpec(_Strict):
    """The typed spec of a tool, as stored in ``tool.yaml``."""

    name: str = Field(description="lowercase [a-z][a-z0-9_-]*, at most 64 characters")
    version: int = Field(1, ge=1)
    description: str = Field(min_length=1)
    language: Language
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    returns: dict[str, Any] | None = None
    dependencies: Dependencies = Field(default_factory=Dependencies)
    stateful: bool = False
    network: bool = False
    limits: Limits = Field(default_factory=Limits)
    tests: list[TestCase] = Field(default_factory=list)
    requirement: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > NAME_MAX:
            raise ValueError(f"must be at most {NAME_MAX} characters")
        if not NAME_RE.match(value):
            raise ValueError(
                "must be lowercase letters, digits, '_' or '-', starting with a letter"
            )
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: Any) -> dict[str, Any]:
        schema = check_json_schema(value)
        if schema.get("type") != "object":
            raise ValueError('must be a JSON Schema with "type": "object"')
        return schema

    @field_validator("returns")
    @classmethod
    def _returns(cls, value: Any) -> dict[str, Any] | None:
        return None if value is None else check_json_schema(value)

    @property
    def main_file(self) -> str:
        return self.language.main_file

    def to_yaml_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        data["tests"] = [_test_dict(t) for t in self.tests]
        return data


def _test_dict(test: TestCase) -> dict[str, Any]:
    data: dict[str, Any] = {"args": test.args}
    if test.kind == "expect":
        data["expect"] = test.expect
    elif test.kind == "check":
        data["check"] = test.check
    else:
        data["expect_error"] = True
    if test.description:
        data["description"] = test.description
    return data
