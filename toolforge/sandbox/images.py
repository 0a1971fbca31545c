"""Base images: one per language, built offline from ``sandbox-images/``, tagged by content.

The chain is rootfs (debootstrap → ``docker import``, or the official ``debian:bookworm-slim``
where a registry answers) → ``common`` (user ``tool`` 10001, ``/state``) → ``<language>``.
Every tag is a hash of the definitions it is built from, so ``build_base_images`` is a no-op
when all tags exist and a changed definition rebuilds only what depends on it.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toolforge.config import Settings
from toolforge.errors import BuildError, EnvironmentUnavailable, ToolforgeError
from toolforge.sandbox.backend import Progress
from toolforge.sandbox.docker_client import LABEL, LABEL_KIND, LABEL_TOOL, client, translate_errors

LANGUAGES = ("python", "typescript", "bash")
ROOTFS_REPO = "toolforge-rootfs"
BASE_REPO = "toolforge-base-{name}"
OFFICIAL_ROOT = "debian:bookworm-slim"
LABEL_DEFINITION = "io.toolforge.definition"
BUILD_TIMEOUT_S = 1800  # per read of the build stream: a quiet apt or pip step may take minutes
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # the legacy builder paints a step's stderr red


def data_dir(name: str) -> Path:
    """A top-level data folder (``templates``, ``sandbox-images``): in the wheel or the checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_data" / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise EnvironmentUnavailable(
        f"toolforge's {name}/ folder is missing", hint="Reinstall toolforge."
    )


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def _files_digest(folder: Path) -> str:
    return _digest(
        *(
            f"{p.relative_to(folder)}\n{p.read_text(encoding='utf-8')}"
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        )
    )


def rootfs_include() -> list[str]:
    text = (data_dir("sandbox-images") / "rootfs" / "include.txt").read_text(encoding="utf-8")
    return [w for line in text.splitlines() for w in line.split("#", 1)[0].split()]


def root_image(settings: Settings) -> str:
    """The image every base builds on: the imported rootfs, or the official Debian image."""
    if settings.base_image_source == "official":
        return OFFICIAL_ROOT
    if settings.base_image_source != "debootstrap":
        from toolforge.errors import ConfigError

        raise ConfigError(
            f"Unknown base_image_source {settings.base_image_source!r}",
            hint="Use debootstrap (offline, the default) or official.",
        )
    return f"{ROOTFS_REPO}:{_digest('debootstrap', settings.debian_suite, *rootfs_include())}"


def _layer_tag(name: str, parent: str) -> str:
    return f"{BASE_REPO.format(name=name)}:{_digest(parent, _files_digest(data_dir('sandbox-images') / name))}"


def base_image_tag(language: str, settings: Settings) -> str:
    """``toolforge-base-<language>:<hash12>`` for the current definitions and settings."""
    if language not in LANGUAGES:
        raise ToolforgeError(
            f"Unknown language {language!r}; toolforge knows {', '.join(LANGUAGES)}"
        )
    return _layer_tag(language, _layer_tag("common", root_image(settings)))


def image_exists(tag: str) -> bool:
    from docker.errors import ImageNotFound

    with translate_errors(f"inspect image {tag}"):
        try:
            client().api.inspect_image(tag)
            return True
        except ImageNotFound:
            return False


def missing_base_images(settings: Settings) -> list[str]:
    """Tags of the base images ``toolforge images build`` would still have to build."""
    return [
        tag
        for tag in (base_image_tag(lang, settings) for lang in LANGUAGES)
        if not image_exists(tag)
    ]


def build_base_images(
    settings: Settings, *, force: bool = False, progress: Progress | None = None
) -> list[str]:
    """Build whatever base image is missing (all of them with ``force``); return the tags.

    Idempotent: when every tag exists this only inspects three images.
    """
    say = progress or (lambda _msg: None)
    tags = [base_image_tag(lang, settings) for lang in LANGUAGES]
    if not force and all(image_exists(tag) for tag in tags):
        say("base images are up to date")
        return tags
    with _engine_lock(say):
        if not force and all(image_exists(tag) for tag in tags):
            return tags  # another process built them while we waited
        root = root_image(settings)
        if force or not image_exists(root):
            _make_root(settings, root, say)
        common = _layer_tag("common", root)
        _build_layer("common", root, common, force=force, say=say)
        for lang, tag in zip(LANGUAGES, tags, strict=True):
            _build_layer(lang, common, tag, force=force, say=say)
    return tags


@contextmanager
def _engine_lock(say: Progress) -> Iterator[None]:
    """One base-image build per machine at a time: images are engine-wide, not per home."""
    import fcntl

    path = Path(tempfile.gettempdir()) / "toolforge-base-images.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another toolforge process that is building the base images")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_root(settings: Settings, root: str, say: Progress) -> None:
    if settings.base_image_source == "official":
        say(f"pulling {root}")
        repo, _, tag = root.partition(":")
        with translate_errors(f"pull {root}"):
            client().images.pull(repo, tag=tag or "latest")
        return
    from toolforge.sandbox.rootfs import bootstrap_rootfs, remove_tree

    tar_path = bootstrap_rootfs(settings, rootfs_include(), progress=say)
    try:
        say(f"importing the root filesystem as {root}")
        repo, _, tag = root.partition(":")
        changes = [
            f"LABEL {LABEL}=1",
            f"LABEL {LABEL_KIND}=base-image",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["/bin/bash"]',
        ]
        with translate_errors(f"import {root}"):
            client().api.import_image_from_file(
                str(tar_path), repository=repo, tag=tag, changes=changes
            )
    finally:
        remove_tree(tar_path.parent)
    if not image_exists(root):
        raise BuildError(f"docker import did not produce {root}")


def _build_layer(name: str, parent: str, tag: str, *, force: bool, say: Progress) -> None:
    if not force and image_exists(tag):
        return
    say(f"building {tag}")
    docker_build(
        data_dir("sandbox-images") / name,
        tag,
        buildargs={"BASE": parent},
        labels={LABEL: "1", LABEL_KIND: "base-image", LABEL_DEFINITION: name},
        progress=say,
        nocache=force,
    )


def docker_build(
    context: Path,
    tag: str,
    *,
    labels: dict[str, str] | None = None,
    buildargs: dict[str, str] | None = None,
    progress: Progress | None = None,
    nocache: bool = False,
) -> str:
    """``docker build`` through the SDK, streaming step lines to ``progress``; return the log.

    A failed step raises BuildError carrying the whole log (the last lines are the error).
    """
    log: list[str] = []
    with translate_errors(f"build {tag}"):
        for chunk in _stream_build(context, tag, labels or {}, buildargs or {}, nocache):
            if "stream" in chunk:
                text = ANSI_ESCAPE.sub("", str(chunk["stream"]))
                log.append(text)
                if progress and text.startswith("Step "):
                    progress(text.strip())
            elif "error" in chunk:
                log.append(str(chunk["error"]))
                raise BuildError(
                    f"Building {tag} failed: {str(chunk['error']).strip()}", "".join(log)
                )
    return "".join(log)


def _stream_build(
    context: Path, tag: str, labels: dict[str, str], buildargs: dict[str, str], nocache: bool
) -> Iterator[dict[str, Any]]:
    yield from client().api.build(
        path=str(context),
        tag=tag,
        labels=labels,
        buildargs=buildargs,
        rm=True,
        forcerm=True,
        decode=True,
        nocache=nocache,
        pull=False,
        timeout=BUILD_TIMEOUT_S,
    )


def list_images(settings: Settings) -> list[dict[str, Any]]:
    """Every toolforge image (base and tool): tag, kind, tool, size, creation time, current?"""
    current = {root_image(settings)} | {base_image_tag(lang, settings) for lang in LANGUAGES}
    current.add(_layer_tag("common", root_image(settings)))
    with translate_errors("list images"):
        images = client().api.images(filters={"label": f"{LABEL}=1"})
    rows = []
    for img in images:
        labels = img.get("Labels") or {}
        for tag in img.get("RepoTags") or ["<none>:<none>"]:
            rows.append(
                {
                    "tag": tag,
                    "id": img["Id"].removeprefix("sha256:")[:12],
                    "kind": labels.get(LABEL_KIND, ""),
                    "tool": labels.get(LABEL_TOOL),
                    "size_mb": round(img.get("Size", 0) / 1e6, 1),
                    "created": img.get("Created"),
                    "current": tag in current if labels.get(LABEL_KIND) == "base-image" else None,
                }
            )
    return sorted(rows, key=lambda r: (r["kind"], r["tag"]))


def gc(settings: Settings, *, keep_tool_images: set[str] | None = None) -> dict[str, int]:
    """Remove what toolforge left behind; return counts by kind.

    Orphaned call containers go through the runtime's ``Sandbox.reap_orphans`` (it knows which
    owner processes are alive) when present. Stopped toolforge containers, dangling toolforge
    images and tool images not in ``keep_tool_images`` are removed here. State volumes are
    never touched: they are the tools' data (``toolforge state reset`` removes one).
    """
    from docker.errors import APIError, NotFound

    counts = {"containers": 0, "images": 0, "volumes": 0}
    counts["containers"] += _reap_with_runtime(settings)
    c = client()
    with translate_errors("collect garbage"):
        for container in c.api.containers(
            all=True, filters={"label": f"{LABEL}=1", "status": "exited"}
        ):
            try:
                c.api.remove_container(container["Id"], force=True, v=True)
                counts["containers"] += 1
            except (NotFound, APIError):
                pass
        for vol in (c.api.volumes(filters={"label": f"{LABEL}=1", "dangling": True}) or {}).get(
            "Volumes"
        ) or []:
            if (vol.get("Labels") or {}).get(LABEL_KIND) == "state" or vol["Name"].startswith(
                "toolforge-state-"
            ):
                continue
            try:
                c.api.remove_volume(vol["Name"])
                counts["volumes"] += 1
            except (NotFound, APIError):
                pass
        doomed = [
            img["Id"] for img in c.api.images(filters={"label": f"{LABEL}=1", "dangling": True})
        ]
        if keep_tool_images is not None:
            for img in c.api.images(filters={"label": f"{LABEL_KIND}=tool-image"}):
                if not set(img.get("RepoTags") or []) & keep_tool_images:
                    doomed.append(img["Id"])
        for image_id in dict.fromkeys(doomed):
            try:
                c.api.remove_image(image_id, force=False)
                counts["images"] += 1
            except (NotFound, APIError):
                pass  # still used by a container, or already gone
    return counts


def _reap_with_runtime(settings: Settings) -> int:
    try:
        from toolforge.sandbox.service import Sandbox

        sandbox = Sandbox(settings)
    except ImportError:  # a build without the runtime side: label-based removal only
        return 0
    try:
        reap = getattr(sandbox, "reap_orphans", None)
        return int(reap()) if reap else 0
    finally:
        close = getattr(sandbox, "close", None)
        if close:
            close()
