"""Find the data that ships with toolforge: templates/, sandbox-images/, prompts.

In a wheel they live under ``toolforge/_data``; in a source checkout (editable install)
they are the top-level folders beside the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"toolforge data folder {name!r} is missing from the installation")


def templates_dir() -> Path:
    return data_dir("templates")


def sandbox_images_dir() -> Path:
    return data_dir("sandbox-images")
