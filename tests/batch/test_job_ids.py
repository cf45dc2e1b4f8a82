"""Job ids and labels: valid for Batch whatever the run id, readable when it already is."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.batch.fake import FakeBatch
from tests.batch.helpers import submit
from tests.helpers import Client
from wtrunner.invokers.batch_names import JOB_ID_PATTERN, job_id, label_value, new_job_id

LABEL_RULE = re.compile(r"^[a-z0-9_-]{0,63}$")


@given(st.text(max_size=300))
def test_job_ids_are_valid_for_any_run_id(run_id: str) -> None:
    first, second = new_job_id(run_id), new_job_id(run_id)
    for made in (first, second):
        assert JOB_ID_PATTERN.match(made) and len(made) <= 63, made
        assert made[0].isalpha() and made == made.lower()
    assert first != second  # every submission is a job of its own
    assert LABEL_RULE.match(label_value(run_id))


@given(st.from_regex(r"[a-z][a-z0-9-]{0,40}[a-z0-9]", fullmatch=True))
def test_valid_run_ids_stay_readable(run_id: str) -> None:
    collapsed = re.sub("-+", "-", run_id)
    assert job_id(run_id, "0123abcd") == f"{collapsed}-0123abcd"
    assert label_value(run_id) == run_id


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        ("Run_ÄÖÜ 2024/01/01 #1", "run-aou-2024-01-01-1-"),
        ("123-starts-with-a-digit", "wt-123-starts-with-a-digit-"),
        ("---", "wt-"),
        ("😀", "wt-"),
        ("a" * 200, "a" * 54 + "-"),
        ("x" * 53 + "!!!" + "y" * 10, "x" * 53 + "-"),
    ],
)
async def test_hostile_run_ids_make_jobs_batch_accepts(
    client: Client, fake: FakeBatch, run_id: str, expected: str
) -> None:
    status, body, headers = await submit(client, query={"workflow_run_id": run_id})
    assert status == 202, body  # the fake applies Batch's rules for ids and labels
    [request] = fake.requests
    assert request.job_id.startswith(expected) and len(request.job_id) == len(expected) + 8
    assert headers["X-Batch-Job"].endswith(f"/jobs/{request.job_id}")


def test_job_id_suffix_must_be_safe() -> None:
    with pytest.raises(ValueError, match="suffix"):
        job_id("run", "NOT-SAFE")
