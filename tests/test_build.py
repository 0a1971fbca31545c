"""Per-tool images: rendered contexts, content-hash tags, layer caching, dependencies, errors."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from toolforge.config import load_settings
from toolforge.errors import BuildError, DependencyError, SpecError
from toolforge.sandbox import build as build_mod
from toolforge.sandbox.build import build_tool_image, render_context, tool_image_tag
from toolforge.spec import ToolBundle, load_tool_dir, parse_spec

SMALL_WHEEL = "six==1.16.0"  # one small pure-Python wheel


def make_bundle(name: str, language: str, source: str, **spec: object) -> ToolBundle:
    return ToolBundle(
        parse_spec({"name": name, "description": "test tool", "language": language, **spec}), source
    )


def renamed(bundle: ToolBundle, name: str) -> ToolBundle:
    """The same tool under a test-only name, so these tests never touch other tests' images."""
    return ToolBundle(
        bundle.spec.model_copy(update={"name": name}), bundle.source, bundle.extra_files
    )


# -- rendering (no Docker) ------------------------------------------------------------------


def test_context_copies_model_code_verbatim_and_renders_only_values(tmp_path: Path) -> None:
    source = 'def run():\n    return "{{ not_a_template_var }} {% raw %}"\n'
    bundle = make_bundle("ctx", "python", source, dependencies={"apt": ["jq"]})
    dockerfile = render_context(bundle, load_settings(), tmp_path, base_image="base:1")
    text = dockerfile.read_text()
    assert text.startswith("FROM base:1\nUSER root\n")
    assert "apt-get install -y --no-install-recommends jq" in text
    assert text.index("COPY runners/") < text.index("COPY tool/")  # source last: deps layers cache
    assert text.rstrip().splitlines()[-2] == "USER 10001:10001"
    assert '"io.toolforge.kind"="tool-image"' in text and '"io.toolforge.tool"="ctx"' in text
    assert (tmp_path / "tool" / "main.py").read_text() == source
    assert (tmp_path / "runners" / "runner.py").is_file()


def test_typescript_dockerfile_transpiles_with_esbuild(tmp_path: Path) -> None:
    bundle = load_tool_dir(EXAMPLES / "slugify")
    text = render_context(bundle, load_settings(), tmp_path, base_image="b:1").read_text()
    assert "RUN esbuild /opt/tool/main.ts --format=esm" in text
    assert text.index("COPY tool/") < text.index("RUN esbuild")


def test_file_names_cannot_escape_the_context(tmp_path: Path) -> None:
    bundle = ToolBundle(
        make_bundle("esc", "python", "def run(): pass\n").spec,
        "def run(): pass\n",
        {"../evil.py": "x"},
    )
    with pytest.raises(SpecError, match="relative paths"):
        render_context(bundle, load_settings(), tmp_path, base_image="b:1")


def test_tag_follows_content_not_version() -> None:
    settings = load_settings()
    bundle = load_tool_dir(EXAMPLES / "word-count")
    tag = tool_image_tag(bundle, settings)
    assert tag.startswith("toolforge-tool-word-count:") and len(tag.split(":")[1]) == 12
    assert tool_image_tag(bundle.with_version(2), settings) == tag
    changed = ToolBundle(bundle.spec, bundle.source + "\n# edit\n")
    assert tool_image_tag(changed, settings) != tag


def test_dependency_for_the_wrong_language_names_it() -> None:
    bundle = make_bundle("wrong", "bash", "echo 1\n", dependencies={"pip": ["six"]})
    with pytest.raises(DependencyError, match="'six'.*python tool"):
        build_mod._check_dependencies(bundle)


# -- real Docker -------------------------------------------------------------------------


@pytest.fixture
def tool_name() -> Iterator[Callable[[str], str]]:
    """Unique tool names; every image carrying one is removed afterwards."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(f"{prefix}-t{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    from toolforge.sandbox.docker_client import client

    api = client().api
    for name in names:
        for img in api.images(filters={"label": f"io.toolforge.tool={name}"}):
            api.remove_image(img["Id"], force=True)
    for img in api.images(filters={"label": "io.toolforge=1", "dangling": True}):
        # layers left by the failed builds of these tests (one still in use stays)
        with contextlib.suppress(Exception):
            api.remove_image(img["Id"])


@pytest.fixture
def bases() -> None:
    from toolforge.sandbox.images import build_base_images

    build_base_images(load_settings())


def run_in(tag: str, script: str) -> str:
    from toolforge.sandbox.docker_client import client

    out = client().containers.run(
        tag,
        ["sh", "-c", script],
        remove=True,
        network_disabled=True,
        labels={"io.toolforge": "1", "io.toolforge.kind": "test"},
    )
    return out.decode()


@pytest.mark.docker
@pytest.mark.parametrize("example", ["word-count", "slugify", "counter"])
def test_each_example_builds_into_a_contract_image(example: str, bases: None, tool_name) -> None:
    from toolforge.sandbox.docker_client import client

    bundle = renamed(load_tool_dir(EXAMPLES / example), tool_name(example))
    settings = load_settings()
    tag = build_tool_image(bundle, settings)
    assert tag == tool_image_tag(bundle, settings)
    info = client().api.inspect_image(tag)["Config"]
    assert info["User"] == "10001:10001" and info["WorkingDir"] == "/opt/tool"
    assert info["Labels"]["io.toolforge.kind"] == "tool-image"
    assert info["Labels"]["io.toolforge.tool"] == bundle.name
    assert info["Labels"]["io.toolforge.content-hash"] == bundle.content_hash()
    env = dict(e.split("=", 1) for e in info["Env"])
    assert env["TOOLFORGE_STATE_DIR"] == "/state" and env["TOOLFORGE_TOOL_DIR"] == "/opt/tool"
    assert env["TOOLFORGE_LANGUAGE"] == bundle.spec.language.value
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == "/tmp"
    node = bundle.spec.language.value == "typescript"
    assert info["Cmd"] == (
        ["node", "/opt/toolforge/runner.mjs"]
        if node
        else ["python3", "-u", "/opt/toolforge/runner.py"]
    )
    out = run_in(tag, "id -u; id -g; stat -c %u:%g /state; ls /opt/toolforge; ls /opt/tool")
    files = "main.mjs\nmain.ts\n" if node else f"{bundle.spec.main_file}\n"
    assert out == "10001\n10001\n10001:10001\nrunner.mjs\nrunner.py\n" + files
    assert run_in(tag, f"cat /opt/tool/{bundle.spec.main_file}") == bundle.source


@pytest.mark.docker
def test_unchanged_tool_does_not_rebuild(
    bases: None, tool_name, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = renamed(load_tool_dir(EXAMPLES / "word-count"), tool_name("same"))
    settings = load_settings()
    tag = build_tool_image(bundle, settings)

    def must_not_build(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged tool was rebuilt")

    monkeypatch.setattr(build_mod, "docker_build", must_not_build)
    assert build_tool_image(bundle.with_version(3), settings) == tag


@pytest.mark.docker
def test_pip_dependency_installs_offline_and_a_source_change_reuses_its_layers(
    bases: None, tool_name
) -> None:
    from toolforge.sandbox.docker_client import client

    name = tool_name("pipdep")
    settings = load_settings()
    v1 = make_bundle(
        name,
        "python",
        "import six\n\ndef run():\n    return six.__version__\n",
        dependencies={"pip": [SMALL_WHEEL]},
    )
    tag1 = build_tool_image(v1, settings)
    # the container has no network: six comes from the wheel fetched on the host
    assert run_in(tag1, "python3 -c 'import six; print(six.__version__)'") == "1.16.0\n"
    assert list((settings.cache_dir / "wheelhouse").glob("*/six-1.16.0-*.whl"))

    v2 = ToolBundle(v1.spec, v1.source + "\n# changed\n")
    steps: list[str] = []
    tag2 = build_tool_image(v2, settings, progress=steps.append)
    assert tag2 != tag1 and not any(
        s.startswith("pip download") for s in steps
    )  # wheelhouse cached
    layers1 = client().api.inspect_image(tag1)["RootFS"]["Layers"]
    layers2 = client().api.inspect_image(tag2)["RootFS"]["Layers"]
    # same base + wheels + pip install + runners layers; only the tool's own files differ
    assert layers2[:-1] == layers1[:-1] and layers2[-1] != layers1[-1]


@pytest.mark.docker
def test_unknown_pip_package_is_a_dependency_error_naming_it(bases: None, tool_name) -> None:
    from toolforge.sandbox.docker_client import client

    name = tool_name("badpip")
    bundle = make_bundle(
        name,
        "python",
        "def run():\n    return 1\n",
        dependencies={"pip": ["toolforge-no-such-package-xyz"]},
    )
    with pytest.raises(DependencyError, match="'toolforge-no-such-package-xyz'") as err:
        build_tool_image(bundle, load_settings())
    assert err.value.kind == "pip"
    assert not client().api.images(filters={"label": f"io.toolforge.tool={name}"})


@pytest.mark.docker
def test_unknown_apt_package_is_a_dependency_error_naming_it(bases: None, tool_name) -> None:
    bundle = make_bundle(
        tool_name("badapt"), "bash", "echo 1\n", dependencies={"apt": ["toolforge-no-such-deb-xyz"]}
    )
    with pytest.raises(DependencyError, match="apt dependency 'toolforge-no-such-deb-xyz'"):
        build_tool_image(bundle, load_settings())


@pytest.mark.docker
def test_typescript_syntax_error_is_a_build_error_with_esbuild_message(
    bases: None, tool_name
) -> None:
    bundle = make_bundle(
        tool_name("badts"), "typescript", "export function run( {\n  return 1;\n}\n"
    )
    with pytest.raises(BuildError) as err:
        build_tool_image(bundle, load_settings())
    message = str(err.value)
    assert "main.ts does not compile (esbuild)" in message
    assert '[ERROR] Expected "}" but found "1"' in message and "main.ts:2:" in message
    assert "esbuild" in err.value.build_log


@pytest.mark.docker
def test_npm_dependency_is_copied_into_node_modules(bases: None, tool_name) -> None:
    source = 'import isNumber from "is-number";\nexport function run(args: {x: string}) { return isNumber(args.x); }\n'
    tag = build_tool_image(
        make_bundle(
            tool_name("npmdep"), "typescript", source, dependencies={"npm": ["is-number@7.0.0"]}
        ),
        load_settings(),
    )
    script = 'cd /opt/tool && node --input-type=module -e \'import {run} from "./main.mjs"; console.log(run({x: "5"}))\''
    assert run_in(tag, script) == "true\n"


def test_unknown_npm_package_is_a_dependency_error_naming_it() -> None:
    from toolforge.sandbox.wheelhouse import npm_modules

    settings = load_settings()
    with pytest.raises(DependencyError, match="npm dependency 'toolforge-no-such-npm-pkg-xyz'"):
        npm_modules(["toolforge-no-such-npm-pkg-xyz"], settings)
    assert not list((settings.cache_dir / "npm").iterdir())  # no half-written cache entry
