"""Job runner: resuming from a chosen (earlier) checkpoint of a job, as forks need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemon.jobs_support import MANIFEST, Env, make_env, running
from tunelog.daemon.jobs.runner import JobRunner
from tunelog.events.errors import ValidationError
from tunelog.events.state import JobRow

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def submit_curve(env: Env, runner: JobRunner, *, resume_of: str | None = None,
                 resume_checkpoint: str | None = None, **params: Any) -> JobRow:
    defaults = {k: p.default for k, p in MANIFEST.operations["curve"].params.items()}
    return runner.submit(plugin="testops", operation="curve", params=defaults | params, inputs={},
                         code_hash=env.code_hash, plugin_version=MANIFEST.version, resource="cpu",
                         resume_of=resume_of, resume_checkpoint=resume_checkpoint)


async def test_a_job_resumes_from_an_earlier_checkpoint_when_one_is_chosen(env: Env) -> None:
    async with running(env.runner()) as runner:
        first = await env.wait(submit_curve(env, runner, steps=6, every=2).job_id)
        saved = {e.step: e.sha256 for e in env.events(first.job_id, "job-checkpointed")}  # type: ignore[attr-defined]
        assert sorted(saved) == [2, 4, 6]
        chosen = submit_curve(env, runner, steps=6, scale=2.0, resume_of=first.job_id, resume_checkpoint=saved[2])
        latest = submit_curve(env, runner, steps=8, resume_of=first.job_id)
        done, after_latest = await env.wait(chosen.job_id), await env.wait(latest.job_id)
    assert chosen.resume_checkpoint == saved[2]
    assert (done.state, done.outputs["resumed_from"], done.outputs["final_loss"]) == ("succeeded", 2, 2.0 / 6)
    assert after_latest.outputs["resumed_from"] == 6  # no choice: the latest checkpoint, as before


async def test_a_chosen_checkpoint_must_belong_to_the_resumed_job(env: Env) -> None:
    async with running(env.runner()) as runner:
        first = await env.wait(submit_curve(env, runner, steps=2, every=1).job_id)
        with pytest.raises(ValidationError) as bad:
            submit_curve(env, runner, resume_of=first.job_id, resume_checkpoint="0" * 64)
        assert "is not a checkpoint of job" in bad.value.problems[0]["message"]
        assert "(its steps: 1, 2)" in bad.value.problems[0]["message"]
        with pytest.raises(ValidationError, match="cannot queue"):
            submit_curve(env, runner, resume_checkpoint="0" * 64)
