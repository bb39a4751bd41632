"""The one exception tree. Each error carries a message a user can act on and an optional hint.

TunelogError
├── ValidationError   bad input; `problems` lists every problem found, each naming its place
├── ConflictError     a stale expected version or a duplicate
├── NotFoundError     an unknown run, job, plugin, artifact or route
├── PluginError       a plugin that cannot be loaded or does not offer an operation
└── JobError          a job that cannot be started, cancelled or resumed

The API maps these to one JSON envelope (`to_dict`), the CLI to `Error: ...` plus an exit code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TunelogError(Exception):
    """Base of every error tunelog raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None, problems: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.problems = problems or []

    def to_dict(self) -> dict[str, Any]:
        """The `error` object of the API's error envelope."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.problems:
            out["problems"] = self.problems
        return out

    def __str__(self) -> str:
        lines = [self.message]
        lines += [f"  - {p.get('where', '')}: {p.get('message', '')}".replace("  - : ", "  - ") for p in self.problems]
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        return "\n".join(lines)


class ValidationError(TunelogError):
    """The input is malformed; nothing was changed."""

    code = "invalid"
    status = 422
    exit_code = 2

    @classmethod
    def collect(cls, message: str, problems: list[tuple[str, str]], *, hint: str | None = None) -> ValidationError:
        """Build one error from (where, message) pairs so every problem is reported at once."""
        return cls(message, hint=hint, problems=[{"where": w, "message": m} for w, m in problems])


class ConflictError(TunelogError):
    """Someone else changed the stream first (stale expected version) or the thing exists already."""

    code = "conflict"
    status = 409
    exit_code = 3


class NotFoundError(TunelogError):
    """The named thing does not exist."""

    code = "not_found"
    status = 404
    exit_code = 4


class PluginError(TunelogError):
    """A plugin failed to load, or does not offer what was asked of it."""

    code = "plugin_error"
    status = 422
    exit_code = 5


class JobError(TunelogError):
    """A job could not be started, cancelled or resumed."""

    code = "job_error"
    status = 409
    exit_code = 6
