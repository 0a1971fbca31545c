"""The Docker backend: every session is one hardened container running the tool's runner.

A session is created with ``stdin_open`` and attached (one HTTP-upgraded socket carrying
stdin in and the multiplexed stdout/stderr out, see :class:`Demux`) *before* it is started,
so no byte is lost. The protocol then flows over that socket with no further API round
trips: a warm call is one write and one read.

Hardening, on every container (see :func:`host_config`): uid 10001, read-only root, a small
tmpfs /tmp, only the state volume writable, ``cap_drop=ALL``, ``no-new-privileges``, no
network unless the spec asks, memory with swap disabled, CPU, pids and wall-time limits,
the log driver off (the protocol is not written to disk), no host paths, no Docker socket.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import uuid
from typing import Any

from toolforge.config import Settings
from toolforge.errors import ToolforgeError
from toolforge.procs import pid_alive
from toolforge.sandbox.backend import Backend, CallResult, CallStatus, Progress
from toolforge.sandbox.docker_client import (
    LABEL,
    LABEL_KIND,
    LABEL_OWNER,
    LABEL_TOOL,
    client,
    translate_errors,
)
from toolforge.sandbox.protocol import FramedSession, limit_result
from toolforge.sandbox.state import (
    LABEL_STATE_NS,
    VolumeStore,
    check_call_ns,
    ensure_volume,
    volume_name,
)
from toolforge.spec import ToolBundle

TMPFS_SIZE = "64m"
UID = "10001:10001"
STDERR_KEEP = 16 * 1024


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Demux:
    """Docker's attach stream framing (tty=False): an 8-byte header [stream, 0, 0, 0,
    size:uint32 BE] before each payload. ``feed`` returns the stdout bytes; stderr is kept."""

    HEADER = struct.Struct(">BxxxL")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.stderr = bytearray()

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while len(self._buf) >= 8:
            kind, size = self.HEADER.unpack_from(self._buf)
            if len(self._buf) < 8 + size:
                break
            payload = self._buf[8 : 8 + size]
            del self._buf[: 8 + size]
            if kind == 2:
                self.stderr += payload
                del self.stderr[:-STDERR_KEEP]
            else:
                out += payload
        return bytes(out)


def host_config(api: Any, bundle: ToolBundle, volume: str | None) -> Any:
    """The hardening every call container gets. Nothing from the host is mounted."""
    limits = bundle.spec.limits
    cpus = min(limits.cpus, float(os.cpu_count() or 1))
    return api.create_host_config(
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMPFS_SIZE},mode=1777"},
        binds={volume: {"bind": "/state", "mode": "rw"}} if volume else None,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        network_mode="bridge" if bundle.spec.network else "none",
        mem_limit=f"{limits.memory_mb}m",
        memswap_limit=f"{limits.memory_mb}m",
        nano_cpus=int(cpus * 1e9),
        pids_limit=limits.pids,
        init=True,
        ipc_mode="private",
        log_config={"type": "none", "config": {}},
    )


class DockerSession(FramedSession):
    """One container, attached. ``close`` removes it (the state volume stays)."""

    def __init__(self, bundle: ToolBundle, image: str, container_id: str, sock: Any) -> None:
        limits = bundle.spec.limits
        super().__init__(
            tool=bundle.name, output_limit=limits.output_kb * 1024, memory_mb=limits.memory_mb
        )
        self.image = image
        self.id = container_id
        self._sock_io = sock  # keep the docker-py wrapper (and its HTTP response) alive
        self._sock: socket.socket = getattr(sock, "_sock", sock)
        self._sock.setblocking(True)
        self._demux = Demux()
        self._exit: dict[str, Any] | None = None

    @property
    def runner_stderr(self) -> str:
        return bytes(self._demux.stderr).decode("utf-8", errors="replace")

    def call(
        self, args: dict[str, Any], *, timeout_s: float, cancel: threading.Event | None = None
    ) -> CallResult:
        result = super().call(args, timeout_s=timeout_s, cancel=cancel)
        result.meta.setdefault("container", self.id[:12])
        return result

    # -- transport hooks ---------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def _read(self, timeout_s: float) -> bytes | None:
        ready, _, _ = select.select([self._sock], [], [], max(timeout_s, 0))
        if not ready:
            return b""
        try:
            data = self._sock.recv(256 * 1024)
        except OSError:  # the daemon dropped the attach connection: same as EOF
            return None
        if not data:
            return None
        return self._demux.feed(data)

    def _kill(self) -> None:
        api = client().api
        try:
            api.kill(self.id)
        except Exception as e:  # noqa: BLE001 - already stopped / gone is fine
            if getattr(e, "status_code", None) not in (404, 409):
                raise ToolforgeError(f"Docker failed to kill container {self.id[:12]}: {e}") from e

    def _state(self) -> dict[str, Any]:
        """Wait for the container to stop, then read its final state (exit code, OOMKilled)."""
        if self._exit is None:
            api = client().api
            with translate_errors("inspect a call container"):
                try:
                    api.wait(self.id, timeout=10)
                except Exception as e:  # noqa: BLE001 - a wait timeout: kill, then inspect
                    if getattr(e, "status_code", None) == 404:
                        return {}
                    self._kill()
                self._exit = api.inspect_container(self.id).get("State", {})
        return self._exit

    def _diagnose(self) -> CallResult:
        state = self._state()
        tail = "\n".join(self.runner_stderr.strip().splitlines()[-10:])
        if state.get("OOMKilled"):
            return limit_result(
                CallStatus.oom, self._oom_message(), exit_code=state.get("ExitCode")
            )
        code = state.get("ExitCode")
        what = "was killed (SIGKILL)" if code == 137 else f"exited with status {code}"
        message = f"the runner for {self.tool} {what} without answering"
        result = limit_result(
            CallStatus.crashed, message + (f": {tail}" if tail else ""), exit_code=code
        )
        result.stderr = self.runner_stderr
        return result

    def _oom_message(self) -> str:
        return f"{self.tool} ran out of memory (limit {self.memory_mb} MB) and was killed"

    def _check_oom(self, result: CallResult) -> CallResult:
        """A child of the runner died by SIGKILL: if the kernel's OOM killer did it, the
        container's state says so once it stops. Stop it (the session is discarded anyway)."""
        err = result.error or {}
        if (
            err.get("signal") != 9 and err.get("exit_status") != 137
        ):  # 137: bash's "child got SIGKILL"
            return result
        self.reusable = False
        self._kill()
        if self._state().get("OOMKilled"):
            return limit_result(CallStatus.oom, self._oom_message(), like=result)
        return result

    def close(self) -> None:
        with self._close_lock:
            if self.closed:
                return
            self.closed = True
            self.reusable = False
        self._close_socket()
        remove_container(self.id)

    def _close_socket(self) -> None:
        """Close the attach socket for real: the HTTP response and its SocketIO hold
        references (``makefile``) that keep the fd open after ``socket.close()`` alone."""
        response = getattr(self._sock_io, "_response", None)
        for obj in (response, self._sock_io, self._sock):
            try:
                if obj is not None:
                    obj.close()
            except OSError:
                pass


def remove_container(container_id: str) -> None:
    api = client().api
    try:
        api.remove_container(container_id, force=True)
    except Exception as e:  # noqa: BLE001 - gone already is success
        code = getattr(e, "status_code", None)
        if code == 404 or (code == 409 and "already in progress" in str(e)):
            return
        raise ToolforgeError(f"Docker failed to remove container {container_id[:12]}: {e}") from e


class DockerBackend(Backend):
    """Tool images built by ``sandbox.build``; one hardened container per session."""

    name = "docker"
    isolated = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._images: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reaped = False
        self.state = VolumeStore(self)

    def prepare(self, bundle: ToolBundle, *, progress: Progress | None = None) -> str:
        key = bundle.content_hash()
        image = self._images.get(key)
        if image is None:
            from toolforge.sandbox.build import build_tool_image

            image = build_tool_image(bundle, self.settings, progress=progress)
            with self._lock:
                self._images[key] = image
        return image

    def start(
        self,
        bundle: ToolBundle,
        *,
        state_ns: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> DockerSession:
        if not self._reaped:
            self._reaped = True
            self.reap_orphans()
        check_call_ns(bundle.spec, state_ns)
        image = self.prepare(bundle)
        api = client().api
        volume = None
        if bundle.spec.stateful:
            volume = volume_name(bundle.name, state_ns)
            ensure_volume(bundle.name, state_ns)
        all_labels = {
            **(labels or {}),
            LABEL: "1",
            LABEL_KIND: "call",
            LABEL_TOOL: bundle.name,
            LABEL_OWNER: owner_label(),
        }
        if state_ns:
            all_labels[LABEL_STATE_NS] = state_ns
        with translate_errors(f"start a container for {bundle.name}"):
            created = api.create_container(
                image=image,
                name=f"toolforge-{bundle.name}-{uuid.uuid4().hex[:10]}",
                user=UID,
                stdin_open=True,
                tty=False,
                labels=all_labels,
                environment={
                    "TOOLFORGE_SWEEP": "1",
                    "TOOLFORGE_OUTPUT_LIMIT": str(bundle.spec.limits.output_kb * 1024),
                },
                network_disabled=not bundle.spec.network,
                host_config=host_config(api, bundle, volume),
            )
            cid = created["Id"]
            try:
                sock = api.attach_socket(
                    cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
                )
                session = DockerSession(bundle, image, cid, sock)
                api.start(cid)
            except BaseException:
                remove_container(cid)
                raise
        try:
            session.wait_ready(bundle.spec.limits.timeout_s)
        except BaseException:
            session.close()
            raise
        return session

    def available(self) -> bool:
        """Ping the engine with a fresh client (the old one may hold a dead connection)."""
        from toolforge.sandbox.docker_client import reset_client

        reset_client()
        try:
            client()
        except ToolforgeError:
            return False
        return True

    def reap_orphans(self) -> int:
        """Remove call containers whose owner process (on this host) is dead."""
        api = client().api
        host = socket.gethostname()
        removed = 0
        with translate_errors("list toolforge containers"):
            containers = api.containers(
                all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_KIND}=call"]}
            )
        for c in containers:
            owner = (c.get("Labels") or {}).get(LABEL_OWNER, "")
            owner_host, _, pid = owner.rpartition(":")
            if owner_host != host or not pid.isdigit() or pid_alive(int(pid)):
                continue
            remove_container(c["Id"])
            removed += 1
        return removed
