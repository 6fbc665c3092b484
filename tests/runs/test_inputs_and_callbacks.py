"""URL inputs (size cap, address guard), multipart limits, and state-change callbacks."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from standardwebhooks.webhooks import Webhook

from tests.harness import MODELS, Recorder, Service, data_rows, free_port

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test webhook secret, 32 bytes!!").decode()


async def test_url_inputs_are_fetched(service: Service, recorder: Recorder) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="from urls")
    run = await service.start(
        pipeline["uuid"], json={"inputs": [{"name": "tiny.glm", "url": f"{recorder.url}/tiny.glm"}]}
    )
    assert run["inputs"] == [
        {"name": "tiny.glm", "url": f"{recorder.url}/tiny.glm", "size": None, "sha256": None}
    ]
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED", done
    assert len(data_rows(await service.download(done["artifacts"][0]))) == 60


async def test_missing_url_input_fails_the_run(service: Service, recorder: Recorder) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="from urls")
    run = await service.start(
        pipeline["uuid"], json={"inputs": [{"name": "tiny.glm", "url": f"{recorder.url}/gone.glm"}]}
    )
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED"
    assert "tiny.glm" in done["failure_reason"] and "404" in done["failure_reason"]


@pytest.mark.parametrize("mode_settings", [{"input_max_bytes": 100_000}], indirect=True)
async def test_url_input_over_the_size_cap_fails(service: Service, recorder: Recorder) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="big")
    run = await service.start(
        pipeline["uuid"], json={"inputs": [{"name": "big.bin", "url": f"{recorder.url}/big.bin"}]}
    )
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED"
    assert "big.bin" in done["failure_reason"]
    assert "100000" in done["failure_reason"]


@pytest.mark.parametrize("mode_settings", [{"input_url_allow_private": False}], indirect=True)
async def test_url_input_to_a_refused_address_fails(service: Service, recorder: Recorder) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="ssrf")
    run = await service.start(
        pipeline["uuid"], json={"inputs": [{"name": "tiny.glm", "url": f"{recorder.url}/tiny.glm"}]}
    )
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED"
    assert "refused" in done["failure_reason"] and "loopback" in done["failure_reason"]
    console = await service.console(pipeline["uuid"], run["uuid"])
    assert "refused" in console["std_err"]


@pytest.mark.parametrize("mode_settings", [{"webhook_secret": WEBHOOK_SECRET}], indirect=True)
async def test_callbacks_arrive_in_order_and_signed(service: Service, recorder: Recorder) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    run = await service.start(pipeline["uuid"], json={"callback_url": f"{recorder.url}/hook"})
    await service.wait(pipeline["uuid"], run["uuid"])
    deadline = asyncio.get_running_loop().time() + 10
    while len(recorder.posts) < 4:
        assert asyncio.get_running_loop().time() < deadline, recorder.posts
        await asyncio.sleep(0.05)
    webhook = Webhook(WEBHOOK_SECRET)
    states = []
    for headers, body in recorder.posts:
        lowered = {key.lower(): value for key, value in headers.items()}
        payload = webhook.verify(body, lowered)
        assert payload["pipeline_run_uuid"] == run["uuid"]
        states.append(payload["state"])
    assert states == ["QUEUED", "NOT_STARTED", "RUNNING", "COMPLETED"]
    tampered = dict(recorder.posts[-1][0])
    with pytest.raises(Exception):  # noqa: B017 - the library's own verification error
        webhook.verify(
            recorder.posts[-1][1].replace(b"COMPLETED", b"FAILED"),
            {k.lower(): v for k, v in tampered.items()},
        )


async def test_dead_callback_receiver_changes_nothing(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    dead = f"http://127.0.0.1:{free_port()}/hook"
    run = await service.start(pipeline["uuid"], json={"callback_url": dead})
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED"
    assert (await service.client.get("/healthcheck")).status_code == 200


@pytest.mark.parametrize(
    "name", ["../x.glm", "a/b.glm", "..", "x\x00.glm", "a\\b.glm", "", "n" * 256]
)
async def test_bad_input_names_are_400(service: Service, name: str) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="names")
    as_url = await service.client.post(
        f"/v1/pipelines/{pipeline['uuid']}/runs",
        json={"inputs": [{"name": name, "url": "https://example.com/x"}]},
    )
    assert as_url.status_code == 400, as_url.text
    # Built by hand: httpx would percent-encode a NUL or a quote in the file name.
    boundary = "testboundary"
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\nx\r\n--{boundary}--\r\n"
    ).encode("utf-8", "surrogateescape")
    as_file = await service.client.post(
        f"/v1/pipelines/{pipeline['uuid']}/runs",
        content=raw,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert as_file.status_code == 400, as_file.text
    listed = await service.client.get(f"/v1/pipelines/{pipeline['uuid']}/runs")
    assert listed.json() == []


async def test_multipart_body_over_the_limit_is_413(service: Service) -> None:
    """Refused from the headers alone: the server answers before reading any of the body."""
    pipeline = await service.pipeline(kind="gridlabd", name="big")
    host, port = service.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = (
        f"POST /v1/pipelines/{pipeline['uuid']}/runs HTTP/1.1\r\n"
        f"Host: {host}\r\nWorkflow-API-Key: {service.keys.client}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {service.settings.max_content_length + 1}\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413"), status
    assert (await service.client.get(f"/v1/pipelines/{pipeline['uuid']}/runs")).json() == []


async def test_multipart_with_url_inputs_and_defines(service: Service, recorder: Recorder) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="mixed")
    response = await service.client.post(
        f"/v1/pipelines/{pipeline['uuid']}/runs",
        files=[("files", ("tiny.glm", (MODELS / "tiny" / "tiny.glm").read_bytes()))],
        data={
            "inputs": json.dumps([{"name": "extra.bin", "url": f"{recorder.url}/big.bin"}]),
            "defines": json.dumps({"LOAD_W": "200000"}),
        },
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert sorted(item["name"] for item in run["inputs"]) == ["extra.bin", "tiny.glm"]
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED"
    first = data_rows(await service.download(done["artifacts"][0]))[0]
    assert first.startswith("2020-01-01 00:00:00 PST,+2383.83-0.406159d,")


@pytest.mark.parametrize("mode_settings", [{"callback_url_allow_private": False}], indirect=True)
async def test_callbacks_to_private_addresses_are_refused(
    service: Service, recorder: Recorder
) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    run = await service.start(pipeline["uuid"], json={"callback_url": f"{recorder.url}/hook"})
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED"
    await asyncio.sleep(1)
    assert recorder.posts == []  # the guard refused 127.0.0.1 before connecting
