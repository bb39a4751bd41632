"""Why a job failed, whole: its summary, the rest of its message, its hint, its problems (the first
`SHOWN`, then how many more) and its log's last lines. The run page and the merge form show it."""

from __future__ import annotations

from typing import Any

from reactpy import html

from tunelog.events.state import JobRow

SHOWN = 20
"""Problems listed on the page; `tunectl jobs show JOB --json` has them all."""


def problem_text(problem: dict[str, Any]) -> str:
    """`row 3: field 'response' is missing`, or the problem's fields as `key=value`."""
    if "where" in problem or "message" in problem:
        rest = " ".join(f"{k}={v}" for k, v in problem.items() if k not in ("where", "message"))
        message = " ".join(str(x) for x in (problem.get("message") or "", rest) if x)
        return ": ".join(str(x) for x in (problem.get("where") or "", message) if x)
    return " ".join(f"{k}={v}" for k, v in problem.items())


def failure_view(job: JobRow, *, node: str = "") -> Any:
    """A failed job's whole error; the hint comes before the problems it refers to ("named below")."""
    rest = job.error_message.strip().splitlines()[1:]
    problems = [html.li({"key": str(i)}, problem_text(p)) for i, p in enumerate(job.problems[:SHOWN])]
    more = len(job.problems) - SHOWN
    words = [line for line in job.last_lines if line.strip()]
    return html.div(
        {"className": "job-failure", "data-job": job.job_id, "data-node": node},
        html.p({"className": "error-text"}, html.b(f"{node}: " if node else ""), job.error or job.state,
               html.span({"className": "muted"}, f"  (job {job.job_id}, {job.cause})") if job.cause else ""),
        html.pre({"className": "failure-message"}, "\n".join(rest)) if rest else "",
        html.div({"className": "hint"}, f"Hint: {job.hint}") if job.hint else "",
        html.ul({"className": "problems"}, problems) if problems else "",
        html.p({"className": "muted more-problems"},
               f"… and {more} more (see `tunectl jobs show {job.job_id} --json`)") if more > 0 else "",
        html.details(html.summary("last log lines"), html.pre("\n".join(words))) if words else "",
    )
