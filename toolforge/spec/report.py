"""Test reports: what running a tool's tests in the sandbox found."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CaseResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    kind: str
    args: dict[str, Any]
    passed: bool
    detail: str = ""
    expected: Any = None
    got: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0


class TestReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    __test__ = False

    tool: str
    version: int
    backend: str = ""
    image: str | None = None
    cases: list[CaseResult] = Field(default_factory=list)
    created_at: str = Field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    @property
    def summary(self) -> str:
        ok = sum(c.passed for c in self.cases)
        return f"{ok}/{len(self.cases)} passed"
