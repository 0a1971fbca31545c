"""The sandbox contract: ONE test class run against every backend (docker and local).

``TestSandboxContract`` holds behaviour every backend must show. ``TestDockerHardening``
holds what only the Docker backend promises — non-root uid, read-only root, no network,
no capabilities, OOM detection, pids limit, labels, orphan reaping — and is explicitly
Docker-only: the local backend is documented as NOT isolation.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.sandbox_tools import call_containers, docker_cleanup, write_tool
from toolforge.config import load_settings
from toolforge.errors import ArgumentError, UsageError
from toolforge.sandbox.backend import CallStatus
from toolforge.sandbox.service import Sandbox
from toolforge.spec import ToolBundle, load_tool_dir

BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), "local"]


def _make_sandbox(backend: str, home: Path) -> Sandbox:
    settings = load_settings(home=home, backend=backend, pool_size=2, pool_idle_ttl_s=120)
    settings.ensure_dirs()
    if backend == "docker":
        from toolforge.sandbox.images import build_base_images

        build_base_images(settings)
    return Sandbox(settings)


@pytest.fixture(scope="module", params=BACKENDS)
def sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    """One sandbox per backend for the whole module (its warm pool is shared by the tests).
    Afterwards every tool image and state volume it made is removed."""
    box = _make_sandbox(request.param, tmp_path_factory.mktemp(f"home-{request.param}"))
    box.volumes_made: list[str] = []  # type: ignore[attr-defined]
    yield box
    box.close()
    if request.param == "docker":
        docker_cleanup(list(box.backend._images.values()), box.volumes_made)  # type: ignore[attr-defined]


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    return tmp_path / "tools"


def fresh_ns(sandbox: Sandbox, bundle: ToolBundle) -> str:
    """A state namespace no one else uses; its volume is removed with the module."""
    ns = "t" + uuid.uuid4().hex[:10]
    if sandbox.backend.name == "docker":
        from toolforge.sandbox.state import volume_name

        sandbox.volumes_made.append(volume_name(bundle.name, ns))  # type: ignore[attr-defined]
    return ns


def session_gone(sandbox: Sandbox, meta: dict) -> bool:
    """The container (docker) or the runner process (local) of a finished call no longer exists."""
    if sandbox.backend.name == "docker":
        return not any(c["Id"].startswith(meta["container"]) for c in call_containers())
    try:
        os.kill(meta["pid"], 0)
    except ProcessLookupError:
        return True
    return False


class TestSandboxContract:
    # -- the example tools, one per language ---------------------------------------------
    def test_python_example_word_count(self, sandbox: Sandbox) -> None:
        bundle = load_tool_dir(EXAMPLES / "word-count")
        result = sandbox.call(bundle, {"text": "the quick brown fox", "unique": True})
        assert result.status is CallStatus.ok, result
        assert result.result == {"words": 4, "lines": 1, "chars": 19, "unique_words": 4}
        report = sandbox.run_tests(bundle)
        assert report.passed, report
        assert [c.passed for c in report.cases] == [True, True, True]
        assert report.backend == sandbox.backend.name

    def test_typescript_example_slugify(self, sandbox: Sandbox) -> None:
        bundle = load_tool_dir(EXAMPLES / "slugify")
        ok = sandbox.call(bundle, {"text": "Crème Brûlée recipe", "separator": "_"})
        assert (ok.status, ok.result) == (CallStatus.ok, "creme_brulee_recipe")
        failed = sandbox.call(bundle, {"text": "!!!"})
        assert failed.status is CallStatus.error
        assert failed.error["type"] == "Error"
        assert "no letters or digits" in failed.error["message"]
        assert sandbox.run_tests(bundle).passed

    def test_bash_example_counter_is_stateful(self, sandbox: Sandbox) -> None:
        bundle = load_tool_dir(EXAMPLES / "counter")
        ns = fresh_ns(sandbox, bundle)
        counts = [sandbox.call(bundle, {"by": by}, state_ns=ns).result for by in (1, 2, 3)]
        assert counts == [{"count": 1}, {"count": 3}, {"count": 6}]
        below = sandbox.call(bundle, {"by": -100}, state_ns=ns)
        assert below.status is CallStatus.error
        assert below.error["message"] == "the counter cannot go below zero (it is 6)"
        assert sandbox.run_tests(bundle).passed  # in a throwaway namespace: ours is untouched
        assert sandbox.call(bundle, {"by": 0}, state_ns=ns).result == {"count": 6}

    # -- arguments -----------------------------------------------------------------------
    def test_schema_errors_are_raised_before_anything_starts(self, sandbox: Sandbox) -> None:
        bundle = load_tool_dir(EXAMPLES / "word-count")
        started = sandbox.pool.started
        with pytest.raises(ArgumentError) as info:
            sandbox.call(bundle, {"text": 3, "colour": "red"})
        message = str(info.value)
        assert "text: 3 is not of type 'string' (schema: properties/text/type)" in message
        assert "Additional properties are not allowed ('colour' was unexpected)" in message
        with pytest.raises(ArgumentError, match="'text' is a required property"):
            sandbox.call(bundle, {})
        assert sandbox.pool.started == started

    # -- state ---------------------------------------------------------------------------
    def test_state_survives_restarts_and_a_v2_upgrade(self, sandbox: Sandbox) -> None:
        v1 = load_tool_dir(EXAMPLES / "counter")
        ns = fresh_ns(sandbox, v1)
        assert sandbox.call(v1, {"by": 5}, state_ns=ns).result == {"count": 5}
        first = sandbox.call(v1, {"by": 1}, state_ns=ns)
        # restart: close every warm session (containers removed), then call again
        sandbox.pool.drop(lambda key: True)
        again = sandbox.call(v1, {"by": 1}, state_ns=ns)
        assert again.result == {"count": 7}
        assert again.meta["warm"] is False
        if sandbox.backend.name == "docker":
            assert again.meta["container"] != first.meta["container"]
        # v2: different code (prints the count doubled in a new field), same state
        source = v1.source.replace(
            'printf \'{"count": %d}\\n\' "$count"',
            'printf \'{"count": %d, "double": %d}\\n\' "$count" "$((count * 2))"',
        )
        assert source != v1.source
        v2 = ToolBundle(v1.spec.model_copy(update={"version": 2}), source)
        assert sandbox.call(v2, {"by": 1}, state_ns=ns).result == {"count": 8, "double": 16}

    def test_concurrent_increments_are_serialised(self, sandbox: Sandbox) -> None:
        bundle = load_tool_dir(EXAMPLES / "counter")
        ns = fresh_ns(sandbox, bundle)
        results: list[int] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                r = sandbox.call(bundle, {"by": 1}, state_ns=ns)
                assert r.ok, r
                results.append(r.result["count"])
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(results) == list(range(1, 51))
        assert sandbox.call(bundle, {"by": 0}, state_ns=ns).result == {"count": 50}

    def test_state_export_import_reset(self, sandbox: Sandbox, tmp_path: Path) -> None:
        bundle = load_tool_dir(EXAMPLES / "counter")
        ns = fresh_ns(sandbox, bundle)
        sandbox.call(bundle, {"by": 41}, state_ns=ns)
        snap = sandbox.show_state(bundle, ns)
        assert snap.exists
        assert [(f.path, f.preview) for f in snap.files] == [("count", "41\n")]
        archive = tmp_path / "state.tar.gz"
        assert sandbox.export_state(bundle, archive, ns) == 1
        assert sandbox.reset_state(bundle, ns) is True
        assert sandbox.call(bundle, {"by": 1}, state_ns=ns).result == {"count": 1}
        assert sandbox.import_state(bundle, archive, ns) == 1
        assert sandbox.call(bundle, {"by": 1}, state_ns=ns).result == {"count": 42}
        assert sandbox.reset_state(bundle, ns) is True
        assert sandbox.show_state(bundle, ns).exists is False
        assert sandbox.reset_state(bundle, ns) is False

    def test_cold_path_runs_stateful_tests_and_leaves_no_test_state(self, sandbox: Sandbox) -> None:
        bundle = load_tool_dir(EXAMPLES / "counter")
        with Sandbox(sandbox.settings.model_copy(update={"pool_size": 0})) as cold:
            report = cold.run_tests(bundle)
            assert report.passed, report
            assert cold.pool.idle_count() == 0 and cold.pool.started == len(bundle.spec.tests)
        if sandbox.backend.name == "docker":
            from toolforge.sandbox.docker_client import client

            volumes = (
                client().api.volumes(filters={"label": "io.toolforge.tool=counter"})["Volumes"]
                or []
            )
            assert [
                v["Name"]
                for v in volumes
                if v["Labels"].get("io.toolforge.state_ns", "").startswith("test-")
            ] == []
        else:
            assert list((sandbox.settings.home / "state").glob("counter-test-*")) == []

    def test_state_namespace_rules(self, sandbox: Sandbox) -> None:
        counter = load_tool_dir(EXAMPLES / "counter")
        with pytest.raises(UsageError, match="Bad state namespace"):
            sandbox.call(counter, {}, state_ns="../x")
        with pytest.raises(UsageError, match="not stateful"):
            sandbox.call(load_tool_dir(EXAMPLES / "word-count"), {"text": "x"}, state_ns="a")

    # -- limits --------------------------------------------------------------------------
    def test_timeout_kills_an_infinite_loop(self, sandbox: Sandbox, tools: Path) -> None:
        bundle = write_tool(
            tools,
            "spin",
            "python",
            "def run():\n    while True:\n        pass\n",
            limits={"timeout_s": 1},
        )
        started = time.monotonic()
        result = sandbox.call(bundle, {})
        assert result.status is CallStatus.timeout
        assert result.error["type"] == "Timeout"
        assert "exceeded its time limit of 1s; the work was killed" in result.error["message"]
        assert time.monotonic() - started < 30
        assert session_gone(sandbox, result.meta)
        # an explicit, shorter timeout wins over the spec's
        assert sandbox.call(bundle, {}, timeout_s=0.5).status is CallStatus.timeout

    def test_huge_output_is_capped_with_a_marker(self, sandbox: Sandbox, tools: Path) -> None:
        source = """
            import sys
            def run(n: int, ret: int = 0):
                sys.stdout.write("o" * n)
                sys.stderr.write("e" * n)
                return "r" * ret
        """
        bundle = write_tool(
            tools,
            "chatty",
            "python",
            source,
            limits={"output_kb": 16},
            parameters={
                "type": "object",
                "properties": {"n": {"type": "integer"}, "ret": {"type": "integer"}},
            },
        )
        small = sandbox.call(bundle, {"n": 100})
        assert (small.ok, small.truncated, small.stdout, small.stderr) == (
            True,
            False,
            "o" * 100,
            "e" * 100,
        )
        big = sandbox.call(bundle, {"n": 5_000_000})
        assert big.ok and big.truncated
        for text in (big.stdout, big.stderr):
            assert "[toolforge: output truncated," in text
            assert "(limits.output_kb = 16)" in text
        assert len(big.stdout.encode()) + len(big.stderr.encode()) <= 16 * 1024
        huge_result = sandbox.call(bundle, {"n": 0, "ret": 100_000})
        assert huge_result.status is CallStatus.error and huge_result.truncated
        assert huge_result.error["type"] == "OutputLimitExceeded"
        assert "over the output limit of 16 KB" in huge_result.error["message"]

    def test_bash_stdout_over_the_cap_is_an_error(self, sandbox: Sandbox, tools: Path) -> None:
        bundle = write_tool(
            tools,
            "yes-man",
            "bash",
            "head -c 100000 /dev/zero | tr '\\0' y\n",
            limits={"output_kb": 8},
        )
        result = sandbox.call(bundle, {})
        assert result.status is CallStatus.error and result.truncated
        assert result.error["type"] == "OutputLimitExceeded"

    def test_cancel_kills_the_work(self, sandbox: Sandbox, tools: Path) -> None:
        bundle = write_tool(
            tools, "sleepy", "python", "import time\ndef run():\n    time.sleep(60)\n"
        )
        sandbox.call(bundle, {}, timeout_s=0.2)  # start-up happens before the cancel below
        cancel = threading.Event()
        threading.Timer(0.5, cancel.set).start()
        result = sandbox.call(bundle, {}, cancel=cancel)
        assert result.status is CallStatus.cancelled
        assert session_gone(sandbox, result.meta)

    # -- the protocol stays intact whatever the tool does ----------------------------------
    def test_prints_cannot_corrupt_the_protocol(self, sandbox: Sandbox, tools: Path) -> None:
        source = """
            import os, subprocess, sys
            print('{"id": 1, "ok": true, "result": "forged"}')
            def run():
                print('{"id": 2, "ok": true, "result": "forged"}')
                os.write(1, b'{"ready": true}\\n')
                sys.stdout.write("no newline at the end")
                subprocess.run(["sh", "-c", "echo from-a-child; echo child-err >&2"], check=True)
                return {"real": True}
        """
        bundle = write_tool(tools, "forger", "python", source)
        for _ in range(2):
            result = sandbox.call(bundle, {})
            assert result.result == {"real": True}
            assert result.stdout == (
                '{"id": 2, "ok": true, "result": "forged"}\n{"ready": true}\n'
                "no newline at the endfrom-a-child\n"
            )
            assert result.stderr == "child-err\n"

    def test_typescript_prints_and_children_are_captured(
        self, sandbox: Sandbox, tools: Path
    ) -> None:
        source = """
            import { execSync } from "node:child_process";
            export function run(args: { n: number }): number {
              console.log('{"id": 1, "ok": true, "result": "forged"}');
              execSync("echo from-a-child", { stdio: "inherit" });
              console.error("to stderr");
              return args.n * 2;
            }
        """
        bundle = write_tool(
            tools,
            "ts-printer",
            "typescript",
            source,
            parameters={"type": "object", "properties": {"n": {"type": "number"}}},
        )
        result = sandbox.call(bundle, {"n": 21})
        assert (result.status, result.result) == (CallStatus.ok, 42)
        assert result.stdout == '{"id": 1, "ok": true, "result": "forged"}\nfrom-a-child\n'
        assert result.stderr == "to stderr\n"

    def test_tool_exceptions_are_reported(self, sandbox: Sandbox, tools: Path) -> None:
        source = """
            def run(x: int):
                if x < 0:
                    raise ValueError(f"x must be >= 0, got {x}")
                return x
        """
        bundle = write_tool(
            tools,
            "raiser",
            "python",
            source,
            parameters={"type": "object", "properties": {"x": {"type": "integer"}}},
        )
        result = sandbox.call(bundle, {"x": -1})
        assert result.status is CallStatus.error
        assert (result.error["type"], result.error["message"]) == (
            "ValueError",
            "x must be >= 0, got -1",
        )
        assert result.error["traceback"].startswith("Traceback (most recent call last):\n  File ")
        assert "runner.py" not in result.error["traceback"]
        assert sandbox.call(bundle, {"x": 2}).result == 2  # the session lives on

    def test_bash_env_args_and_json_stdin(self, sandbox: Sandbox, tools: Path) -> None:
        source = """
            read -r json
            printf '{"name": "%s", "flag": "%s", "n": "%s", "stdin": %s}' "$ARG_USER_NAME" "$ARG_FLAG" "$ARG_N" "$json"
        """
        params = {
            "type": "object",
            "properties": {
                "user-name": {"type": "string"},
                "flag": {"type": "boolean"},
                "n": {"type": "number"},
            },
        }
        bundle = write_tool(tools, "envy", "bash", source, parameters=params)
        result = sandbox.call(bundle, {"user-name": "ada", "flag": True, "n": 2.5})
        assert result.result == {
            "name": "ada",
            "flag": "true",
            "n": "2.5",
            "stdin": {"user-name": "ada", "flag": True, "n": 2.5},
        }
        text = write_tool(tools, "plain", "bash", "echo '  just text  '\n")
        assert sandbox.call(text, {}).result == "just text"

    def test_a_tool_that_does_not_load_reports_why(self, sandbox: Sandbox, tools: Path) -> None:
        broken = write_tool(tools, "broken", "python", "def run(:\n    pass\n")
        result = sandbox.call(broken, {})
        assert result.status is CallStatus.error
        assert result.error["type"] == "SyntaxError"
        assert result.error["message"].startswith("loading the tool failed:")
        no_run = write_tool(tools, "no-run", "python", "def main():\n    return 1\n")
        result = sandbox.call(no_run, {})
        assert (result.error["type"], result.error["message"]) == (
            "ToolLoadError",
            "main.py defines no run() function (it must: def run(**args) -> result)",
        )

    def test_a_runner_that_dies_is_a_crash_and_is_replaced(
        self, sandbox: Sandbox, tools: Path
    ) -> None:
        source = "import os\ndef run(die: bool = False):\n    if die:\n        os._exit(3)\n    return 'alive'\n"
        bundle = write_tool(
            tools,
            "mortal",
            "python",
            source,
            parameters={"type": "object", "properties": {"die": {"type": "boolean"}}},
        )
        assert sandbox.call(bundle, {}).result == "alive"
        crashed = sandbox.call(bundle, {"die": True})
        assert crashed.status is CallStatus.crashed
        assert "exited with status 3 without answering" in crashed.error["message"]
        assert sandbox.call(bundle, {}).result == "alive"

    def test_a_warm_session_killed_from_outside_is_replaced(
        self, sandbox: Sandbox, tools: Path
    ) -> None:
        bundle = write_tool(
            tools, "victim", "python", "import os\ndef run():\n    return os.getpid()\n"
        )
        first = sandbox.call(bundle, {})
        assert sandbox.call(bundle, {}).meta["warm"]
        if sandbox.backend.name == "docker":
            from toolforge.sandbox.docker_client import client

            client().api.kill(first.meta["container"])
        else:
            os.kill(first.meta["pid"], 9)
        time.sleep(0.2)
        again = sandbox.call(bundle, {})  # not an error: the request never reached the dead one
        assert again.ok and again.meta["warm"] is False

    def test_run_tests_reports_each_kind_of_case(self, sandbox: Sandbox, tools: Path) -> None:
        tests = [
            {"args": {"x": 2}, "expect": 4.0},  # int/float tolerance: passes
            {"args": {"x": 2}, "expect": 5},  # fails
            {"args": {"x": -1}, "expect_error": True},  # passes
            {"args": {"x": 1}, "expect_error": True},  # fails: it succeeded
            {"args": {"x": 3}, "check": "result > 5 and isinstance(result, int)"},  # passes
            {"args": {"x": 3}, "check": "result.__class__ is int"},  # not allowed: fails
            {"args": {"x": "nope"}, "expect_error": True},  # schema rejects: passes
        ]
        source = (
            "def run(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x * 2\n"
        )
        bundle = write_tool(
            tools,
            "doubler",
            "python",
            source,
            tests=tests,
            parameters={"type": "object", "properties": {"x": {"type": "integer"}}},
        )
        report = sandbox.run_tests(bundle)
        assert [c.passed for c in report.cases] == [True, False, True, False, True, False, True]
        assert report.cases[1].detail == "expected 5, got 4"
        assert report.cases[3].detail == "expected an error, got ok: 2"
        assert "Attribute, which is not allowed" in report.cases[5].detail
        assert report.cases[6].detail == "rejected by the parameter schema"
        assert report.summary == "4/7 passed" and not report.passed


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A Docker sandbox for the Docker-only tests."""
    box = _make_sandbox("docker", tmp_path_factory.mktemp("home-hardening"))
    yield box
    box.close()
    docker_cleanup(list(box.backend._images.values()), [])  # type: ignore[attr-defined]


@pytest.mark.docker
class TestDockerHardening:
    """Docker-only: what the container promises that a host process (local backend) cannot."""

    def test_non_root_without_capabilities(self, hardened: Sandbox, tools: Path) -> None:
        source = """
            import os
            def run():
                status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
                return {"uid": os.getuid(), "gid": os.getgid(), "cap_eff": status["CapEff"].strip(),
                        "cap_prm": status["CapPrm"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
                        "docker_sock": os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock")}
        """
        result = hardened.call(write_tool(tools, "whoami", "python", source), {})
        assert result.result == {
            "uid": 10001,
            "gid": 10001,
            "cap_eff": "0000000000000000",
            "cap_prm": "0000000000000000",
            "no_new_privs": "1",
            "docker_sock": False,
        }

    def test_only_state_and_tmp_are_writable(self, hardened: Sandbox, tools: Path) -> None:
        source = """
            import os
            def run():
                out = {}
                for path in ["/opt/tool/x", "/etc/x", "/x", "/usr/x", "/tmp/x", "/state/x"]:
                    try:
                        with open(path, "w") as fh:
                            fh.write("hi")
                        out[path] = "written"
                    except OSError as e:
                        out[path] = e.strerror
                return out
        """
        bundle = write_tool(tools, "writer", "python", source, stateful=True)
        ns = "t" + uuid.uuid4().hex[:8]
        try:
            result = hardened.call(bundle, {}, state_ns=ns)
            assert result.result == {
                "/opt/tool/x": "Read-only file system",
                "/etc/x": "Read-only file system",
                "/x": "Read-only file system",
                "/usr/x": "Read-only file system",
                "/tmp/x": "written",
                "/state/x": "written",
            }
        finally:
            hardened.reset_state(bundle, ns)

    def test_no_network_unless_the_spec_asks(self, hardened: Sandbox, tools: Path) -> None:
        try:
            address = socket.getaddrinfo("deb.debian.org", 80, socket.AF_INET)[0][4][0]
        except OSError:
            pytest.skip(
                "the host cannot resolve deb.debian.org, so there is no reachable address to try"
            )
        source = """
            import socket
            def run(ip: str):
                try:
                    socket.create_connection((ip, 80), timeout=5).close()
                    return "connected"
                except OSError as e:
                    return f"failed: {e.strerror or e}"
        """
        params = {"type": "object", "properties": {"ip": {"type": "string"}}}
        offline = hardened.call(
            write_tool(tools, "netless", "python", source, parameters=params), {"ip": address}
        )
        assert offline.result.startswith("failed: ")
        assert "unreachable" in offline.result.lower()
        online = hardened.call(
            write_tool(tools, "netful", "python", source, parameters=params, network=True),
            {"ip": address},
        )
        assert online.result == "connected"  # the control: the same code can connect when allowed

    def test_memory_bomb_is_reported_as_oom(self, hardened: Sandbox, tools: Path) -> None:
        source = """
            def run():
                hog = []
                while True:
                    hog.append(bytearray(8 * 1024 * 1024))
        """
        bundle = write_tool(
            tools, "hog", "python", source, limits={"memory_mb": 64, "timeout_s": 60}
        )
        result = hardened.call(bundle, {})
        assert result.status is CallStatus.oom
        assert result.error["type"] == "OutOfMemory"
        assert "hog ran out of memory (limit 64 MB) and was killed" in result.error["message"]
        assert session_gone(hardened, result.meta)

    def test_memory_bomb_in_a_bash_child_is_reported_as_oom(
        self, hardened: Sandbox, tools: Path
    ) -> None:
        source = "python3 -c 'x = bytearray(200 * 1024 * 1024); print(len(x))'\n"
        bundle = write_tool(
            tools, "bash-hog", "bash", source, limits={"memory_mb": 64, "timeout_s": 60}
        )
        result = hardened.call(bundle, {})
        assert result.status is CallStatus.oom, result

    def test_fork_bomb_is_contained_by_the_pids_limit(self, hardened: Sandbox, tools: Path) -> None:
        source = """
            import os, time
            def run():
                children = 0
                try:
                    while children < 1000:
                        if os.fork() == 0:
                            time.sleep(60)
                            os._exit(0)
                        children += 1
                except OSError as e:
                    return {"children": children, "error": e.strerror}
                return {"children": children, "error": None}
        """
        bundle = write_tool(tools, "forker", "python", source, limits={"pids": 16, "timeout_s": 30})
        result = hardened.call(bundle, {})
        assert result.ok, result
        assert result.result["error"] == "Resource temporarily unavailable"
        assert 0 < result.result["children"] < 16
        # the strays were swept: the same warm container forks as many again
        again = hardened.call(bundle, {})
        assert again.meta["warm"] and again.result == result.result

    def test_classic_bash_fork_bomb(self, hardened: Sandbox, tools: Path) -> None:
        """The bomb runs for a second against the pids limit (forks fail), then the script ends
        and the runner kills what is left; the container and other tools stay healthy."""
        bundle = write_tool(
            tools,
            "bomb",
            "bash",
            "bomb() { bomb | bomb & }; bomb\nsleep 1\necho survived\n",
            limits={"pids": 32, "timeout_s": 5},
        )
        result = hardened.call(bundle, {})
        if result.status is CallStatus.timeout:
            assert session_gone(hardened, result.meta)
        else:
            assert result.status in (CallStatus.ok, CallStatus.error), result
            assert "fork: retry: Resource temporarily unavailable" in result.stderr
        healthy = hardened.call(load_tool_dir(EXAMPLES / "word-count"), {"text": "still fine"})
        assert healthy.result["words"] == 2

    def test_containers_are_labelled_and_limited(self, hardened: Sandbox, tools: Path) -> None:
        from toolforge.sandbox.docker_client import client

        bundle = write_tool(
            tools,
            "labelled",
            "python",
            "def run():\n    return 1\n",
            limits={"memory_mb": 96, "cpus": 0.5, "pids": 40},
        )
        result = hardened.call(bundle, {}, labels={"io.toolforge.job": "job-123"})
        info = client().api.inspect_container(result.meta["container"])
        labels = info["Config"]["Labels"]
        assert labels["io.toolforge"] == "1" and labels["io.toolforge.kind"] == "call"
        assert labels["io.toolforge.tool"] == "labelled" and labels["io.toolforge.job"] == "job-123"
        assert labels["io.toolforge.owner"] == f"{socket.gethostname()}:{os.getpid()}"
        host = info["HostConfig"]
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
        assert host["SecurityOpt"] == ["no-new-privileges"] and host["NetworkMode"] == "none"
        assert host["Memory"] == host["MemorySwap"] == 96 * 1024 * 1024
        assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 40
        assert host["Binds"] is None and host["Privileged"] is False
        assert info["Config"]["User"] == "10001:10001"
        assert list(host["Tmpfs"]) == ["/tmp"]

    def test_orphans_of_dead_processes_are_reaped(self, hardened: Sandbox, tools: Path) -> None:
        from toolforge.sandbox.docker_backend import DockerBackend
        from toolforge.sandbox.docker_client import client

        bundle = write_tool(tools, "orphan", "python", "def run():\n    return 1\n")
        image = hardened.build(bundle)
        dead_pid = _dead_pid()
        api = client().api
        labels = {
            "io.toolforge": "1",
            "io.toolforge.kind": "call",
            "io.toolforge.tool": "orphan",
            "io.toolforge.owner": f"{socket.gethostname()}:{dead_pid}",
        }
        orphan = api.create_container(
            image, labels=labels, name=f"toolforge-orphan-{uuid.uuid4().hex[:6]}"
        )["Id"]
        alive_labels = {**labels, "io.toolforge.owner": f"{socket.gethostname()}:{os.getpid()}"}
        mine = api.create_container(image, labels=alive_labels)["Id"]
        try:
            assert isinstance(hardened.backend, DockerBackend)
            assert hardened.reap_orphans() >= 1
            ids = {c["Id"] for c in call_containers("orphan")}
            assert orphan not in ids and mine in ids
        finally:
            for cid in (orphan, mine):
                with contextlib.suppress(Exception):
                    api.remove_container(cid, force=True)


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_local_backend_warns_that_it_is_not_isolation(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from toolforge.sandbox import local_backend

    local_backend._warned.clear()
    box = Sandbox(load_settings(home=tmp_path, backend="local"))
    box.close()
    err = capfd.readouterr().err
    assert "This is NOT isolation" in err
    Sandbox(load_settings(home=tmp_path, backend="local")).close()
    assert capfd.readouterr().err == ""  # once per process


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Unknown sandbox backend 'podman'"):
        Sandbox(load_settings(home=tmp_path, backend="podman"))


def test_local_typescript_needs_esbuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolforge.errors import EnvironmentUnavailable

    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name == "esbuild" else real_which(name)
    )
    with (
        Sandbox(load_settings(home=tmp_path, backend="local")) as box,
        pytest.raises(
            EnvironmentUnavailable, match=r"needs node and esbuild .* \(missing: esbuild\)"
        ),
    ):
        box.call(load_tool_dir(EXAMPLES / "slugify"), {"text": "x"})


@pytest.mark.docker
def test_docker_backend_reports_the_engine_available(tmp_path) -> None:
    from toolforge.config import load_settings
    from toolforge.sandbox.service import Sandbox

    with Sandbox(load_settings()) as sandbox:
        assert sandbox.backend.name == "docker"
        assert sandbox.available() is True


def test_docker_backend_reports_an_unreachable_engine(monkeypatch) -> None:
    from toolforge.sandbox import docker_client
    from toolforge.sandbox.docker_backend import DockerBackend

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    backend = DockerBackend.__new__(DockerBackend)  # no engine needed to ask
    try:
        assert backend.available() is False
    finally:
        monkeypatch.delenv("DOCKER_HOST")
        docker_client.reset_client()
