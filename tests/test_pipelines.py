"""The v1 pipelines API: shapes and status codes of the original, both pipeline kinds."""

from __future__ import annotations

from typing import Any

import httpx

SCRIPT = {
    "name": "a pipeline",
    "description": "a description",
    "docker_image_url": "a/url",
    "repository_ssh_url": "ssh+github url",
    "repository_branch": "master",
}
GRIDLABD = {
    "kind": "gridlabd",
    "name": "ieee13",
    "description": "IEEE 13-node feeder",
    "model": "ieee13.glm",
    "arguments": ["-D", "minimum_timestep=60"],
    "timeout_seconds": 600,
}


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/pipelines", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_create_script_pipeline_has_the_original_fields(client: httpx.AsyncClient) -> None:
    pipeline = await create(client, SCRIPT)
    for field, value in SCRIPT.items():
        assert pipeline[field] == value
    assert pipeline["kind"] == "script"
    assert pipeline["repository_script"] == "openfido.sh"
    assert len(pipeline["uuid"]) == 32 and int(pipeline["uuid"], 16) >= 0
    assert pipeline["uuid"] == pipeline["uuid"].lower()
    assert pipeline["created_at"].endswith("Z") and pipeline["updated_at"]


async def test_script_pipeline_defaults_branch_and_description(client: httpx.AsyncClient) -> None:
    pipeline = await create(
        client, {"name": "p", "docker_image_url": "img", "repository_ssh_url": "git@h:r.git"}
    )
    assert pipeline["repository_branch"] == "master"
    assert pipeline["description"] == ""


async def test_create_gridlabd_pipeline(client: httpx.AsyncClient) -> None:
    pipeline = await create(client, GRIDLABD)
    assert pipeline["kind"] == "gridlabd"
    assert pipeline["model"] == "ieee13.glm"
    assert pipeline["arguments"] == ["-D", "minimum_timestep=60"]
    assert pipeline["timeout_seconds"] == 600
    assert pipeline["docker_image_url"] is None
    minimal = await create(client, {"kind": "gridlabd", "name": "m"})
    assert minimal["model"] is None and minimal["arguments"] == []


async def test_get_list_and_order(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/pipelines")).json() == []
    first = await create(client, {**SCRIPT, "name": "pipeline 1"})
    second = await create(client, {**GRIDLABD, "name": "pipeline 2"})
    listed = (await client.get("/v1/pipelines")).json()
    assert [p["uuid"] for p in listed] == [first["uuid"], second["uuid"]]
    got = await client.get(f"/v1/pipelines/{second['uuid']}")
    assert got.status_code == 200 and got.json() == second


async def test_pagination_with_limit_and_cursor(client: httpx.AsyncClient) -> None:
    made = [(await create(client, {**SCRIPT, "name": f"p{i}"}))["uuid"] for i in range(5)]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        response = await client.get("/v1/pipelines", params=params)
        assert response.status_code == 200
        seen += [p["uuid"] for p in response.json()]
        pages += 1
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in response.headers
            break
        assert 'rel="next"' in response.headers["Link"]
        params = {"limit": 2, "cursor": cursor}
    assert seen == made and pages == 3
    whole = await client.get("/v1/pipelines")
    assert "X-Next-Cursor" not in whole.headers and len(whole.json()) == 5


async def test_bad_pagination_parameters(client: httpx.AsyncClient) -> None:
    for params in ({"limit": 0}, {"limit": "x"}, {"limit": 100000}, {"cursor": "garbage!"}):
        response = await client.get("/v1/pipelines", params=params)
        assert response.status_code == 400, params
        assert set(response.json()) == {"message", "errors"}


async def test_update_replaces_definition(client: httpx.AsyncClient) -> None:
    pipeline = await create(client, SCRIPT)
    update = {
        "name": "updated pipeline",
        "description": "updated description",
        "docker_image_url": "updated url",
        "repository_ssh_url": "updated ssh",
        "repository_branch": "updated branch",
    }
    response = await client.put(f"/v1/pipelines/{pipeline['uuid']}", json=update)
    assert response.status_code == 200
    for field, value in update.items():
        assert response.json()[field] == value
    assert (await client.get(f"/v1/pipelines/{pipeline['uuid']}")).json()["name"] == (
        "updated pipeline"
    )
    as_native = await client.put(f"/v1/pipelines/{pipeline['uuid']}", json=GRIDLABD)
    assert as_native.status_code == 200
    assert as_native.json()["kind"] == "gridlabd"
    assert as_native.json()["docker_image_url"] is None
    assert as_native.json()["created_at"] == pipeline["created_at"]


async def test_delete_is_soft_and_answers_empty_object(client: httpx.AsyncClient) -> None:
    pipeline = await create(client, SCRIPT)
    kept = await create(client, {**SCRIPT, "name": "kept"})
    response = await client.delete(f"/v1/pipelines/{pipeline['uuid']}")
    assert response.status_code == 200 and response.json() == {}
    assert (await client.get(f"/v1/pipelines/{pipeline['uuid']}")).status_code == 404
    assert [p["uuid"] for p in (await client.get("/v1/pipelines")).json()] == [kept["uuid"]]
    found = await client.post(
        "/v1/pipelines/search", json={"uuids": [pipeline["uuid"], kept["uuid"]]}
    )
    assert [p["uuid"] for p in found.json()] == [kept["uuid"]]
    assert (await client.delete(f"/v1/pipelines/{pipeline['uuid']}")).status_code == 404
    update = await client.put(f"/v1/pipelines/{pipeline['uuid']}", json=SCRIPT)
    assert update.status_code == 404


async def test_search(client: httpx.AsyncClient) -> None:
    pipeline = await create(client, SCRIPT)
    other = await create(client, GRIDLABD)
    found = await client.post("/v1/pipelines/search", json={"uuids": [pipeline["uuid"]]})
    assert found.status_code == 200 and [p["uuid"] for p in found.json()] == [pipeline["uuid"]]
    both = await client.post(
        "/v1/pipelines/search", json={"uuids": [other["uuid"], pipeline["uuid"], "a" * 32]}
    )
    assert [p["uuid"] for p in both.json()] == [pipeline["uuid"], other["uuid"]]
    none = await client.post("/v1/pipelines/search", json={"uuids": ["a" * 32]})
    assert none.status_code == 200 and none.json() == []
    empty = await client.post("/v1/pipelines/search", json={"uuids": []})
    assert empty.status_code == 200 and empty.json() == []


async def test_json_content_types_accepted_and_no_content_type_for_reads(
    client: httpx.AsyncClient,
) -> None:
    import json

    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = await client.post(
            "/v1/pipelines", content=json.dumps(SCRIPT), headers={"Content-Type": content_type}
        )
        assert response.status_code == 200, content_type
    uuid = response.json()["uuid"]
    assert (await client.get(f"/v1/pipelines/{uuid}")).status_code == 200
    assert (await client.delete(f"/v1/pipelines/{uuid}")).status_code == 200
