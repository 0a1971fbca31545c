"""The registry commands end to end through the CLI's error boundary: exact lines, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.test_spec import GOOD, make_tool, with_


def test_add_no_test_list_show_remove(cli, toolforge_home: Path) -> None:
    r = cli("add", str(EXAMPLES / "word-count"), "--no-test")
    assert (r.code, r.out) == (0, "✓ Registered word-count@1\n")
    r = cli("add", str(EXAMPLES / "word-count"), "--no-test")
    assert (r.code, r.out) == (0, "✓ word-count@1 is already registered with the same content\n")

    r = cli("list", "--json")
    data = json.loads(r.out)
    assert r.code == 0 and [(d["name"], d["version"], d["versions"]) for d in data] == [
        ("word-count", 1, [1])
    ]

    r = cli("show", "word-count", "--json", "--source")
    shown = json.loads(r.out)
    assert shown["spec"]["parameters"]["required"] == ["text"]
    assert shown["source"] == (EXAMPLES / "word-count" / "main.py").read_text()
    assert shown["report"] is None

    r = cli("remove", "word-count", "--yes")
    assert (r.code, r.out) == (0, "✓ Removed word-count version(s) 1\n")
    r = cli("list")
    assert r.out.startswith("No tools registered yet.")


def test_second_add_of_changed_tool_is_version_2_and_export(cli, example, tmp_path: Path) -> None:
    src = example("counter")
    assert cli("add", str(src), "--no-test").code == 0
    (src / "main.sh").write_text((src / "main.sh").read_text() + "# changed\n")
    r = cli("add", str(src), "--no-test", "--json")
    assert json.loads(r.out)["version"] == 2
    r = cli("show", "counter@1")
    assert r.out.splitlines()[0].startswith("counter@1  (bash)")
    assert "versions: 1, 2" in r.out
    r = cli("export", "counter@1", str(tmp_path / "exported"))
    assert r.code == 0 and (tmp_path / "exported" / "tool.yaml").is_file()
    assert "# changed" not in (tmp_path / "exported" / "main.sh").read_text()
    r = cli("remove", "counter@2", "--yes")
    assert r.out == "✓ Removed counter version(s) 2\n"


BAD_DIRS = [
    ("bad-name", lambda p: make_tool(p, with_(name="Bad Name")), "name:"),
    (
        "bad-schema",
        lambda p: make_tool(
            p, with_(parameters={"type": "object", "properties": {"a": {"type": 3}}})
        ),
        "parameters:",
    ),
    ("no-main", lambda p: make_tool(p, GOOD, source=None), "main.py: missing"),
    ("yaml-error", lambda p: make_tool(p, raw_yaml="name: [x\n"), "tool.yaml: YAML syntax error"),
    ("not-utf8", lambda p: make_tool(p, GOOD, source=b"\xff\xfe"), "main.py: is not valid UTF-8"),
    ("unknown-language", lambda p: make_tool(p, with_(language="cobol")), "language:"),
]


@pytest.mark.parametrize(("case", "build", "expected"), BAD_DIRS, ids=[b[0] for b in BAD_DIRS])
def test_bad_tool_dirs_exit_2_and_write_nothing(
    cli, tmp_path: Path, toolforge_home: Path, case, build, expected
) -> None:
    path = build(tmp_path / case)
    r = cli("add", str(path), "--no-test")
    assert r.code == 2
    assert r.err.startswith("Error: Invalid tool ")
    assert expected in r.err
    assert "Traceback" not in r.err
    tools_dir = toolforge_home / "tools"
    assert not tools_dir.exists() or list(tools_dir.iterdir()) == []
    assert json.loads(cli("list", "--json").out) == []


def test_unknown_tool_is_exit_2_with_hint(cli) -> None:
    r = cli("show", "nope")
    assert r.code == 2
    assert r.err == "Error: Unknown tool: nope\nSee the registered tools with: toolforge list\n"
    r = cli("show", "nope@x")
    assert r.code == 2 and "expected NAME or NAME@VERSION" in r.err


def test_usage_errors_exit_2(cli) -> None:
    r = cli("add")
    assert r.code == 2 and "Missing argument" in r.err
    r = cli("no-such-command")
    assert r.code == 2


def test_version_and_debug_traceback(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    r = cli("--version")
    assert (r.code, r.out) == (0, "toolforge 0.1.0\n")
    monkeypatch.setenv("TOOLFORGE_DEBUG", "1")
    from toolforge.errors import NotFoundError

    with pytest.raises(NotFoundError):
        from toolforge.cli.app import main

        main(["show", "nope"])


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from toolforge.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('docker', 'litellm') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "HEAVY:"
