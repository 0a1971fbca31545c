"""Tool specs: the pydantic models, tool directories, and call-argument validation."""

from toolforge.spec.args import coerce, parse_arg_pairs, validate_args
from toolforge.spec.bundle import (
    SPEC_FILE,
    ToolBundle,
    dump_spec_yaml,
    load_tool_dir,
    parse_spec,
    write_tool_dir,
)
from toolforge.spec.models import MAIN_FILES, Dependencies, Language, Limits, TestCase, ToolSpec
from toolforge.spec.report import CaseResult, TestReport

__all__ = [
    "MAIN_FILES",
    "SPEC_FILE",
    "CaseResult",
    "Dependencies",
    "Language",
    "Limits",
    "TestCase",
    "TestReport",
    "ToolBundle",
    "ToolSpec",
    "coerce",
    "dump_spec_yaml",
    "load_tool_dir",
    "parse_arg_pairs",
    "parse_spec",
    "validate_args",
    "write_tool_dir",
]
