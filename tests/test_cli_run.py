"""``toolforge run`` / ``test`` / ``add`` / ``state`` end to end through the real CLI error
boundary and the Docker backend: exact output lines and exit codes."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.sandbox_tools import call_containers, docker_cleanup, write_tool

pytestmark = pytest.mark.docker

TOOL_NAMES = [
    "word-count",
    "counter",
    "slugify",
    "cli-raiser",
    "cli-spin",
    "cli-hog",
    "cli-flaky",
    "cli-sigint",
]


@pytest.fixture(scope="module", autouse=True)
def base_images(tmp_path_factory: pytest.TempPathFactory):
    """Base images must exist (a no-op when they do); tool images made here are removed after."""
    from tests.conftest import docker_available

    if not docker_available()[0]:
        yield
        return
    from toolforge.config import load_settings
    from toolforge.sandbox.docker_client import client
    from toolforge.sandbox.images import build_base_images

    build_base_images(load_settings(home=tmp_path_factory.mktemp("base")))
    yield
    images = [
        t
        for name in TOOL_NAMES
        for img in client().api.images(filters={"label": f"io.toolforge.tool={name}"})
        for t in img.get("RepoTags") or []
    ]
    docker_cleanup(images, [])


def add(cli, path: Path, *flags: str) -> None:
    result = cli("add", str(path), *flags)
    assert result.code == 0, result


def test_run_prints_the_result_and_json(cli) -> None:
    add(cli, EXAMPLES / "word-count")
    r = cli("run", "word-count", "--arg", "text=hello big world", "--arg", "unique=true")
    assert (r.code, r.err) == (0, "")
    assert json.loads(r.out) == {"words": 3, "lines": 1, "chars": 15, "unique_words": 3}
    r = cli("run", "word-count@1", "--input", '{"text": "a b"}', "--json")
    data = json.loads(r.out)
    assert r.code == 0
    assert {k: data[k] for k in ("ok", "status", "result", "error", "truncated")} == {
        "ok": True,
        "status": "ok",
        "result": {"words": 2, "lines": 1, "chars": 3},
        "error": None,
        "truncated": False,
    }
    assert isinstance(data["duration_ms"], float)


def test_input_from_a_file_and_stdin_with_args_overriding(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(cli, EXAMPLES / "slugify", "--no-test")
    args = tmp_path / "args.json"
    args.write_text('{"text": "Hello There", "separator": "+"}')
    r = cli("run", "slugify", "--input", f"@{args}")
    assert (r.code, r.out) == (0, "hello+there\n")
    monkeypatch.setattr("sys.stdin", io.StringIO('{"text": "From Stdin"}'))
    r = cli("run", "slugify", "--input", "-", "--arg", "separator=_")
    assert (r.code, r.out) == (0, "from_stdin\n")


def test_bad_arguments_exit_2_before_any_container_starts(cli, tmp_path: Path) -> None:
    add(cli, EXAMPLES / "word-count", "--no-test")
    before = len(call_containers())
    r = cli("run", "word-count", "--arg", "unique=maybe", "--arg", "text=x")
    assert r.code == 2
    assert r.err == (
        "Error: Invalid arguments for word-count:\n"
        "  unique: 'maybe' is not of type 'boolean' (schema: properties/unique/type)\n"
        "See the parameters with: toolforge show word-count\n"
    )
    r = cli("run", "word-count")
    assert r.code == 2 and "<args>: 'text' is a required property (schema: required)" in r.err
    r = cli("run", "word-count", "--input", "[1, 2]")
    assert (r.code, r.err) == (
        2,
        'Error: --input must be a JSON object of arguments, e.g. {"text": "hi"}\n',
    )
    r = cli("run", "word-count", "--input", "{oops")
    assert r.code == 2 and r.err.startswith(
        "Error: --input is not valid JSON: Expecting property name"
    )
    r = cli("run", "word-count", "--arg", "novalue")
    assert (r.code, r.err) == (2, "Error: --arg expects KEY=VALUE, got 'novalue'\n")
    r = cli("run", "nope")
    assert r.code == 2 and r.err.startswith("Error: Unknown tool: nope")
    assert len(call_containers()) == before


def test_tool_failure_exits_1_with_the_tools_message(cli, tmp_path: Path) -> None:
    bundle = write_tool(
        tmp_path,
        "cli-raiser",
        "python",
        "import sys\ndef run(x: int):\n    print('thinking')\n    raise ValueError(f'bad x {x}')\n",
        parameters={"type": "object", "properties": {"x": {"type": "integer"}}},
    )
    add(
        cli,
        tmp_path / next(p.name for p in tmp_path.iterdir() if p.name.startswith(bundle.name)),
        "--no-test",
    )
    r = cli("run", "cli-raiser", "-a", "x=3")
    assert (r.code, r.out) == (1, "")
    assert r.err.endswith("Error: cli-raiser failed: ValueError: bad x 3\n")
    assert "── tool stdout ──\nthinking\n" in r.err
    r = cli("run", "cli-raiser", "-a", "x=3", "--json")
    data = json.loads(r.out)
    assert r.code == 1
    assert (data["ok"], data["status"], data["error"]["type"], data["error"]["message"]) == (
        False,
        "error",
        "ValueError",
        "bad x 3",
    )
    assert data["stdout"] == "thinking\n"


def test_timeout_and_oom_exit_4(cli, tmp_path: Path) -> None:
    spin = tmp_path / "spin"
    write_tool(spin, "cli-spin", "python", "def run():\n    while True:\n        pass\n")
    add(cli, next(spin.iterdir()), "--no-test")
    r = cli("run", "cli-spin", "--timeout", "1")
    assert r.code == 4
    assert r.err == (
        "Error: cli-spin exceeded its time limit of 1s; the work was killed\n"
        "Raise it with --timeout or limits.timeout_s in tool.yaml.\n"
    )
    assert call_containers("cli-spin") == []  # killed and removed, not just abandoned
    r = cli("run", "cli-spin", "--timeout", "0.5", "--json")
    assert r.code == 4 and json.loads(r.out)["status"] == "timeout"

    hog = tmp_path / "hog"
    write_tool(
        hog,
        "cli-hog",
        "python",
        "def run():\n    x = []\n    while True:\n        x.append(bytearray(1 << 23))\n",
        limits={"memory_mb": 48},
    )
    add(cli, next(hog.iterdir()), "--no-test")
    r = cli("run", "cli-hog")
    assert r.code == 4
    assert r.err.startswith("Error: cli-hog ran out of memory (limit 48 MB) and was killed\n")
    r = cli("run", "cli-hog", "--json")
    assert r.code == 4 and json.loads(r.out)["status"] == "oom"


def test_stateful_run_and_state_commands(cli, tmp_path: Path) -> None:
    add(cli, EXAMPLES / "counter")
    ns = "cli" + tmp_path.name[-8:].replace("_", "")
    try:
        assert json.loads(cli("run", "counter", "-a", "by=2", "--state-ns", ns).out) == {"count": 2}
        assert json.loads(cli("run", "counter", "-a", "by=3", "--state-ns", ns).out) == {"count": 5}
        r = cli("state", "show", "counter", "--ns", ns, "--json")
        shown = json.loads(r.out)
        assert shown["location"] == f"toolforge-state-counter-{ns}"
        assert shown["files"] == [{"path": "count", "size": 2, "preview": "5\n"}]
        archive = tmp_path / "counter.tgz"
        r = cli("state", "export", "counter", str(archive), "--ns", ns)
        assert (r.code, r.out) == (0, f"✓ Exported 1 file(s) of counter state to {archive}\n")
        r = cli("state", "reset", "counter", "--ns", ns, "--yes")
        assert r.out == f"✓ Reset the state of counter (namespace {ns})\n"
        r = cli("state", "show", "counter", "--ns", ns)
        assert r.out == (
            f"No state yet for counter: toolforge-state-counter-{ns} (namespace {ns}) does not exist.\n"
        )
        r = cli("state", "import", "counter", str(archive), "--ns", ns)
        assert r.out == "✓ Imported 1 file(s) into counter state\n"
        assert json.loads(cli("run", "counter", "--state-ns", ns).out) == {"count": 6}
        r = cli("state", "import", "counter", str(tmp_path / "missing.tgz"), "--ns", ns)
        assert r.code == 2 and "missing.tgz is not a file" in r.err
        add(cli, EXAMPLES / "word-count", "--no-test")
        r = cli("state", "show", "word-count")
        assert (r.code, r.err) == (
            2,
            "Error: word-count is not stateful, so it has no state\n"
            "Set stateful: true in tool.yaml.\n",
        )
    finally:
        cli("state", "reset", "counter", "--ns", ns, "--yes")


def test_test_command_stores_the_report(cli, tmp_path: Path) -> None:
    add(cli, EXAMPLES / "word-count", "--no-test")
    assert json.loads(cli("show", "word-count", "--json").out)["report"] is None
    r = cli("test", "word-count")
    assert r.code == 0
    assert r.out.splitlines()[-1] == "✓ word-count@1: 3/3 passed (docker)"
    report = json.loads(cli("show", "word-count", "--json").out)["report"]
    assert report["backend"] == "docker" and [c["passed"] for c in report["cases"]] == [
        True,
        True,
        True,
    ]
    assert report["image"].startswith("toolforge-tool-word-count:")
    r = cli("test", "word-count", "--json")
    assert r.code == 0 and json.loads(r.out)["tool"] == "word-count"


def test_add_refuses_a_tool_whose_tests_fail(cli, tmp_path: Path) -> None:
    folder = tmp_path / "flaky"
    write_tool(
        folder,
        "cli-flaky",
        "python",
        "def run(n: int):\n    return n + 1\n",
        parameters={"type": "object", "properties": {"n": {"type": "integer"}}},
        tests=[{"args": {"n": 1}, "expect": 2}, {"args": {"n": 2}, "expect": 4}],
    )
    path = next(folder.iterdir())
    r = cli("add", str(path))
    assert r.code == 1
    assert r.err == (
        "Error: cli-flaky: 1 of 2 test(s) failed\n"
        "  test 1: expected 4, got 3\n"
        "Nothing was registered. Fix the tool, or add it with --no-test.\n"
    )
    assert cli("list", "--json").out.strip() == "[]"
    r = cli("add", str(path), "--no-test")
    assert (r.code, r.out) == (0, "✓ Registered cli-flaky@1\n")
    r = cli("test", "cli-flaky")
    assert r.code == 1
    assert r.out.splitlines()[-1] == "✗ cli-flaky@1: 1/2 passed (docker)"
    assert json.loads(cli("show", "cli-flaky", "--json").out)["tests"] == "1/2 passed"


def test_ctrl_c_kills_the_call_and_removes_its_container(cli, tmp_path: Path) -> None:
    folder = tmp_path / "sigint"
    write_tool(
        folder,
        "cli-sigint",
        "python",
        "def run():\n    while True:\n        pass\n",
        limits={"timeout_s": 120},
    )
    add(cli, next(folder.iterdir()), "--no-test")
    toolforge = str(Path(sys.executable).with_name("toolforge"))
    proc = subprocess.Popen(
        [toolforge, "run", "cli-sigint"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not [c for c in call_containers("cli-sigint") if c["State"] == "running"]:
            assert time.monotonic() < deadline and proc.poll() is None, "the call never started"
            time.sleep(0.1)
        time.sleep(0.5)  # the runner is now in the tool's loop
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert err.endswith("Error: Interrupted\n") and out == ""
    assert call_containers("cli-sigint") == []


def test_a_result_over_the_output_limit_exits_4(cli, tmp_path: Path) -> None:
    big = tmp_path / "big"
    write_tool(
        big, "cli-big", "python", "def run():\n    return 'x' * 100_000\n", limits={"output_kb": 16}
    )
    add(cli, next(big.iterdir()), "--no-test")
    r = cli("run", "cli-big")
    assert r.code == 4
    assert r.err.startswith("Error: cli-big: ") and "output limit of 16 KB" in r.err
    assert "raise limits.output_kb in tool.yaml" in r.err
    r = cli("run", "cli-big", "--json")
    data = json.loads(r.out)
    assert r.code == 4 and data["error"]["type"] == "OutputLimitExceeded" and data["truncated"]
