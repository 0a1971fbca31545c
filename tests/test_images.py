"""Base images: mirror discovery, content-hashed tags, idempotent builds, the images/gc CLI."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from toolforge.config import load_settings
from toolforge.errors import ConfigError
from toolforge.sandbox import images, rootfs
from toolforge.sandbox.images import (
    LANGUAGES,
    base_image_tag,
    build_base_images,
    missing_base_images,
)

# -- mirror discovery (no Docker) -----------------------------------------------------------


def test_mirror_from_deb822_sources_skips_security(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\nComponents: main\n"
    )
    assert (
        rootfs.mirror_from_apt_sources(tmp_path / "none.list", d) == "http://mirror.example/debian"
    )


def test_mirror_from_one_line_sources_list(tmp_path: Path) -> None:
    sl = tmp_path / "sources.list"
    sl.write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert rootfs.mirror_from_apt_sources(sl, tmp_path / "missing.d") == "http://one.example/debian"


def test_no_mirror_is_a_config_error_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rootfs, "APT_SOURCES_LIST", tmp_path / "nothing.list")
    monkeypatch.setattr(rootfs, "APT_SOURCES_DIR", tmp_path / "nothing.d")
    with pytest.raises(ConfigError, match="TOOLFORGE_DEBIAN_MIRROR"):
        rootfs.debian_mirror(load_settings())
    assert (
        rootfs.debian_mirror(load_settings(debian_mirror="http://set.example/debian/"))
        == "http://set.example/debian"
    )


# -- tags (no Docker) --------------------------------------------------------------------


def test_base_tags_are_content_hashed_per_language_and_source() -> None:
    settings = load_settings()
    tags = [base_image_tag(lang, settings) for lang in LANGUAGES]
    assert [t.split(":")[0] for t in tags] == [f"toolforge-base-{lang}" for lang in LANGUAGES]
    assert all(len(t.split(":")[1]) == 12 for t in tags)
    assert tags == [base_image_tag(lang, load_settings()) for lang in LANGUAGES]  # stable
    official = [
        base_image_tag(lang, load_settings(base_image_source="official")) for lang in LANGUAGES
    ]
    assert set(official).isdisjoint(tags)
    assert images.root_image(load_settings(base_image_source="official")) == "debian:bookworm-slim"
    with pytest.raises(ConfigError, match="base_image_source"):
        base_image_tag("python", load_settings(base_image_source="nonsense"))


def test_changing_one_definition_changes_only_its_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    before = {lang: base_image_tag(lang, settings) for lang in LANGUAGES}
    copy = _patched_definitions(tmp_path, monkeypatch)
    (copy / "bash" / "Dockerfile").write_text(
        (copy / "bash" / "Dockerfile").read_text() + "# changed\n"
    )
    after = {lang: base_image_tag(lang, settings) for lang in LANGUAGES}
    assert after["bash"] != before["bash"]
    assert {k: v for k, v in after.items() if k != "bash"} == {
        k: v for k, v in before.items() if k != "bash"
    }


def _patched_definitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    real = images.data_dir
    copy = tmp_path / "sandbox-images"
    shutil.copytree(real("sandbox-images"), copy)
    monkeypatch.setattr(
        images, "data_dir", lambda name: copy if name == "sandbox-images" else real(name)
    )
    return copy


# -- real Docker -------------------------------------------------------------------------


@pytest.mark.docker
def test_build_base_images_is_idempotent_and_labelled() -> None:
    from toolforge.sandbox.docker_client import client

    settings = load_settings()
    tags = build_base_images(settings)  # builds them when missing (make images normally has)
    assert missing_base_images(settings) == []
    ids = {t: client().api.inspect_image(t)["Id"] for t in tags}

    def must_not_build(*_a: object, **_k: object) -> None:
        raise AssertionError("an up-to-date base image was rebuilt")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(images, "docker_build", must_not_build)
        mp.setattr(images, "_make_root", must_not_build)
        assert build_base_images(settings) == tags
    for tag in tags:
        info = client().api.inspect_image(tag)
        assert info["Id"] == ids[tag]
        assert info["Config"]["Labels"]["io.toolforge"] == "1"
        assert info["Config"]["Labels"]["io.toolforge.kind"] == "base-image"
        assert info["Config"]["User"] == "10001:10001"


@pytest.mark.docker
@pytest.mark.parametrize(
    ("language", "probe", "expect"),
    [
        (
            "python",
            "python3 -c 'import sys; print(sys.version_info[:2])'; python3 -m pip --version | cut -c1-3",
            "(3, 11)\npip\n",
        ),
        (
            "typescript",
            "node -e 'console.log(typeof process)'; esbuild --version >/dev/null && echo esbuild",
            "object\nesbuild\n",
        ),
        ("bash", "echo '{\"a\": 2}' | jq .a; python3 -c 'print(1)'", "2\n1\n"),
    ],
)
def test_base_image_contents(language: str, probe: str, expect: str) -> None:
    from toolforge.sandbox.docker_client import client

    tag = build_base_images(load_settings())[LANGUAGES.index(language)]
    out = client().containers.run(
        tag,
        ["sh", "-c", f"{probe}; id -u; stat -c %u:%g /state; test -d /opt/toolforge && echo ok"],
        remove=True,
        network_disabled=True,
        labels={"io.toolforge": "1", "io.toolforge.kind": "test"},
    )
    assert out.decode() == expect + "10001\n10001:10001\nok\n"


@pytest.mark.docker
def test_changed_definition_rebuilds_only_that_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolforge.sandbox.docker_client import client

    settings = load_settings()
    build_base_images(settings)
    old = {lang: base_image_tag(lang, settings) for lang in LANGUAGES}
    copy = _patched_definitions(tmp_path, monkeypatch)
    (copy / "bash" / "Dockerfile").write_text(
        (copy / "bash" / "Dockerfile").read_text() + "ENV TOOLFORGE_TEST_MARK=1\n"
    )
    steps: list[str] = []
    tags = build_base_images(settings, progress=steps.append)
    try:
        assert tags[:2] == [old["python"], old["typescript"]] and tags[2] != old["bash"]
        assert [s for s in steps if s.startswith("building")] == [f"building {tags[2]}"]
        env = client().api.inspect_image(tags[2])["Config"]["Env"]
        assert "TOOLFORGE_TEST_MARK=1" in env
    finally:
        client().api.remove_image(tags[2], force=True)


@pytest.mark.docker
def test_cli_images_build_list_and_gc(cli) -> None:
    r = cli("images", "build", "--json")
    assert r.code == 0
    built = json.loads(r.out)["images"]
    assert built == [base_image_tag(lang, load_settings()) for lang in LANGUAGES]

    r = cli("images", "list", "--json")
    rows = {row["tag"]: row for row in json.loads(r.out)}
    assert r.code == 0
    for tag in built:
        assert rows[tag]["kind"] == "base-image" and rows[tag]["current"] is True

    r = cli("images", "list")
    assert r.code == 0 and "toolforge-base-python" in r.out

    r = cli("gc", "--json")
    assert r.code == 0
    assert set(json.loads(r.out)) == {"containers", "images", "volumes"}
    assert missing_base_images(load_settings()) == []  # gc never removes current base images


@pytest.mark.docker
def test_gc_removes_stopped_toolforge_containers_but_not_state_volumes() -> None:
    from toolforge.sandbox.docker_client import client

    c = client()
    tag = build_base_images(load_settings())[0]
    labels = {"io.toolforge": "1", "io.toolforge.kind": "test"}
    container = c.containers.run(tag, ["true"], detach=True, labels=labels)
    state = c.volumes.create(labels={"io.toolforge": "1", "io.toolforge.kind": "state"})
    scratch = c.volumes.create(labels={"io.toolforge": "1", "io.toolforge.kind": "test"})
    try:
        container.wait(timeout=30)
        counts = images.gc(load_settings())
        assert counts["containers"] >= 1 and counts["volumes"] >= 1
        names = {v.name for v in c.volumes.list(filters={"label": "io.toolforge=1"})}
        assert state.name in names and scratch.name not in names
        assert not c.containers.list(all=True, filters={"id": container.id})
    finally:
        for obj in (state, scratch):  # gc removed the container and the scratch volume
            with contextlib.suppress(Exception):
                obj.remove()
        with contextlib.suppress(Exception):
            container.remove(force=True)


def test_gc_prune_keeps_the_images_of_every_registered_version() -> None:
    from toolforge.cli.images import _registered_tool_images
    from toolforge.registry import Registry
    from toolforge.sandbox.build import tool_image_tag
    from toolforge.spec import ToolBundle, load_tool_dir

    settings = load_settings()
    v1 = load_tool_dir(Path(__file__).parent.parent / "examples" / "tools" / "word-count")
    v2 = ToolBundle(v1.spec, v1.source + "\n# v2\n")
    registry = Registry(settings.tools_dir, settings.db_path)
    try:
        registry.add(v1)
        registry.add(v2)
    finally:
        registry.close()
    assert _registered_tool_images(settings) == {
        tool_image_tag(v1, settings),
        tool_image_tag(v2, settings),
    }
