"""Image build times: a new trivial tool on a warm base, a no-change rebuild, the base no-op.

Baselines from the same run: a plain ``docker build`` (CLI) of a Dockerfile FROM the same
base that copies one file, and a ``docker image inspect`` of an existing image.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.bench.report import Report, p50, p99, timed
from toolforge.config import load_settings
from toolforge.sandbox.build import build_tool_image
from toolforge.sandbox.docker_client import client
from toolforge.sandbox.images import base_image_tag, build_base_images
from toolforge.spec import ToolBundle, parse_spec

RUNS = 7


def _trivial(language: str, name: str) -> ToolBundle:
    source = {
        "python": "def run():\n    return 1\n",
        "typescript": "export function run(): number {\n  return 1;\n}\n",
    }[language]
    spec = parse_spec({"name": name, "description": "bench", "language": language})
    return ToolBundle(
        spec,
        source + f"# {uuid.uuid4().hex}\n".replace("#", "//" if language == "typescript" else "#"),
    )


def bench(report: Report) -> None:
    settings = load_settings()
    build_base_images(settings)
    made: list[str] = []
    try:
        for language in ("python", "typescript"):
            name = f"bench-build-{language}-{uuid.uuid4().hex[:6]}"
            made.append(name)
            new = timed(
                lambda lang=language, n=name: build_tool_image(_trivial(lang, n), settings),
                RUNS,
                warmup=1,
            )
            base = base_image_tag(language, settings)
            plain = timed(lambda b=base: _plain_docker_build(b, made), RUNS, warmup=1)
            report.add(
                "build",
                f"new trivial {language} tool p50",
                p50(new),
                "ms",
                baseline_name="docker build FROM base + COPY",
                baseline=p50(plain),
                note=f"p99 {p99(new):.0f} ms; target ≤ 3 s",
            )

        bundle = _trivial("python", made[0])
        tag = build_tool_image(bundle, settings)
        again = timed(lambda: build_tool_image(bundle, settings), 50, warmup=3)
        inspect = timed(lambda: _cli("image", "inspect", tag), 15, warmup=2)
        report.add(
            "build",
            "no-change rebuild p50",
            p50(again),
            "ms",
            baseline_name="docker image inspect (CLI)",
            baseline=p50(inspect),
            note=f"p99 {p99(again):.1f} ms; target ≤ 300 ms",
        )

        noop = timed(lambda: build_base_images(settings), 10, warmup=1)
        report.add(
            "build",
            "images build (up to date) p50",
            p50(noop),
            "ms",
            baseline_name="docker image inspect (CLI)",
            baseline=p50(inspect),
            note="three base images checked; target well under 5 s",
        )
    finally:
        _remove(made)


def _plain_docker_build(base: str, made: list[str]) -> None:
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "main.py").write_text(f"# {uuid.uuid4().hex}\n")
        Path(ctx, "Dockerfile").write_text(
            f"FROM {base}\nCOPY main.py /opt/tool/main.py\nLABEL io.toolforge=1 io.toolforge.tool=bench-plain\n"
        )
        _cli("build", "-q", "-t", f"toolforge-bench-plain:{uuid.uuid4().hex[:8]}", ctx)
    if "bench-plain" not in made:
        made.append("bench-plain")


def _cli(*args: str) -> None:
    subprocess.run(
        ["docker", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _remove(names: list[str]) -> None:
    api = client().api
    for name in names:
        for img in api.images(filters={"label": f"io.toolforge.tool={name}"}):
            api.remove_image(img["Id"], force=True)
