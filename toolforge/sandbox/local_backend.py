"""The local backend: the same runner as a host subprocess, for machines without Docker.

This is NOT isolation. A tool runs as the invoking user with resource limits (RLIMIT_AS
for memory, RLIMIT_CPU, RLIMIT_NPROC when not root — the kernel exempts root from it), a
fresh temp folder as its cwd, HOME and TMPDIR, a minimal environment, and its state in
``$TOOLFORGE_HOME/state/<tool>[-<ns>]``. When ``bwrap`` (bubblewrap) is installed and works it
adds a read-only view of the host, a private /tmp, new pid/ipc/uts namespaces, no network
unless the spec asks, and no capabilities — better, still not a container. A loud warning
says so once per process (and ``toolforge doctor`` repeats it). Set TOOLFORGE_LOCAL_BWRAP=0
to skip bubblewrap.

TypeScript tools need ``node`` and ``esbuild`` on the host (main.ts is transpiled once per
content hash into the prepared tool folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from toolforge.config import Settings
from toolforge.errors import BuildError, DependencyError, EnvironmentUnavailable
from toolforge.sandbox.backend import Backend, CallResult, CallStatus, Progress
from toolforge.sandbox.protocol import FramedSession, limit_result
from toolforge.sandbox.state import DirStore, check_call_ns
from toolforge.spec import ToolBundle

RUNNERS = Path(__file__).resolve().parent / "runners"
WARNING = (
    "toolforge: WARNING: the local sandbox backend runs tools as ordinary host processes "
    "(rlimits, a temp folder{bwrap}). This is NOT isolation: use the docker backend for code you do not trust."
)
_warned = threading.Event()


@cache
def bwrap_path() -> str | None:
    """``bwrap`` if installed, working here, and not switched off by TOOLFORGE_LOCAL_BWRAP=0."""
    if os.environ.get("TOOLFORGE_LOCAL_BWRAP", "1") == "0":
        return None
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = [
        path,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-pid",
        "--die-with-parent",
        "true",
    ]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return path if ok else None


def warn_once() -> None:
    if not _warned.is_set():
        _warned.set()
        sys.stderr.write(
            WARNING.format(bwrap=", bubblewrap namespaces" if bwrap_path() else "; bwrap not found")
            + "\n"
        )
        sys.stderr.flush()


def describe() -> str:
    """One line for ``toolforge doctor``."""
    parts = ["NOT isolation: tools run as host processes with rlimits"]
    parts.append("bwrap on" if bwrap_path() else "bwrap not available")
    node, esbuild = shutil.which("node"), shutil.which("esbuild")
    if not (node and esbuild):
        parts.append("TypeScript tools unavailable (needs node and esbuild on the host)")
    return "; ".join(parts)


class LocalSession(FramedSession):
    """One runner process (optionally inside bwrap), with its own temp folder."""

    def __init__(
        self, bundle: ToolBundle, proc: subprocess.Popen[bytes], workdir: Path, stderr_path: Path
    ) -> None:
        limits = bundle.spec.limits
        super().__init__(
            tool=bundle.name, output_limit=limits.output_kb * 1024, memory_mb=limits.memory_mb
        )
        self.proc = proc
        self.workdir = workdir
        self.stderr_path = stderr_path
        self._out = proc.stdout.fileno()  # type: ignore[union-attr]
        self._in = proc.stdin.fileno()  # type: ignore[union-attr]
        self._runner_pid: int | None = None

    def call(
        self, args: dict[str, Any], *, timeout_s: float, cancel: threading.Event | None = None
    ) -> CallResult:
        self._budget_cpu(timeout_s)
        result = super().call(args, timeout_s=timeout_s, cancel=cancel)
        result.meta.setdefault("pid", self.proc.pid)
        return result

    def _budget_cpu(self, timeout_s: float) -> None:
        """RLIMIT_CPU counts a process's whole life; give this call its own allowance."""
        pid = self._find_runner()
        if pid is None:
            return
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            soft = int(used + timeout_s) + 2
            resource.prlimit(pid, resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
        except (OSError, ValueError, IndexError):
            pass

    def _find_runner(self) -> int | None:
        """The runner's host pid: the process itself, or its descendant inside bwrap."""
        if self._runner_pid is None:
            for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if (
                    b"/runner." in cmdline
                    and not cmdline.startswith(b"bwrap")
                    and b"bwrap\0" not in cmdline[:64]
                ):
                    self._runner_pid = pid
                    break
        return self._runner_pid

    # -- transport hooks ---------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view) :]

    def _read(self, timeout_s: float) -> bytes | None:
        ready, _, _ = select.select([self._out], [], [], max(timeout_s, 0))
        if not ready:
            return b""
        try:
            data = os.read(self._out, 256 * 1024)
        except OSError:
            return None
        return data or None

    def _kill(self) -> None:
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def _diagnose(self) -> CallResult:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self.proc.returncode
        tail = self._stderr_tail()
        if code is not None and code < 0 and -code == signal.SIGXCPU:
            return limit_result(
                CallStatus.timeout,
                f"{self.tool} used up its CPU time (RLIMIT_CPU); the work was killed",
            )
        what = (
            f"was killed by signal {-code}"
            if code is not None and code < 0
            else f"exited with status {code}"
        )
        result = limit_result(
            CallStatus.crashed,
            f"the runner for {self.tool} {what} without answering" + (f": {tail}" if tail else ""),
            exit_code=code,
        )
        result.stderr = tail
        return result

    def _check_oom(self, result: CallResult) -> CallResult:
        """RLIMIT_AS makes allocation fail: Python raises MemoryError. Report that as OOM."""
        if result.error and result.error.get("type") == "MemoryError":
            self.reusable = False
            return limit_result(
                CallStatus.oom,
                f"{self.tool} ran out of memory (limit {self.memory_mb} MB, RLIMIT_AS)",
                like=result,
            )
        return result

    def _stderr_tail(self) -> str:
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-10:])

    def close(self) -> None:
        with self._close_lock:
            if self.closed:
                return
            self.closed = True
            self.reusable = False
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        shutil.rmtree(self.workdir, ignore_errors=True)


def _descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children first found through /proc/<pid>/task/*/children)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.append(child)
                    stack.append(child)
    return found


class LocalBackend(Backend):
    name = "local"
    isolated = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = DirStore(settings)
        self._lock = threading.Lock()
        warn_once()

    # -- prepare: a folder with the tool's files (and transpiled main.mjs) ---------------
    def prepare(self, bundle: ToolBundle, *, progress: Progress | None = None) -> str:
        digest = hashlib.sha256((bundle.content_hash() + _runner_digest()).encode()).hexdigest()[
            :12
        ]
        folder = self.settings.cache_dir / "local-tools" / f"{bundle.name}-{digest}"
        if folder.is_dir():
            return str(folder)
        deps = bundle.spec.dependencies
        if deps.apt:
            raise DependencyError(
                "apt",
                deps.apt[0],
                "the local backend cannot install apt packages; use the docker backend",
            )
        with self._lock:
            if folder.is_dir():
                return str(folder)
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{bundle.name}-", dir=folder.parent))
            try:
                for name, text in bundle.files().items():
                    target = staging / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
                if bundle.spec.language.value == "typescript":
                    self._transpile(bundle, staging, progress)
                if deps.pip:
                    self._pip(deps.pip, staging, progress)
                if deps.npm:
                    from toolforge.sandbox.wheelhouse import npm_modules

                    shutil.copytree(
                        npm_modules(deps.npm, self.settings, progress=progress) / "node_modules",
                        staging / "node_modules",
                    )
                staging.rename(folder)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return str(folder)

    def _transpile(self, bundle: ToolBundle, folder: Path, progress: Progress | None) -> None:
        node, esbuild = shutil.which("node"), shutil.which("esbuild")
        if not node or not esbuild:
            raise EnvironmentUnavailable(
                f"The local backend needs node and esbuild on the host to run the TypeScript tool {bundle.name}"
                f" (missing: {', '.join(n for n, p in (('node', node), ('esbuild', esbuild)) if not p)})",
                hint="Install them (apt-get install nodejs esbuild), or use the docker backend.",
            )
        if progress:
            progress("transpiling main.ts with esbuild")
        proc = subprocess.run(
            [
                esbuild,
                str(folder / "main.ts"),
                "--format=esm",
                "--platform=node",
                "--target=node18",
                f"--outfile={folder / 'main.mjs'}",
                "--log-level=warning",
                "--color=false",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise BuildError(
                f"{bundle.name}: main.ts does not compile (esbuild):\n{proc.stderr.strip()}",
                proc.stderr,
            )

    def _pip(self, requirements: list[str], folder: Path, progress: Progress | None) -> None:
        from toolforge.sandbox.wheelhouse import pip_wheels

        wheels = pip_wheels(requirements, self.settings, progress=progress)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-index",
                "--find-links",
                str(wheels),
                "--target",
                str(folder / "deps"),
                "--disable-pip-version-check",
                "--no-compile",
                *requirements,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise DependencyError(
                "pip",
                ", ".join(requirements),
                proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "pip failed",
            )

    # -- start ---------------------------------------------------------------------------
    def start(
        self,
        bundle: ToolBundle,
        *,
        state_ns: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> LocalSession:
        check_call_ns(bundle.spec, state_ns)
        tool_dir = Path(self.prepare(bundle))
        limits = bundle.spec.limits
        workdir = Path(tempfile.mkdtemp(prefix=f"toolforge-{bundle.name}-"))
        state_dir = (
            self.state.path(bundle.name, state_ns)
            if bundle.spec.stateful
            else workdir / "state-unused"
        )
        state_dir.mkdir(parents=True, exist_ok=True)
        language = bundle.spec.language.value
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TOOLFORGE_TOOL_DIR": str(tool_dir),
            "TOOLFORGE_STATE_DIR": str(state_dir),
            "TOOLFORGE_LANGUAGE": language,
            "TOOLFORGE_OUTPUT_LIMIT": str(limits.output_kb * 1024),
        }
        if (tool_dir / "deps").is_dir():
            env["PYTHONPATH"] = str(tool_dir / "deps")
        if language == "typescript":
            node = shutil.which("node")
            if node is None:
                raise EnvironmentUnavailable(
                    "The local backend needs node on the host for TypeScript tools",
                    hint="Install it (apt-get install nodejs), or use the docker backend.",
                )
            command = [
                node,
                f"--max-old-space-size={limits.memory_mb}",
                str(RUNNERS / "runner.mjs"),
            ]
        else:
            command = [sys.executable, "-u", str(RUNNERS / "runner.py")]
        bwrap = bwrap_path()
        if bwrap:
            command = _bwrap_command(bwrap, bundle, tool_dir, workdir, state_dir) + command
        stderr_path = workdir / ".runner-stderr"
        with open(stderr_path, "wb") as err:
            # Spawned from one long-lived thread: bwrap's --die-with-parent (PR_SET_PDEATHSIG)
            # fires when the *thread* that forked it ends, which would kill pooled sessions
            # started by short-lived caller threads.
            proc = (
                _spawner()
                .submit(
                    subprocess.Popen,
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    cwd=workdir,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_rlimits(bundle, node=language == "typescript"),
                )
                .result()
            )
        session = LocalSession(bundle, proc, workdir, stderr_path)
        try:
            session.wait_ready(limits.timeout_s)
        except BaseException:
            session.close()
            raise
        return session


@cache
def _spawner() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="toolforge-local-spawn")


@cache
def _runner_digest() -> str:
    h = hashlib.sha256()
    for name in ("runner.py", "runner.mjs"):
        h.update((RUNNERS / name).read_bytes())
    return h.hexdigest()


def _bwrap_command(
    bwrap: str, bundle: ToolBundle, tool_dir: Path, workdir: Path, state_dir: Path
) -> list[str]:
    cmd = [
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(tool_dir),
        str(tool_dir),
        "--ro-bind",
        str(RUNNERS),
        str(RUNNERS),
        "--bind",
        str(workdir),
        str(workdir),
        "--bind",
        str(state_dir),
        str(state_dir),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--chdir",
        str(workdir),
    ]
    for prefix in sorted({sys.prefix, sys.base_prefix}):
        if prefix.startswith("/tmp/"):  # a Python living under /tmp stays visible past the tmpfs
            cmd += ["--ro-bind", prefix, prefix]
    if not bundle.spec.network:
        cmd.append("--unshare-net")
    if os.geteuid() == 0:
        cmd += ["--cap-drop", "ALL"]
    return [*cmd, "--"]


def _rlimits(bundle: ToolBundle, *, node: bool) -> Any:
    """The preexec function setting the call's resource limits in the child."""
    limits = bundle.spec.limits
    memory = limits.memory_mb * 1024 * 1024
    nproc = None
    if (
        os.geteuid() != 0
    ):  # root is exempt from RLIMIT_NPROC; as a user it counts all their processes
        nproc = _user_process_count() + limits.pids

    def apply() -> None:
        if (
            not node
        ):  # V8 reserves far more address space than it uses; node gets --max-old-space-size
            resource.setrlimit(resource.RLIMIT_AS, (memory + 64 * 1024 * 1024,) * 2)
        cpu = int(limits.timeout_s) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024 * 1024,) * 2)
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count
