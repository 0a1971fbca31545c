"""Per-tool images: render the build context, build it once, tag it by content.

The context holds a Dockerfile rendered from ``templates/<language>/Dockerfile.j2`` (jinja2,
StrictUndefined, values only), the runners copied from ``toolforge/sandbox/runners/``, the
tool's files copied verbatim (the model's code is data, never template source), and any
host-fetched dependencies (``wheels/``, ``node_modules/``). The tag is a hash of the bundle's
content hash, the base image, the template and the runners, so an unchanged tool never
rebuilds and a runner upgrade does.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from toolforge.config import Settings
from toolforge.errors import BuildError, DependencyError, EnvironmentUnavailable, SpecError
from toolforge.sandbox.backend import Progress
from toolforge.sandbox.docker_client import LABEL, LABEL_KIND, LABEL_TOOL
from toolforge.sandbox.images import base_image_tag, data_dir, docker_build, image_exists
from toolforge.spec import ToolBundle

RUNNERS_DIR = Path(__file__).resolve().parent / "runners"
TOOL_REPO = "toolforge-tool-{name}"
LABEL_CONTENT = "io.toolforge.content-hash"
LABEL_VERSION = "io.toolforge.version"


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def tool_image_tag(
    bundle: ToolBundle, settings: Settings, *, runners_dir: Path | None = None
) -> str:
    """``toolforge-tool-<name>:<hash12>``: changes when anything that goes into the image changes."""
    parts = [
        bundle.content_hash(),
        base_image_tag(bundle.spec.language.value, settings),
        _tree_digest(data_dir("templates")),
        _tree_digest(runners_dir or RUNNERS_DIR),
    ]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return f"{TOOL_REPO.format(name=bundle.name)}:{digest}"


def build_tool_image(
    bundle: ToolBundle,
    settings: Settings,
    *,
    progress: Progress | None = None,
    runners_dir: Path | None = None,
) -> str:
    """Build the tool's image unless its tag exists; return the tag.

    Raises DependencyError naming a pip / npm / apt package that cannot be resolved, and
    BuildError (with the build log) for any other failure, e.g. a TypeScript syntax error.
    """
    runners = runners_dir or RUNNERS_DIR
    tag = tool_image_tag(bundle, settings, runners_dir=runners)
    if image_exists(tag):
        return tag
    language = bundle.spec.language.value
    base = base_image_tag(language, settings)
    if not image_exists(base):
        raise EnvironmentUnavailable(
            f"The {language} base image {base} is missing",
            hint="Build the base images once with: toolforge images build",
        )
    _check_dependencies(bundle)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix="build-", dir=settings.cache_dir))
    try:
        render_context(
            bundle, settings, context, base_image=base, runners_dir=runners, progress=progress
        )
        if progress:
            progress(f"building {tag}")
        try:
            docker_build(context, tag, progress=progress)
        except BuildError as e:
            raise _explain_failure(bundle, e) from e
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return tag


def _check_dependencies(bundle: ToolBundle) -> None:
    deps, language = bundle.spec.dependencies, bundle.spec.language.value
    if deps.pip and language != "python":
        raise DependencyError(
            "pip", deps.pip[0], f"pip dependencies need a python tool, not {language}"
        )
    if deps.npm and language != "typescript":
        raise DependencyError(
            "npm", deps.npm[0], f"npm dependencies need a typescript tool, not {language}"
        )


def render_context(
    bundle: ToolBundle,
    settings: Settings,
    context: Path,
    *,
    base_image: str,
    runners_dir: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the complete build context for ``bundle`` into ``context``; return the Dockerfile."""
    deps = bundle.spec.dependencies
    if deps.pip:
        from toolforge.sandbox.wheelhouse import pip_wheels

        _link_tree(pip_wheels(deps.pip, settings, progress=progress), context / "wheels")
    if deps.npm:
        from toolforge.sandbox.wheelhouse import npm_modules

        shutil.copytree(
            npm_modules(deps.npm, settings, progress=progress) / "node_modules",
            context / "node_modules",
            symlinks=True,
        )
    shutil.copytree(
        runners_dir or RUNNERS_DIR,
        context / "runners",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    _write_tool_files(bundle, context / "tool")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(render_dockerfile(bundle, base_image=base_image), encoding="utf-8")
    return dockerfile


def render_dockerfile(bundle: ToolBundle, *, base_image: str) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(data_dir("templates"))),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["shell_quote"] = shlex.quote
    deps = bundle.spec.dependencies
    labels = {
        LABEL: "1",
        LABEL_KIND: "tool-image",
        LABEL_TOOL: bundle.name,
        LABEL_CONTENT: bundle.content_hash(),
        LABEL_VERSION: str(bundle.spec.version),
    }
    template = env.get_template(f"{bundle.spec.language.value}/Dockerfile.j2")
    return (
        template.render(
            base_image=base_image,
            apt=list(deps.apt),
            pip=bool(deps.pip),
            npm=bool(deps.npm),
            needs_root_step=bundle.spec.language.value == "typescript",
            labels=labels,
        ).strip()
        + "\n"
    )


def _write_tool_files(bundle: ToolBundle, dest: Path) -> None:
    dest.mkdir(parents=True)
    for name, text in bundle.files().items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise SpecError(
                bundle.name, [(name, "file names must be relative paths inside the tool folder")]
            )
        target = dest.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        target.chmod(0o755 if name.endswith(".sh") else 0o644)


def _link_tree(src: Path, dest: Path) -> None:
    """Hard-link the cached files into the context (copy when on another filesystem)."""
    dest.mkdir(parents=True)
    for path in src.iterdir():
        try:
            (dest / path.name).hardlink_to(path)
        except OSError:
            shutil.copy2(path, dest / path.name)


def _explain_failure(bundle: ToolBundle, error: BuildError) -> Exception:
    """Turn a raw build failure into the error a user can act on."""
    log = error.build_log
    missing = re.search(r"E: Unable to locate package (\S+)", log)
    if missing:
        return DependencyError("apt", missing.group(1), "not in the Debian archive the image uses")
    if "Could not find a version that satisfies" in log or "No matching distribution" in log:
        name = re.search(r"(?:No matching distribution found for|requirement) (\S+)", log)
        return DependencyError(
            "pip",
            name.group(1) if name else ", ".join(bundle.spec.dependencies.pip),
            "a wheel fetched on the host does not install in the image",
        )
    step = _failed_step(log)
    if step and "esbuild" in step.splitlines()[0]:
        detail = "\n".join(
            ln for ln in step.splitlines()[1:] if ln.strip() and not ln.startswith(_DOCKER_NOISE)
        )
        return BuildError(f"{bundle.name}: main.ts does not compile (esbuild):\n{detail}", log)
    return BuildError(
        f"Building the image of {bundle.name} failed: {error.message.splitlines()[0]}", log
    )


_DOCKER_NOISE = (" ---> ", "Removing intermediate container", "The command ")


def _failed_step(log: str) -> str:
    """The text of the last ``Step N/M`` of a docker build log (the one that failed)."""
    idx = log.rfind("Step ")
    return log[idx:] if idx >= 0 else ""
