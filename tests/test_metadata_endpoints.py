"""GET /rjsf, /params, /data-connection-property-names and the two conversions."""

from __future__ import annotations

from tests.helpers import Client
from wtrunner.environments import parse_matchspec
from wtrunner.keys import ENVIRONMENTS, SETTINGS

TRACKS = {"matchspec": "wt-example-tracks-workflow"}
FORMDATA = {
    "Workflow Details": {"workflow_details": {"name": "Elephants"}},
    "Data": {"get_fixes": {"connection": {"name": "mep"}}},
    "Analysis": {"summarize": {"speed_unit": "m/s"}},
}
PARAMS = {
    "workflow_details": {"name": "Elephants"},
    "get_fixes": {"connection": {"name": "mep"}},
    "summarize": {"speed_unit": "m/s"},
}


async def test_rjsf_params_and_connection_names(client: Client) -> None:
    rjsf = await client.get("/rjsf", params=TRACKS, headers={"Origin": "https://ui.example"})
    assert rjsf.status == 200
    assert rjsf.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    document = await rjsf.json()
    assert set(document["properties"]) == {"Workflow Details", "Data", "Analysis"}
    assert "uiSchema" in document and "$defs" in document

    params = await client.get("/params", params=TRACKS)
    assert params.status == 200
    assert set((await params.json())["properties"]) == {
        "workflow_details",
        "get_fixes",
        "summarize",
    }

    names = await client.get("/data-connection-property-names", params=TRACKS)
    assert (names.status, await names.json()) == (200, {"TracksConnection": ["get_fixes"]})


async def test_conversions_both_ways(client: Client) -> None:
    to_params = await client.post("/formdata-to-params", params=TRACKS, json=FORMDATA)
    assert (to_params.status, await to_params.json()) == (200, PARAMS)
    to_formdata = await client.post("/params-to-formdata", params=TRACKS, json=PARAMS)
    assert (to_formdata.status, await to_formdata.json()) == (200, FORMDATA)


async def test_invalid_form_data_and_params_are_422_with_jsonschema_items(client: Client) -> None:
    bad_form = {"Workflow Details": {"workflow_details": {"name": ""}}}
    response = await client.post("/formdata-to-params", params=TRACKS, json=bad_form)
    assert response.status == 422
    detail = (await response.json())["detail"]
    validators = {item["validator"] for item in detail}
    assert {"minLength", "required"} <= validators
    for item in detail:
        assert set(item) == {"message", "path", "schema_path", "validator", "input"}
    name_error = next(item for item in detail if item["validator"] == "minLength")
    assert name_error["path"] == ["Workflow Details", "workflow_details", "name"]
    assert name_error["input"] == ""

    bad_params = {
        "workflow_details": {"name": "x"},
        "get_fixes": {},
        "summarize": {"speed_unit": 9},
    }
    response = await client.post("/params-to-formdata", params=TRACKS, json=bad_params)
    assert response.status == 422
    (item,) = (await response.json())["detail"]
    assert (item["path"], item["validator"], item["input"]) == (
        ["summarize", "speed_unit"],
        "enum",
        9,
    )


async def test_conversion_body_must_be_an_object(client: Client) -> None:
    for body in (b"[1, 2]", b"not json", b""):
        response = await client.post(
            "/formdata-to-params",
            params=TRACKS,
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 422
        assert (await response.json())["detail"][0]["loc"][0] == "body"


async def test_invalid_json_from_the_workflow_is_502_naming_the_command(client: Client) -> None:
    response = await client.get("/rjsf", params={"matchspec": "wt-test-badrjsf-workflow"})
    assert response.status == 502
    assert "`wt-test-badrjsf-workflow get rjsf`" in (await response.json())["detail"]


async def test_failing_metadata_command_is_502(client: Client) -> None:
    response = await client.get("/params", params={"matchspec": "wt-test-trivial-workflow"})
    assert response.status == 502
    detail = (await response.json())["detail"]
    assert "`wt-test-trivial-workflow get params` exited with code 2" in detail


async def test_metadata_errors_for_bad_queries(client: Client) -> None:
    missing = await client.get("/rjsf")
    assert missing.status == 422
    assert (await missing.json())["detail"][0]["loc"] == ["query", "matchspec"]
    unknown = await client.get("/rjsf", params={"matchspec": "wt-nothing-here"})
    assert unknown.status == 404
    invoker = await client.get("/rjsf", params={**TRACKS, "invoker_type": "Nope"})
    assert invoker.status == 422


async def test_metadata_is_fetched_once_per_package(client: Client) -> None:
    first = await client.get("/rjsf", params=TRACKS)
    assert first.status == 200
    # swap the package's executable for one that answers differently: a cached document
    # does not change, a document not fetched yet comes from the new executable
    environment = await client.app[ENVIRONMENTS].resolve(parse_matchspec(TRACKS["matchspec"]))
    executable = environment.executable
    executable.unlink()  # (a hard link into the package cache: do not write through it)
    executable.write_text("#!/bin/sh\necho '{\"changed\": true}'\n")
    executable.chmod(0o755)
    again = await client.get("/rjsf", params=TRACKS)
    assert await again.json() == await first.json()
    params = await client.get("/params", params=TRACKS)
    assert await params.json() == {"changed": True}
    assert list((client.app[SETTINGS].cache_dir / "work").iterdir()) == []
