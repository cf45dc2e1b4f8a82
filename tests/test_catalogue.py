"""GET /workflows and GET /workflows/{name}: the packages of the channels and installed prefixes,
newest version first (conda's ordering), and a channel that cannot be reached named with its
error instead of failing the listing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import rattler
import yaml

from tests.helpers import REPO, ClientFactory
from tests.processes import free_port
from wtrunner.channel import build_channel

VERSIONS = "wt-test-versions-workflow"


async def _versions_channel(output: Path, sources: Path, *versions: str) -> None:
    """A channel holding the versions workflow at each of ``versions`` (copies of its sources)."""
    dirs = []
    for version in versions:
        source = sources / version
        shutil.copytree(REPO / "tests" / "workflows" / "versions-1", source)
        meta = yaml.safe_load((source / "workflow.yaml").read_text())
        meta["version"] = version
        (source / "workflow.yaml").write_text(yaml.safe_dump(meta))
        dirs.append(source)
    await build_channel(dirs, output)


def _entry(listing: dict[str, Any], name: str) -> dict[str, Any]:
    found = [entry for entry in listing["workflows"] if entry["name"] == name]
    assert len(found) == 1, listing
    return found[0]


async def test_the_list_names_every_workflow_of_the_channel(
    make_client: ClientFactory, channel: Path
) -> None:
    client = await make_client()
    response = await client.get("/workflows")
    assert response.status == 200
    listing = await response.json()

    names = [entry["name"] for entry in listing["workflows"]]
    assert names == sorted(names)
    on_disk = {p.name.rsplit("-", 2)[0] for p in (channel / "noarch").glob("*.conda")}
    assert set(names) == on_disk
    versions = _entry(listing, VERSIONS)
    assert versions["versions"] == ["2.0.0", "1.0.0"]
    # the summary of the newest version's info/about.json, as the channel builder writes it
    assert versions["summary"] == f"wtrunner workflow {VERSIONS}"
    assert versions["channel"] == channel.as_uri()
    tracks = _entry(listing, "wt-example-tracks-workflow")  # its workflow.yaml has a summary
    assert tracks["summary"] == "Per-animal distance, duration and speed from GPS fixes"
    assert listing["channels"] == [{"url": channel.as_uri(), "source": "channel", "error": None}]


async def test_only_names_matching_the_catalogue_patterns_are_listed(
    make_client: ClientFactory,
) -> None:
    client = await make_client(catalogue_packages=("wt-test-v*", "wt-example-*"))
    listing = await (await client.get("/workflows")).json()
    assert [entry["name"] for entry in listing["workflows"]] == [
        "wt-example-tracks-workflow",
        VERSIONS,
    ]
    response = await client.get("/workflows/wt-test-echo-workflow")
    assert response.status == 404


async def test_versions_are_ordered_as_conda_orders_them_across_channels(
    make_client: ClientFactory, channel: Path, tmp_path: Path
) -> None:
    more = tmp_path / "more-channel"
    await _versions_channel(more, tmp_path / "sources", "1.9.0", "1.10.0rc1", "1.10.0")
    client = await make_client(channels=(channel.as_uri(), more.as_uri()))

    listing = await (await client.get("/workflows")).json()
    expected = ["2.0.0", "1.10.0", "1.10.0rc1", "1.9.0", "1.0.0"]  # not the strings' order
    assert _entry(listing, VERSIONS)["versions"] == expected

    response = await client.get(f"/workflows/{VERSIONS}")
    assert response.status == 200
    detail = await response.json()
    assert detail["name"] == VERSIONS
    assert [v["version"] for v in detail["versions"]] == expected
    for version in detail["versions"]:
        origin = channel if version["version"] in ("2.0.0", "1.0.0") else more
        assert version["channel"] == origin.as_uri()
        assert version["source"] == "channel" and version["subdir"] == "noarch"
        built = list((origin / "noarch").glob(f"{VERSIONS}-{version['version']}-*.conda"))
        assert built[0].name == f"{VERSIONS}-{version['version']}-{version['build']}.conda"
        assert version["timestamp"].startswith("20")  # the package's build time, ISO 8601


async def test_a_rebuilt_local_channel_is_listed_at_once(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    local = tmp_path / "local-channel"
    await _versions_channel(local, tmp_path / "one", "1.0.0")
    client = await make_client(channels=(local.as_uri(),), solve_cache_seconds=3600)
    listing = await (await client.get("/workflows")).json()
    assert _entry(listing, VERSIONS)["versions"] == ["1.0.0"]

    await _versions_channel(local, tmp_path / "two", "1.1.0")  # same channel, a new version
    listing = await (await client.get("/workflows")).json()
    assert _entry(listing, VERSIONS)["versions"] == ["1.1.0", "1.0.0"]


async def test_an_unreachable_channel_is_reported_and_the_others_still_listed(
    make_client: ClientFactory, channel: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/channel"
    client = await make_client(channels=(channel.as_uri(), nowhere))

    response = await client.get("/workflows")
    assert response.status == 200
    listing = await response.json()
    assert _entry(listing, VERSIONS)["versions"] == ["2.0.0", "1.0.0"]
    good, bad = listing["channels"]
    assert good == {"url": channel.as_uri(), "source": "channel", "error": None}
    assert bad["url"] == nowhere and bad["source"] == "channel"
    assert "127.0.0.1" in bad["error"] and "refused" in bad["error"].lower()

    detail = await (await client.get(f"/workflows/{VERSIONS}")).json()
    assert [v["version"] for v in detail["versions"]] == ["2.0.0", "1.0.0"]
    assert detail["channels"][1]["error"] == bad["error"]

    # a name found nowhere may be in the channel that could not be read: 503, not 404
    missing = await client.get("/workflows/wt-absent-workflow")
    assert missing.status == 503
    body = await missing.json()
    assert nowhere in body["detail"]


async def test_an_unknown_workflow_is_a_404_naming_it(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/workflows/wt-absent-workflow")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert "wt-absent-workflow" in (await response.json())["detail"]


async def test_installed_prefixes_are_listed_with_their_path(
    make_client: ClientFactory, channel: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "installed"
    records = await rattler.solve([channel.as_uri()], ["wt-test-trivial-workflow"])
    await rattler.install(records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False)
    nowhere = f"http://127.0.0.1:{free_port()}/channel"
    client = await make_client(channels=(nowhere,), prefixes=(str(prefix),))

    listing = await (await client.get("/workflows")).json()
    assert [entry["name"] for entry in listing["workflows"]] == ["wt-test-trivial-workflow"]
    entry = listing["workflows"][0]
    assert entry["versions"] == ["1.0.0"]
    assert entry["summary"] == "wtrunner workflow wt-test-trivial-workflow"
    assert listing["channels"][1] == {"url": str(prefix), "source": "prefix", "error": None}

    detail = await (await client.get("/workflows/wt-test-trivial-workflow")).json()
    (version,) = detail["versions"]
    assert version["source"] == "prefix" and version["prefix"] == str(prefix)
    assert version["channel"].rstrip("/") == channel.as_uri()  # where it was installed from
