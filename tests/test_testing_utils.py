"""wtrunner.testing: Case and CaseRunner, through the app and through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from wtrunner.testing import Case, CaseFailed, CaseRunner

CASES = [
    Case(
        name="sample data",
        description="mock I/O uses the GPS fixes shipped in the package",
        params={"workflow_details": {"name": "Elephants"}, "get_fixes": {}},
    ),
    Case(
        name="no fixes at all",
        params={"workflow_details": {"name": "Nothing"}, "get_fixes": {}},
        mock_io=False,
        expected_status=500,
        raises=True,
    ),
    Case(name="invalid params", params={"workflow_details": {}}, expected_status=422),
]


@pytest.mark.parametrize("mode", ["app", "cli"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_cases_run_in_both_modes(
    channel: Path, tmp_path: Path, mode: str, case: Case
) -> None:
    runner = CaseRunner(
        "wt-example-tracks-workflow", tmp_path, channels=[channel.as_uri()], mode=mode
    )  # type: ignore[arg-type]
    async with runner:
        body = await runner.run(case)
    if case.name == "sample data":
        assert body["result"]["source"] == "sample data"
        assert len(body["result"]["animals"]) == 3
    elif case.raises:
        assert "get_fixes needs" in body["error"]


async def test_a_case_that_does_not_hold_fails(channel: Path, tmp_path: Path) -> None:
    wrong = Case(name="expects failure", params=CASES[0].params, expected_status=500, raises=True)
    async with CaseRunner(
        "wt-example-tracks-workflow", tmp_path, channels=[channel.as_uri()]
    ) as runner:
        with pytest.raises(CaseFailed, match="expects failure"):
            await runner.run(wrong)
