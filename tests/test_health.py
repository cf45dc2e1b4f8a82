"""GET / (the spec's health check), /livez and /readyz."""

from __future__ import annotations

from tests.helpers import ClientFactory


async def test_health_check_answers_ok(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {"status": "ok"}


async def test_livez_and_readyz_answer_ok(make_client: ClientFactory) -> None:
    client = await make_client()
    livez = await client.get("/livez")
    readyz = await client.get("/readyz")
    assert (livez.status, await livez.json()) == (200, {"status": "ok"})
    assert readyz.status == 200
    assert (await readyz.json())["status"] == "ok"


async def test_readyz_answers_503_once_shutdown_has_begun(make_client: ClientFactory) -> None:
    client = await make_client()
    await client.app.shutdown()  # what the runner does when SIGTERM arrives
    readyz = await client.get("/readyz")
    assert readyz.status == 503
    assert (await readyz.json())["status"] == "shutting down"
    livez = await client.get("/livez")
    assert livez.status == 200, "liveness must not fail during a graceful shutdown"
