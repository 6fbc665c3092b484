"""Bad input on every pipelines endpoint: a clear 4xx JSON error, and nothing changes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.test_pipelines import GRIDLABD, SCRIPT

MISSING = object()


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != field}


BAD_BODIES: list[tuple[str, Any]] = [
    ("empty object", {}),
    ("missing name", without(SCRIPT, "name")),
    ("empty name", {**SCRIPT, "name": ""}),
    ("blank name", {**SCRIPT, "name": "   "}),
    ("name too long", {**SCRIPT, "name": "n" * 51}),
    ("name not a string", {**SCRIPT, "name": 12}),
    ("name null", {**SCRIPT, "name": None}),
    ("name with NUL", {**SCRIPT, "name": "a\x00b"}),
    ("description too long", {**SCRIPT, "description": "d" * 301}),
    ("description wrong type", {**SCRIPT, "description": ["x"]}),
    ("missing docker_image_url", without(SCRIPT, "docker_image_url")),
    ("empty docker_image_url", {**SCRIPT, "docker_image_url": ""}),
    ("empty repository_ssh_url", {**SCRIPT, "repository_ssh_url": ""}),
    ("all empty but name", {**SCRIPT, "docker_image_url": "", "repository_ssh_url": ""}),
    ("url too long", {**SCRIPT, "repository_ssh_url": "u" * 2001}),
    ("url with newline", {**SCRIPT, "repository_ssh_url": "git@h:r\n--upload-pack=x"}),
    ("empty branch", {**SCRIPT, "repository_branch": ""}),
    ("branch as option", {**SCRIPT, "repository_branch": "--upload-pack=touch"}),
    ("branch too long", {**SCRIPT, "repository_branch": "b" * 101}),
    ("script escaping up", {**SCRIPT, "repository_script": "../x.sh"}),
    ("script escaping in middle", {**SCRIPT, "repository_script": "a/../../x.sh"}),
    ("script absolute", {**SCRIPT, "repository_script": "/etc/passwd"}),
    ("script backslash", {**SCRIPT, "repository_script": "..\\x.sh"}),
    ("unknown field", {**SCRIPT, "wrong": "wrong"}),
    ("unknown kind", {**SCRIPT, "kind": "docker"}),
    ("kind wrong type", {**SCRIPT, "kind": ["script"]}),
    ("gridlabd with script fields", {**GRIDLABD, "docker_image_url": "img"}),
    ("gridlabd model with slash", {**GRIDLABD, "model": "../ieee13.glm"}),
    ("gridlabd model with dotdot", {**GRIDLABD, "model": "..glm"}),
    ("gridlabd model with NUL", {**GRIDLABD, "model": "a\x00.glm"}),
    ("gridlabd model not glm", {**GRIDLABD, "model": "model.txt"}),
    ("gridlabd model too long", {**GRIDLABD, "model": "m" * 300 + ".glm"}),
    ("gridlabd arguments a string", {**GRIDLABD, "arguments": "-D x=1"}),
    ("gridlabd argument not a string", {**GRIDLABD, "arguments": [1]}),
    ("gridlabd too many arguments", {**GRIDLABD, "arguments": ["-v"] * 101}),
    ("gridlabd zero timeout", {**GRIDLABD, "timeout_seconds": 0}),
    ("gridlabd timeout wrong type", {**GRIDLABD, "timeout_seconds": "long"}),
    ("gridlabd timeout too long", {**GRIDLABD, "timeout_seconds": 10**9}),
    ("array body", [SCRIPT]),
    ("string body", "pipeline"),
    ("null body", None),
]


async def state(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/v1/pipelines")
    assert response.status_code == 200
    return list(response.json())


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"message", "errors"}
    assert isinstance(body["message"], str) and body["message"]
    return dict(body)


@pytest.fixture
async def existing(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/pipelines", json=SCRIPT)
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[case for case, _ in BAD_BODIES])
async def test_bad_create_and_update_bodies(
    client: httpx.AsyncClient, existing: dict[str, Any], case: str, body: Any
) -> None:
    before = await state(client)
    created = await client.post(
        "/v1/pipelines", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert_error(created, 400)
    updated = await client.put(
        f"/v1/pipelines/{existing['uuid']}",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert_error(updated, 400)
    assert await state(client) == before


async def test_errors_name_the_field(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.post("/v1/pipelines", json={**SCRIPT, "name": ""}), 400)
    assert "name" in body["errors"]
    body = assert_error(
        await client.post("/v1/pipelines", json=without(SCRIPT, "docker_image_url")), 400
    )
    assert "docker_image_url" in body["errors"]
    body = assert_error(await client.post("/v1/pipelines", json={**SCRIPT, "wrong": 1}), 400)
    assert "wrong" in body["errors"]
    body = assert_error(
        await client.post("/v1/pipelines", json={**SCRIPT, "repository_script": "../x"}), 400
    )
    assert "repository_script" in body["errors"]


@pytest.mark.parametrize(
    "raw", [b"{", b'{"name": ', b"\xff\xfe", b"", b'{"name": "a",}', b"nul\x00"]
)
async def test_malformed_json(
    client: httpx.AsyncClient, existing: dict[str, Any], raw: bytes
) -> None:
    before = await state(client)
    headers = {"Content-Type": "application/json"}
    assert_error(await client.post("/v1/pipelines", content=raw, headers=headers), 400)
    assert_error(
        await client.put(f"/v1/pipelines/{existing['uuid']}", content=raw, headers=headers), 400
    )
    assert_error(await client.post("/v1/pipelines/search", content=raw, headers=headers), 400)
    assert await state(client) == before


@pytest.mark.parametrize("content_type", ["application/badtype", "text/plain", None])
async def test_wrong_content_type(
    client: httpx.AsyncClient, existing: dict[str, Any], content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    raw = json.dumps(SCRIPT).encode()
    before = await state(client)
    for response in (
        await client.post("/v1/pipelines", content=raw, headers=headers),
        await client.put(f"/v1/pipelines/{existing['uuid']}", content=raw, headers=headers),
        await client.post(
            "/v1/pipelines/search",
            content=json.dumps({"uuids": []}).encode(),
            headers=headers,
        ),
    ):
        body = assert_error(response, 400)
        assert "Content-Type" in body["message"]
    assert await state(client) == before


BAD_SEARCHES: list[Any] = [
    {"uuids": ["badid"]},
    {"uuids": ["A" * 32]},
    {"uuids": ["a" * 31]},
    {"uuids": ["a" * 33]},
    {"uuids": ["g" * 32]},
    {"uuids": [1]},
    {"uuids": "a" * 32},
    {"uuids": None},
    {},
    {"uuids": [], "other": 1},
    {"uuids": ["a" * 32] * 1001},
    ["a" * 32],
]


@pytest.mark.parametrize("body", BAD_SEARCHES)
async def test_bad_searches(client: httpx.AsyncClient, body: Any) -> None:
    assert_error(await client.post("/v1/pipelines/search", json=body), 400)


async def test_search_error_names_the_index(client: httpx.AsyncClient) -> None:
    body = assert_error(
        await client.post("/v1/pipelines/search", json={"uuids": ["a" * 32, "badid"]}), 400
    )
    assert "1" in body["errors"]["uuids"]


@pytest.mark.parametrize(
    "uuid",
    [
        "1111ddddeeee2222",
        "noid",
        "A" * 32,
        "a" * 32,
        "z" * 32,
        "a" * 33,
        "%00" + "a" * 29,
        "a" * 5000,
        "..%2F..%2Fetc%2Fpasswd",
    ],
)
async def test_malformed_and_unknown_uuids_are_404(
    client: httpx.AsyncClient, existing: dict[str, Any], uuid: str
) -> None:
    before = await state(client)
    assert_error(await client.get(f"/v1/pipelines/{uuid}"), 404)
    assert_error(await client.put(f"/v1/pipelines/{uuid}", json=SCRIPT), 404)
    assert_error(await client.delete(f"/v1/pipelines/{uuid}"), 404)
    assert await state(client) == before


async def test_body_over_max_content_length(
    client: httpx.AsyncClient, existing: dict[str, Any]
) -> None:
    """The test app's MAX_CONTENT_LENGTH is 64 KiB."""
    before = await state(client)
    huge = {**SCRIPT, "description": "d" * (70 * 1024)}
    assert_error(await client.post("/v1/pipelines", json=huge), 413)
    assert_error(await client.put(f"/v1/pipelines/{existing['uuid']}", json=huge), 413)
    assert_error(await client.post("/v1/pipelines/search", json={"uuids": ["a" * 32] * 3000}), 413)

    async def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(20):
            yield b" " * 8192

    streamed = await client.post(
        "/v1/pipelines", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(streamed, 413)
    assert await state(client) == before
