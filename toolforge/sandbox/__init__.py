"""Running tools: backends (Docker, local processes), the runner protocol, the warm pool,
state, and the ``Sandbox`` facade (``toolforge.sandbox.service``) that the rest uses.

``BACKENDS`` maps a ``settings.backend`` name to its class. Importing this package does not
import the Docker SDK; that happens on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from toolforge.config import Settings
from toolforge.sandbox.backend import Backend, CallResult, CallStatus, Session
from toolforge.sandbox.docker_backend import DockerBackend
from toolforge.sandbox.local_backend import LocalBackend

# name → constructor taking the Settings
BACKENDS: dict[str, Callable[[Settings], Backend]] = {
    "docker": DockerBackend,
    "local": LocalBackend,
}

__all__ = [
    "BACKENDS",
    "Backend",
    "CallResult",
    "CallStatus",
    "DockerBackend",
    "LocalBackend",
    "Session",
]
