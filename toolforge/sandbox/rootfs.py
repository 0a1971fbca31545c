"""The offline root of every base image: a debootstrapped Debian, tarred and ``docker import``ed.

No container registry is reachable on our machines, so the first layer cannot be pulled.
``debootstrap --variant=minbase`` builds a small Debian root filesystem from the Debian
mirror the machine's apt already uses (never a hard-coded host); the tree is tarred and
imported through the Docker SDK as a labelled image. The temporary tree is always removed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from toolforge.config import Settings
from toolforge.errors import BuildError, ConfigError, EnvironmentUnavailable
from toolforge.sandbox.backend import Progress

APT_SOURCES_LIST = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
IMPORT_ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def debian_mirror(settings: Settings) -> str:
    """The Debian mirror: ``settings.debian_mirror``, else the first one in the apt sources."""
    if settings.debian_mirror:
        return settings.debian_mirror.rstrip("/")
    mirror = mirror_from_apt_sources(APT_SOURCES_LIST, APT_SOURCES_DIR)
    if mirror is None:
        raise ConfigError(
            "No Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/",
            hint="Set one: TOOLFORGE_DEBIAN_MIRROR=http://<your mirror>/debian (or debian_mirror in config.yaml).",
        )
    return mirror


def mirror_from_apt_sources(sources_list: Path, sources_dir: Path) -> str | None:
    """Read the main archive's URI from deb822 ``*.sources`` files or one-line ``deb`` entries.

    Security and updates suites live in other archives, so an entry whose URI ends in
    ``-security`` is skipped.
    """
    candidates: list[str] = []
    if sources_dir.is_dir():
        for path in sorted(sources_dir.glob("*.sources")):
            for stanza in re.split(r"\n\s*\n", _read(path)):
                fields = dict(
                    (m.group(1).lower(), m.group(2).strip())
                    for m in re.finditer(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.MULTILINE)
                )
                if (
                    "deb" in fields.get("types", "").split()
                    and fields.get("enabled", "yes") != "no"
                ):
                    candidates += fields.get("uris", "").split()
    for path in (
        [sources_list, *sorted(sources_dir.glob("*.list"))]
        if sources_dir.is_dir()
        else [sources_list]
    ):
        for line in _read(path).splitlines():
            parts = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(parts) >= 2 and parts[0] == "deb":
                candidates.append(parts[1])
    for uri in candidates:
        if uri.startswith(("http://", "https://", "file:/")) and not uri.rstrip("/").endswith(
            "-security"
        ):
            return uri.rstrip("/")
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def bootstrap_rootfs(
    settings: Settings, include: list[str], *, progress: Progress | None = None
) -> Path:
    """Debootstrap a minbase Debian into a temp dir and tar it; return the tar's path.

    The caller imports and then deletes the tar (in its own temp dir).
    """
    if shutil.which("debootstrap") is None:
        raise EnvironmentUnavailable(
            "debootstrap is not installed, so the base images cannot be built offline",
            hint="Install it (apt-get install debootstrap) or set base_image_source: official "
            "where a registry is reachable.",
        )
    if os.geteuid() != 0:
        raise EnvironmentUnavailable(
            "debootstrap needs root to build the base root filesystem",
            hint="Run `sudo toolforge images build` once, or set base_image_source: official.",
        )
    mirror = debian_mirror(settings)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=settings.cache_dir))
    target = work / "root"
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(include)}",
        settings.debian_suite,
        str(target),
        mirror,
    ]
    try:
        if progress:
            progress(f"debootstrap {settings.debian_suite} from {mirror} (about a minute)")
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        if proc.returncode != 0:
            raise BuildError(
                f"debootstrap failed (exit {proc.returncode}) using mirror {mirror}", proc.stdout
            )
        _slim(target)
        if progress:
            progress("packing the root filesystem")
        tar_path = work / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(target, arcname=".", filter=_tar_filter)
        shutil.rmtree(target)
        return tar_path
    except BaseException:
        remove_tree(work)
        raise


def _slim(root: Path) -> None:
    """Drop caches and docs the image never needs (apt lists come back with apt-get update)."""
    for rel in (
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ):
        path = root / rel
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name not in ("lock", "partial"):
                    child.unlink(missing_ok=True)


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    # Device nodes are provided by the container runtime; skip them (and sockets/fifos).
    if info.isdev() or info.isfifo():
        return None
    return info


def remove_tree(path: Path) -> None:
    """Remove a temp tree, unmounting anything debootstrap left mounted inside it first."""
    real = os.path.realpath(path)
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for mount in sorted((m for m in mounts if m.startswith(real + "/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
