"""The one place that imports the Docker SDK: a client, and error translation.

Every container, volume and image toolforge creates carries ``LABEL`` so it can be found
and reaped (``toolforge gc``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from toolforge.errors import DockerUnavailable, ToolforgeError

LABEL = "io.toolforge"  # value "1" on everything toolforge creates
LABEL_TOOL = "io.toolforge.tool"
LABEL_KIND = "io.toolforge.kind"  # base-image | tool-image | call | state
LABEL_OWNER = "io.toolforge.owner"  # "<hostname>:<pid>" of the process that started a container

_client: Any = None
_lock = threading.Lock()


def client() -> Any:
    """A shared ``docker.DockerClient``; raises DockerUnavailable when the engine is down."""
    global _client
    with _lock:
        if _client is None:
            import docker
            from docker.errors import DockerException

            _preflight()
            c = None
            try:
                c = docker.from_env(timeout=120)
                c.ping()
            except DockerException as e:
                if c is not None:
                    c.close()  # no half-open socket left behind
                raise DockerUnavailable(_short(e)) from e
            _client = c
        return _client


def _preflight() -> None:
    """Fail fast, and cleanly, when a unix-socket engine is not there.

    docker-py leaks a socket when it cannot connect to a unix socket; checking first with
    a socket we close ourselves avoids that and gives a clearer message.
    """
    import os
    import socket

    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return
    path = host[len("unix://") :]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(path)
    except OSError as e:
        raise DockerUnavailable(f"cannot connect to {path}: {e.strerror or e}") from e
    finally:
        sock.close()


def reset_client() -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn docker SDK / connection errors into toolforge errors, ``raise … from e``."""
    from docker.errors import APIError, DockerException
    from requests.exceptions import ConnectionError as RequestsConnectionError

    try:
        yield
    except (RequestsConnectionError, ConnectionError) as e:
        raise DockerUnavailable(f"{action}: {_short(e)}") from e
    except APIError as e:
        raise ToolforgeError(f"Docker failed to {action}: {e.explanation or e}") from e
    except DockerException as e:
        raise DockerUnavailable(f"{action}: {_short(e)}") from e


def engine_version() -> str:
    return str(client().version().get("Version", "unknown"))


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:300]
