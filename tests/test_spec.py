"""Tool specs and tool folders: valid ones load, every malformed one is refused with all its problems."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES
from toolforge.errors import ArgumentError, SpecError, UsageError
from toolforge.spec import (
    Language,
    ToolSpec,
    dump_spec_yaml,
    load_tool_dir,
    parse_arg_pairs,
    validate_args,
    write_tool_dir,
)

GOOD = {
    "name": "adder",
    "description": "Add two numbers.",
    "language": "python",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
    "tests": [{"args": {"a": 1, "b": 2}, "expect": 3}],
}
SOURCE = "def run(a, b):\n    return a + b\n"


def make_tool(
    root: Path,
    spec: object = None,
    *,
    source: str | bytes | None = SOURCE,
    main: str = "main.py",
    raw_yaml: str | bytes | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if raw_yaml is not None:
        data = raw_yaml if isinstance(raw_yaml, bytes) else raw_yaml.encode()
        (root / "tool.yaml").write_bytes(data)
    elif spec is not None:
        (root / "tool.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    if source is not None:
        (root / main).write_bytes(source if isinstance(source, bytes) else source.encode())
    return root


def with_(**changes: object) -> dict:
    spec = {k: v for k, v in GOOD.items()}
    for key, value in changes.items():
        if value is ...:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir()))
def test_examples_load(name: str) -> None:
    bundle = load_tool_dir(EXAMPLES / name)
    assert bundle.spec.name == name
    assert bundle.source.strip()
    assert len(bundle.spec.tests) >= 3


def test_good_tool_loads_with_defaults(tmp_path: Path) -> None:
    bundle = load_tool_dir(make_tool(tmp_path / "t", GOOD))
    spec = bundle.spec
    assert (spec.name, spec.version, spec.language) == ("adder", 1, Language.python)
    assert (spec.network, spec.stateful) == (False, False)
    assert spec.limits.timeout_s == 30 and spec.limits.memory_mb == 256 and spec.limits.pids == 64
    assert spec.tests[0].kind == "expect"


# Each case: (id, how to build the folder, the field path the error must name, words in the message)
MALFORMED = [
    ("missing-name", lambda p: make_tool(p, with_(name=...)), "name", "Field required"),
    (
        "missing-description",
        lambda p: make_tool(p, with_(description=...)),
        "description",
        "Field required",
    ),
    ("missing-language", lambda p: make_tool(p, with_(language=...)), "language", "Field required"),
    ("bad-name-uppercase", lambda p: make_tool(p, with_(name="Adder")), "name", "lowercase"),
    ("bad-name-too-long", lambda p: make_tool(p, with_(name="a" * 65)), "name", "at most 64"),
    ("unknown-language", lambda p: make_tool(p, with_(language="ruby")), "language", "python"),
    (
        "version-zero",
        lambda p: make_tool(p, with_(version=0)),
        "version",
        "greater than or equal to 1",
    ),
    ("version-not-int", lambda p: make_tool(p, with_(version="two")), "version", "integer"),
    (
        "parameters-not-object",
        lambda p: make_tool(p, with_(parameters={"type": "string"})),
        "parameters",
        '"type": "object"',
    ),
    (
        "invalid-json-schema",
        lambda p: make_tool(
            p, with_(parameters={"type": "object", "properties": {"a": {"type": "nmber"}}})
        ),
        "parameters",
        "not a valid JSON Schema",
    ),
    (
        "invalid-returns-schema",
        lambda p: make_tool(p, with_(returns={"type": 5})),
        "returns",
        "not a valid JSON Schema",
    ),
    (
        "negative-timeout",
        lambda p: make_tool(p, with_(limits={"timeout_s": -1})),
        "limits.timeout_s",
        "greater than 0",
    ),
    (
        "unknown-limit",
        lambda p: make_tool(p, with_(limits={"timeout": 5})),
        "limits.timeout",
        "unknown field",
    ),
    ("unknown-top-field", lambda p: make_tool(p, with_(nmae="x")), "nmae", "unknown field"),
    (
        "test-two-kinds",
        lambda p: make_tool(p, with_(tests=[{"args": {}, "expect": 1, "check": "result == 1"}])),
        "tests.0",
        "exactly one of",
    ),
    (
        "test-no-kind",
        lambda p: make_tool(p, with_(tests=[{"args": {}}])),
        "tests.0",
        "exactly one of",
    ),
    (
        "test-bad-check",
        lambda p: make_tool(p, with_(tests=[{"args": {}, "check": "result =="}])),
        "tests.0",
        "not a Python expression",
    ),
    (
        "bad-dependency",
        lambda p: make_tool(p, with_(dependencies={"pip": ["requests; rm -rf /"]})),
        "dependencies.pip",
        "invalid package spec",
    ),
    (
        "stateful-not-bool",
        lambda p: make_tool(p, with_(stateful="sometimes")),
        "stateful",
        "boolean",
    ),
    ("missing-main-file", lambda p: make_tool(p, GOOD, source=None), "main.py", "missing"),
    (
        "main-file-wrong-language",
        lambda p: make_tool(p, GOOD, main="main.sh"),
        "main.py",
        "does language match",
    ),
    ("empty-main-file", lambda p: make_tool(p, GOOD, source="   \n"), "main.py", "is empty"),
    (
        "non-utf8-main",
        lambda p: make_tool(p, GOOD, source=b"def run():\n    return '\xff'\n"),
        "main.py",
        "not valid UTF-8",
    ),
    (
        "non-utf8-yaml",
        lambda p: make_tool(p, raw_yaml=b"name: caf\xe9\n"),
        "tool.yaml",
        "not valid UTF-8",
    ),
    (
        "yaml-syntax-error",
        lambda p: make_tool(p, raw_yaml="name: [unclosed\n"),
        "tool.yaml",
        "YAML syntax error",
    ),
    (
        "yaml-not-mapping",
        lambda p: make_tool(p, raw_yaml="- just\n- a list\n"),
        "tool.yaml",
        "mapping",
    ),
    ("missing-tool-yaml", lambda p: make_tool(p, None), "tool.yaml", "missing"),
    (
        "not-a-directory",
        lambda p: (p.parent.mkdir(parents=True, exist_ok=True), p.write_text("x"), p)[2],
        "<root>",
        "not a directory",
    ),
]


@pytest.mark.parametrize(
    ("case", "build", "field", "words"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_tool_is_refused_naming_the_field(
    tmp_path: Path, case: str, build, field: str, words: str
) -> None:
    path = build(tmp_path / case)
    with pytest.raises(SpecError) as info:
        load_tool_dir(path)
    err = info.value
    assert err.exit_code == 2
    paths = [p or "<root>" for p, _ in err.problems]
    assert field in paths, f"{field} not in {err.problems}"
    message = dict((p or "<root>", m) for p, m in err.problems)[field]
    assert words in message, message


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = make_tool(
        tmp_path / "t", with_(name="Bad Name", version=0, limits={"pids": 1}), source=None
    )
    with pytest.raises(SpecError) as info:
        load_tool_dir(path)
    fields = {p for p, _ in info.value.problems}
    assert {"name", "version", "limits.pids", "main.py"} <= fields
    assert str(info.value).startswith(f"Invalid tool {path}: 4 problem(s)")


def test_yaml_roundtrip(tmp_path: Path) -> None:
    bundle = load_tool_dir(EXAMPLES / "counter")
    out = write_tool_dir(bundle, tmp_path / "copy")
    again = load_tool_dir(out)
    assert again.spec == bundle.spec and again.source == bundle.source
    assert (out / "main.sh").stat().st_mode & 0o111
    assert yaml.safe_load(dump_spec_yaml(bundle.spec))["tests"][2] == {
        "args": {"by": -2},
        "expect": {"count": 3},
    }


def test_content_hash_ignores_version_and_tests_but_not_source() -> None:
    bundle = load_tool_dir(EXAMPLES / "word-count")
    assert bundle.with_version(7).content_hash() == bundle.content_hash()
    changed = type(bundle)(bundle.spec, bundle.source + "\n# changed\n")
    assert changed.content_hash() != bundle.content_hash()


def test_arg_pairs_are_coerced_by_schema() -> None:
    spec = ToolSpec.model_validate(
        {
            **GOOD,
            "parameters": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer"},
                    "x": {"type": "number"},
                    "flag": {"type": "boolean"},
                    "name": {"type": "string"},
                    "items": {"type": "array"},
                    "any": {},
                },
            },
        }
    )
    args = parse_arg_pairs(
        ["n=3", "x=2.5", "flag=yes", "name=007", "items=[1,2]", 'any={"a": 1}'], spec
    )
    assert args == {"n": 3, "x": 2.5, "flag": True, "name": "007", "items": [1, 2], "any": {"a": 1}}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_arg_pairs(["novalue"], spec)


def test_validate_args_lists_every_problem_with_schema_path() -> None:
    spec = ToolSpec.model_validate(GOOD)
    with pytest.raises(ArgumentError) as info:
        validate_args(spec, {"a": "one"})
    problems = info.value.problems
    assert ("a", "'one' is not of type 'number' (schema: properties/a/type)") in problems
    assert any("'b' is a required property" in m for _, m in problems)
    assert info.value.exit_code == 2
    assert validate_args(spec, {"a": 1, "b": 2.5}) == {"a": 1, "b": 2.5}
