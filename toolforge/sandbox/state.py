"""Tool state: the named volume ``toolforge-state-<tool>[-<ns>]`` (Docker) or a host folder
``$TOOLFORGE_HOME/state/<tool>[-<ns>]`` (local backend), mounted / pointed at as /state.

State outlives containers and tool versions (v1 and v2 of a tool share it). Both stores
offer the same four operations — show, export to a .tar.gz, import from one (replacing
what was there), reset — and the same archive format (paths relative to /state), so state
moves between backends and machines.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolforge.config import Settings
from toolforge.errors import ToolforgeError, UsageError
from toolforge.spec import ToolBundle, ToolSpec

LABEL_STATE_NS = "io.toolforge.state_ns"
NS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PREVIEW_BYTES = 2048
TOOL_UID = 10001


def check_ns(ns: str | None) -> None:
    if ns is not None and not NS_RE.match(ns):
        raise UsageError(
            f"Bad state namespace {ns!r}",
            hint="Use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit.",
        )


def check_call_ns(spec: ToolSpec, ns: str | None) -> None:
    """A call's state namespace is well formed, and given only to a stateful tool."""
    check_ns(ns)
    if ns is not None and not spec.stateful:
        raise UsageError(
            f"{spec.name} is not stateful; a state namespace applies only to stateful tools"
        )


def volume_name(tool: str, ns: str | None = None) -> str:
    check_ns(ns)
    return f"toolforge-state-{tool}" + (f"-{ns}" if ns else "")


@dataclass
class StateFile:
    path: str
    size: int
    preview: str | None = None  # the text of a small UTF-8 file


@dataclass
class StateSnapshot:
    tool: str
    ns: str | None
    location: str  # volume name or folder
    exists: bool
    files: list[StateFile] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "ns": self.ns,
            "location": self.location,
            "exists": self.exists,
            "files": [f.__dict__ for f in self.files],
        }


class StateStore(ABC):
    """Where a backend keeps state; every operation takes the tool's bundle and a namespace."""

    @abstractmethod
    def location(self, bundle: ToolBundle, ns: str | None) -> str: ...

    @abstractmethod
    def show(self, bundle: ToolBundle, ns: str | None) -> StateSnapshot: ...

    @abstractmethod
    def export(self, bundle: ToolBundle, ns: str | None, dest: Path) -> int:
        """Write the state as a .tar.gz (paths relative to /state); return the file count."""

    @abstractmethod
    def import_(self, bundle: ToolBundle, ns: str | None, src: Path) -> int:
        """Replace the state with the archive's content; return the file count."""

    @abstractmethod
    def reset(self, bundle: ToolBundle, ns: str | None) -> bool:
        """Delete the state; return whether there was any."""


# -- archives (shared by both stores) ----------------------------------------------------
def read_archive(src: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The members of a state archive, refusing anything that could escape /state."""
    try:
        with tarfile.open(src, "r:*") as tar:
            members = []
            for info in tar.getmembers():
                name = info.name
                while name.startswith("./"):
                    name = name[2:]
                name = name.rstrip("/")
                if name in ("", "."):
                    continue
                if name.startswith("/") or ".." in Path(name).parts:
                    raise UsageError(f"{src}: unsafe path {info.name!r} in the archive")
                if not (info.isfile() or info.isdir()):
                    raise UsageError(
                        f"{src}: {info.name!r} is not a plain file or folder (links and devices are refused)"
                    )
                info.name = name
                data = tar.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
                members.append((info, data))
            return members
    except (tarfile.TarError, OSError) as e:
        raise UsageError(
            f"Cannot read state archive {src}: {e}",
            hint="Use a .tar.gz made by toolforge state export.",
        ) from e


def write_archive(
    members: list[tuple[tarfile.TarInfo, bytes | None]], *, gzip: bool, uid: int | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w") as tar:
        for info, data in members:
            info = _copy_info(info)
            if uid is not None:
                info.uid = info.gid = uid
                info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _copy_info(info: tarfile.TarInfo) -> tarfile.TarInfo:
    new = tarfile.TarInfo(info.name)
    new.type, new.mode, new.size, new.mtime = info.type, info.mode, info.size, info.mtime
    return new


def snapshot_files(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> list[StateFile]:
    files = []
    for info, data in members:
        if data is None:
            continue
        preview = None
        if len(data) <= PREVIEW_BYTES:
            try:
                preview = data.decode("utf-8")
            except UnicodeDecodeError:
                preview = None
        files.append(StateFile(info.name, len(data), preview))
    return sorted(files, key=lambda f: f.path)


# -- Docker: named volumes ---------------------------------------------------------------
def ensure_volume(tool: str, ns: str | None) -> str:
    """Create the state volume (labelled) unless it exists; refuse a name clash."""
    from toolforge.sandbox.docker_client import (
        LABEL,
        LABEL_KIND,
        LABEL_TOOL,
        client,
        translate_errors,
    )

    name = volume_name(tool, ns)
    api = client().api
    with translate_errors(f"create the state volume {name}"):
        existing = _inspect_volume(name)
        if existing is None:
            labels = {LABEL: "1", LABEL_KIND: "state", LABEL_TOOL: tool, LABEL_STATE_NS: ns or ""}
            api.create_volume(name=name, labels=labels)
            return name
    labels = existing.get("Labels") or {}
    if labels.get(LABEL_TOOL, tool) != tool or (labels.get(LABEL_STATE_NS) or None) != ns:
        raise UsageError(
            f"The volume {name} belongs to tool {labels.get(LABEL_TOOL)!r} namespace "
            f"{labels.get(LABEL_STATE_NS) or None!r}, not {tool!r} namespace {ns!r}",
            hint="Pick another --state-ns.",
        )
    return name


def _inspect_volume(name: str) -> dict[str, Any] | None:
    from toolforge.sandbox.docker_client import client

    try:
        return client().api.inspect_volume(name)
    except Exception as e:  # noqa: BLE001 - only "no such volume" means None
        if getattr(e, "status_code", None) == 404:
            return None
        raise


class VolumeStore(StateStore):
    """State in Docker named volumes, read and written through a never-started helper
    container (``get_archive`` / ``put_archive``): no host path is involved."""

    def __init__(self, backend: Any) -> None:
        self.backend = (
            backend  # DockerBackend: prepare(bundle) gives an image to create helpers from
        )

    def location(self, bundle: ToolBundle, ns: str | None) -> str:
        return volume_name(bundle.name, ns)

    def _members(
        self, bundle: ToolBundle, ns: str | None
    ) -> list[tuple[tarfile.TarInfo, bytes | None]] | None:
        from toolforge.sandbox.docker_client import translate_errors

        name = volume_name(bundle.name, ns)
        if _inspect_volume(name) is None:
            return None
        with self._helper(bundle, name) as (api, cid), translate_errors(f"read the volume {name}"):
            stream, _ = api.get_archive(cid, "/state/.")
            raw = b"".join(stream)
        members = []
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar.getmembers():
                name_in = info.name.split("/", 1)[1] if "/" in info.name else ""
                if not name_in or not (info.isfile() or info.isdir()):
                    continue
                data = tar.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
                info.name = name_in
                members.append((info, data))
        return members

    def show(self, bundle: ToolBundle, ns: str | None) -> StateSnapshot:
        members = self._members(bundle, ns)
        snap = StateSnapshot(bundle.name, ns, volume_name(bundle.name, ns), members is not None)
        snap.files = snapshot_files(members or [])
        return snap

    def export(self, bundle: ToolBundle, ns: str | None, dest: Path) -> int:
        members = self._members(bundle, ns) or []
        dest.write_bytes(write_archive(members, gzip=True))
        return sum(1 for _, d in members if d is not None)

    def import_(self, bundle: ToolBundle, ns: str | None, src: Path) -> int:
        from toolforge.sandbox.docker_client import translate_errors

        members = read_archive(src)
        self.reset(bundle, ns)
        name = ensure_volume(bundle.name, ns)
        with self._helper(bundle, name) as (api, cid), translate_errors(f"write the volume {name}"):
            api.put_archive(cid, "/state", write_archive(members, gzip=False, uid=TOOL_UID))
        return sum(1 for _, d in members if d is not None)

    def reset(self, bundle: ToolBundle, ns: str | None) -> bool:
        from toolforge.sandbox.docker_client import client

        name = volume_name(bundle.name, ns)
        if _inspect_volume(name) is None:
            return False
        try:
            client().api.remove_volume(name)
        except Exception as e:  # noqa: BLE001 - explain "in use" plainly
            if getattr(e, "status_code", None) == 409:
                raise ToolforgeError(
                    f"The state volume {name} is in use by a running container",
                    hint="Stop the process using the tool (a job worker, an agent run) and retry.",
                ) from e
            raise ToolforgeError(f"Docker failed to remove the volume {name}: {e}") from e
        return True

    def _helper(self, bundle: ToolBundle, volume: str) -> Any:
        from contextlib import contextmanager

        from toolforge.sandbox.docker_backend import owner_label, remove_container
        from toolforge.sandbox.docker_client import (
            LABEL,
            LABEL_KIND,
            LABEL_OWNER,
            LABEL_TOOL,
            client,
            translate_errors,
        )

        @contextmanager
        def helper():  # noqa: ANN202
            image = self.backend.prepare(bundle)
            api = client().api
            with translate_errors("create a state helper container"):
                cid = api.create_container(
                    image=image,
                    command=["true"],
                    name=f"toolforge-state-{bundle.name}-{uuid.uuid4().hex[:8]}",
                    labels={
                        LABEL: "1",
                        LABEL_KIND: "call",
                        LABEL_TOOL: bundle.name,
                        LABEL_OWNER: owner_label(),
                    },
                    network_disabled=True,
                    host_config=api.create_host_config(
                        binds={volume: {"bind": "/state", "mode": "rw"}}, network_mode="none"
                    ),
                )["Id"]
            try:
                yield api, cid
            finally:
                remove_container(cid)

        return helper()


# -- local backend: host folders ---------------------------------------------------------
class DirStore(StateStore):
    """State in ``$TOOLFORGE_HOME/state/<tool>[-<ns>]`` for the local backend."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.home / "state"

    def path(self, tool: str, ns: str | None) -> Path:
        check_ns(ns)
        return self.root / (tool + (f"-{ns}" if ns else ""))

    def location(self, bundle: ToolBundle, ns: str | None) -> str:
        return str(self.path(bundle.name, ns))

    def _members(self, folder: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
        members: list[tuple[tarfile.TarInfo, bytes | None]] = []
        for p in sorted(folder.rglob("*")):
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                continue
            info = tarfile.TarInfo(str(p.relative_to(folder)))
            st = p.stat()
            info.mode, info.mtime = st.st_mode & 0o7777, int(st.st_mtime)
            if p.is_dir():
                info.type = tarfile.DIRTYPE
                members.append((info, None))
            else:
                data = p.read_bytes()
                info.size = len(data)
                members.append((info, data))
        return members

    def show(self, bundle: ToolBundle, ns: str | None) -> StateSnapshot:
        folder = self.path(bundle.name, ns)
        snap = StateSnapshot(bundle.name, ns, str(folder), folder.is_dir())
        snap.files = snapshot_files(self._members(folder) if folder.is_dir() else [])
        return snap

    def export(self, bundle: ToolBundle, ns: str | None, dest: Path) -> int:
        folder = self.path(bundle.name, ns)
        members = self._members(folder) if folder.is_dir() else []
        dest.write_bytes(write_archive(members, gzip=True))
        return sum(1 for _, d in members if d is not None)

    def import_(self, bundle: ToolBundle, ns: str | None, src: Path) -> int:
        members = read_archive(src)
        folder = self.path(bundle.name, ns)
        staging = folder.with_name(f".{folder.name}-{uuid.uuid4().hex[:8]}")
        staging.mkdir(parents=True)
        try:
            for info, data in members:
                target = staging / info.name
                if data is None:
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
            self.reset(bundle, ns)
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return sum(1 for _, d in members if d is not None)

    def reset(self, bundle: ToolBundle, ns: str | None) -> bool:
        folder = self.path(bundle.name, ns)
        if not folder.exists():
            return False
        shutil.rmtree(folder)
        return True
