"""toolforge — sandboxed tool synthesis.

A model writes a tool (typed spec + implementation + tests), toolforge builds it into a
hardened container image, proves it by running its tests in the sandbox, registers it,
and runs it from the CLI, from Python, as background jobs, and for agents.
"""

__version__ = "0.1.0"

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
from toolforge.forge import Forge  # noqa: E402
from toolforge.spec import ToolBundle, ToolSpec  # noqa: E402

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
