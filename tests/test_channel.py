"""`wtrunner channel build` and the embedded examples channel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rattler

from tests.helpers import REPO, ClientFactory, SettingsFactory
from wtrunner.channel import ChannelBuildError, build_channel
from wtrunner.environments import parse_matchspec
from wtrunner.keys import ENVIRONMENTS

TRIVIAL = REPO / "tests" / "workflows" / "trivial"


def _packages(channel: Path) -> list[str]:
    return sorted(p.name for p in (channel / "noarch").glob("*.conda"))


async def test_rebuild_with_unchanged_sources_builds_nothing(tmp_path: Path) -> None:
    source = tmp_path / "trivial"
    shutil.copytree(TRIVIAL, source)
    first = await build_channel([source], tmp_path / "channel")
    assert len(first.built) == 1
    mtime = (tmp_path / "channel" / "noarch" / first.built[0]).stat().st_mtime_ns
    second = await build_channel([source], tmp_path / "channel")
    assert second.built == () and second.unchanged == first.built
    assert (tmp_path / "channel" / "noarch" / first.built[0]).stat().st_mtime_ns == mtime

    (source / "trivial_workflow" / "cli.py").write_text(
        (source / "trivial_workflow" / "cli.py").read_text() + "\n# changed\n"
    )
    third = await build_channel([source], tmp_path / "channel")
    assert len(third.built) == 1 and third.removed == first.built
    assert _packages(tmp_path / "channel") == list(third.built)
    repodata = json.loads((tmp_path / "channel" / "noarch" / "repodata.json").read_text())
    assert list(repodata["packages.conda"]) == list(third.built)


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ("name: Bad Name!\nversion: 1\nentry_point: m:f\n", "'name'"),
        ("name: wt-x\nentry_point: m:f\n", "'version'"),
        ("name: wt-x\nversion: 1\nentry_point: not-a-module\n", "'entry_point'"),
        ("name: wt-x\nversion: 1\nentry_point: m:f\nbuild_number: -1\n", "'build_number'"),
        ("name: wt-x\nversion: 1\nentry_point: m:f\nsummary: [a, b]\n", "'summary'"),
        ('name: wt-x\nversion: 1\nentry_point: m:f\nsummary: "a\\nb"\n', "'summary'"),
        ("[unclosed", "not valid YAML"),
    ],
)
async def test_invalid_workflow_yaml_names_the_problem(
    tmp_path: Path, metadata: str, complaint: str
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "workflow.yaml").write_text(metadata)
    with pytest.raises(ChannelBuildError, match=complaint):
        await build_channel([source], tmp_path / "channel")


async def test_long_interpreter_paths_get_a_launcher_that_still_runs(tmp_path: Path) -> None:
    deep = tmp_path / ("very-long-directory-name-" * 6)
    deep.mkdir()
    interpreter = deep / "python3"
    interpreter.symlink_to(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}")
    assert len(str(interpreter)) > 127
    await build_channel([TRIVIAL], tmp_path / "channel", interpreter=str(interpreter))
    records = await rattler.solve([(tmp_path / "channel").as_uri()], ["wt-test-trivial-workflow"])
    await rattler.install(records, tmp_path / "env", show_progress=False)

    (tmp_path / "params.json").write_text('{"a": 1}')
    env = {"PATH": "/usr/bin:/bin", "WT_RESULTS": (tmp_path / "results").as_uri()}
    done = subprocess.run(
        [
            tmp_path / "env" / "bin" / "wt-test-trivial-workflow",
            "run",
            "--config-file",
            tmp_path / "params.json",
        ],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "results" / "result.json").read_text())
    assert result["result"] == {"ok": True, "params": {"a": 1}}


def _channel_build(*sources: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wtrunner", "channel", "build", *map(str, sources),
         "--output", str(output)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_builds_a_channel(tmp_path: Path) -> None:
    done = _channel_build(REPO / "examples", output=tmp_path / "channel")
    assert done.returncode == 0, done.stderr
    assert "built     wt-example-tracks-workflow-1.0.0-" in done.stdout
    assert _packages(tmp_path / "channel")[0].startswith("wt-example-tracks-workflow-1.0.0-")

    again = _channel_build(REPO / "examples", output=tmp_path / "channel")
    assert "unchanged wt-example-tracks-workflow" in again.stdout

    missing = _channel_build(tmp_path / "nope", output=tmp_path / "channel")
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_embedded_default_builds_the_examples_channel_once(
    make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    settings = make_settings(channels=())
    client = await make_client(settings)
    built = settings.cache_dir / "examples-channel" / "noarch"
    packages = sorted(built.glob("wt-example-tracks-workflow-*.conda"))
    assert len(packages) == 1
    stamp = packages[0].stat().st_mtime_ns
    env = await client.app[ENVIRONMENTS].resolve(parse_matchspec("wt-example-tracks-workflow"))
    assert env.executable.exists()
    await client.close()

    client = await make_client(settings)  # a restart on the same cache dir
    assert packages[0].stat().st_mtime_ns == stamp
    await client.close()
