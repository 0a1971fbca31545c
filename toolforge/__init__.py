"""toolforge — sandboxed tool synthesis.

A model writes a tool (typed spec + implementation + tests), toolforge builds it into a
hardened container image, proves it by running its tests in the sandbox, registers it,
and runs it from the CLI, from Python, as background jobs, and for agents.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING  # noqa: E402

from toolforge.errors import (  # noqa: E402
    ArgumentError,
    BuildError,
    DockerUnavailable,
    LimitExceeded,
    ModelUnavailable,
    NotFoundError,
    SpecError,
    ToolFailed,
    ToolforgeError,
    ToolTimeout,
    UsageError,
)

if TYPE_CHECKING:
    from toolforge.forge import Forge
    from toolforge.spec import ToolBundle, ToolSpec

_LAZY = {"Forge": "toolforge.forge", "ToolBundle": "toolforge.spec", "ToolSpec": "toolforge.spec"}


def __getattr__(name: str) -> object:
    """Import the heavy parts (pydantic models, the Forge) on first use: `toolforge --help` stays fast."""
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'toolforge' has no attribute {name!r}")


__all__ = [
    "ArgumentError",
    "BuildError",
    "DockerUnavailable",
    "Forge",
    "LimitExceeded",
    "ModelUnavailable",
    "NotFoundError",
    "SpecError",
    "ToolBundle",
    "ToolFailed",
    "ToolSpec",
    "ToolTimeout",
    "ToolforgeError",
    "UsageError",
    "__version__",
]
