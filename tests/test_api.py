"""Pin the public API: what ``import toolforge`` offers is a promise."""

from __future__ import annotations

import toolforge


def test_exported_members() -> None:
    assert sorted(toolforge.__all__) == [
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
    for name in toolforge.__all__:
        assert hasattr(toolforge, name), name


def test_every_error_is_a_toolforge_error_with_a_meaningful_exit_code() -> None:
    from toolforge import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert classes
    for cls in classes:
        assert issubclass(cls, errors.ToolforgeError), cls
        assert cls.exit_code in (1, 2, 3, 4, 5, 124, 130), (cls, cls.exit_code)
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the tree in errors.py"


def test_forge_api_surface() -> None:
    for method in (
        "add",
        "list_tools",
        "tool",
        "remove",
        "export",
        "test",
        "call",
        "run",
        "generate",
        "submit",
        "job",
        "solve",
        "memory",
        "close",
    ):
        assert callable(getattr(toolforge.Forge, method)), method
