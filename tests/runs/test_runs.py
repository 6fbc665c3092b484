"""Runs end to end with the real engine, in the embedded and the distributed service."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import MODELS, Service, data_rows, engine_processes, sha256


def engine_output(model_dir: Path, model: str, output: str, tmp_path: Path) -> bytes:
    """The file the engine writes when run directly, outside the service."""
    folder = tmp_path / "direct"
    shutil.copytree(model_dir, folder)
    subprocess.run(
        [sys.executable, "-m", "workflow_service.engine", model],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return (folder / output).read_bytes()


async def test_pipeline_files_run_with_no_inputs(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="ieee13", model="ieee13.glm")
    files = await service.add_files(
        pipeline["uuid"],
        [MODELS / "ieee13" / "ieee13.glm", MODELS / "ieee13" / "ieee13_l652.player"],
    )
    assert sorted(item["name"] for item in files) == ["ieee13.glm", "ieee13_l652.player"]
    run = await service.start(pipeline["uuid"])
    assert run["inputs"] == []
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED", done
    assert done["exit_code"] == 0 and done["progress"] == 100
    names = sorted(item["name"] for item in done["artifacts"])
    assert names == ["ieee13_substation.csv", "ieee13_v634.csv", "ieee13_v675.csv"]
    for artifact in done["artifacts"]:
        content = await service.download(artifact)
        assert sha256(content) == artifact["sha256"] and len(content) == artifact["size"]
        assert len(data_rows(content)) == 1440
        assert artifact["content_type"] == "text/csv"
    v675 = next(a for a in done["artifacts"] if a["name"] == "ieee13_v675.csv")
    first = data_rows(await service.download(v675))[0]
    assert first == "2020-07-01 00:00:00 PDT,+2449.33-3.71656d,+2550.74-121.73d,+2439.17+116.687d"
    states = [entry["state"] for entry in done["states"]]
    assert states == ["QUEUED", "NOT_STARTED", "RUNNING", "COMPLETED"]
    assert done["attempt"] == 1 and done["started_at"] and done["completed_at"]


async def test_uploaded_model_runs_and_matches_the_engine(service: Service, tmp_path: Path) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="adhoc")
    run = await service.start(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    assert [item["name"] for item in run["inputs"]] == ["tiny.glm"]
    assert run["inputs"][0]["sha256"] == sha256((MODELS / "tiny" / "tiny.glm").read_bytes())
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED", done
    [artifact] = done["artifacts"]
    assert artifact["name"] == "tiny_out.csv"
    content = await service.download(artifact)
    assert len(data_rows(content)) == 60
    direct = engine_output(MODELS / "tiny", "tiny.glm", "tiny_out.csv", tmp_path)
    assert data_rows(content) == data_rows(direct)


async def test_defines_reach_the_engine(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    run = await service.start(pipeline["uuid"], json={"defines": {"LOAD_W": "200000"}})
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED", done
    first = data_rows(await service.download(done["artifacts"][0]))[0]
    assert first.startswith("2020-01-01 00:00:00 PST,+2383.83-0.406159d,")


async def test_input_wins_over_pipeline_file(service: Service, tmp_path: Path) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    changed = tmp_path / "tiny.glm"
    text = (MODELS / "tiny" / "tiny.glm").read_text()
    changed.write_text(text.replace("tiny_out.csv", "override_out.csv"))
    assert changed.read_text() != text
    run = await service.start(pipeline["uuid"], [changed])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert [a["name"] for a in done["artifacts"]] == ["override_out.csv"]


async def test_bad_syntax_fails_with_the_engine_error(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="bad")
    run = await service.start(pipeline["uuid"], [MODELS / "bad_syntax" / "bad_syntax.glm"])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED"
    assert done["exit_code"] == 2
    assert "load" in done["failure_reason"]
    console = await service.console(pipeline["uuid"], run["uuid"])
    assert "expected ';' at end of property specification" in console["std_err"]
    assert done["artifacts"] == []


async def test_missing_model_fails_with_a_reason(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="nothing")
    run = await service.start(pipeline["uuid"])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED" and ".glm" in done["failure_reason"]


async def test_cancel_running_long_model(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="long")
    await service.add_files(
        pipeline["uuid"], [MODELS / "long" / "long.glm", MODELS / "long" / "weather.csv"]
    )
    run = await service.start(pipeline["uuid"])
    await service.wait(pipeline["uuid"], run["uuid"], {"RUNNING"})
    deadline = asyncio.get_running_loop().time() + 30
    while not (await service.console(pipeline["uuid"], run["uuid"]))["std_err"]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.2)
    running = await service.run(pipeline["uuid"], run["uuid"])
    assert running["state"] == "RUNNING"  # the console was visible before the run ended
    assert engine_processes(run["uuid"])

    started = asyncio.get_running_loop().time()
    response = await service.client.post(
        f"/v1/pipelines/{pipeline['uuid']}/runs/{run['uuid']}/cancel"
    )
    assert response.status_code == 200 and response.json()["state"] == "CANCELLED"
    while engine_processes(run["uuid"]):
        assert asyncio.get_running_loop().time() - started < 5, "engine still alive after 5 s"
        await asyncio.sleep(0.1)
    done = await service.run(pipeline["uuid"], run["uuid"])
    assert done["state"] == "CANCELLED"
    assert [s["state"] for s in done["states"]][-1] == "CANCELLED"
    again = await service.client.post(f"/v1/pipelines/{pipeline['uuid']}/runs/{run['uuid']}/cancel")
    assert again.status_code == 200


async def test_cancelled_before_start_never_starts(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="long")
    await service.add_files(
        pipeline["uuid"], [MODELS / "long" / "long.glm", MODELS / "long" / "weather.csv"]
    )
    blockers = [
        await service.start(pipeline["uuid"]) for _ in range(service.settings.worker_concurrency)
    ]
    for blocker in blockers:
        await service.wait(pipeline["uuid"], blocker["uuid"], {"RUNNING"})
    waiting = await service.start(pipeline["uuid"])
    assert waiting["state"] == "NOT_STARTED"
    cancelled = await service.client.post(
        f"/v1/pipelines/{pipeline['uuid']}/runs/{waiting['uuid']}/cancel"
    )
    assert cancelled.json()["state"] == "CANCELLED"
    for blocker in blockers:
        await service.client.post(f"/v1/pipelines/{pipeline['uuid']}/runs/{blocker['uuid']}/cancel")
    for blocker in blockers:
        await service.wait(pipeline["uuid"], blocker["uuid"])
    await asyncio.sleep(1.5)  # a freed worker slot would pick the waiting run up now
    final = await service.run(pipeline["uuid"], waiting["uuid"])
    assert final["state"] == "CANCELLED" and final["attempt"] == 0
    assert "RUNNING" not in [s["state"] for s in final["states"]]


async def test_timeout_fails_and_kills(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="long", timeout_seconds=2)
    await service.add_files(
        pipeline["uuid"], [MODELS / "long" / "long.glm", MODELS / "long" / "weather.csv"]
    )
    run = await service.start(pipeline["uuid"])
    done = await service.wait(pipeline["uuid"], run["uuid"], timeout=30)
    assert done["state"] == "FAILED"
    assert "timeout" in done["failure_reason"]
    assert not engine_processes(run["uuid"])


async def test_live_console_stream(service: Service) -> None:
    pipeline = await service.pipeline(kind="gridlabd", name="tiny")
    await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    run = await service.start(pipeline["uuid"])
    events: list[tuple[str, str]] = []
    url = f"/v1/pipelines/{pipeline['uuid']}/runs/{run['uuid']}/console/stream"
    async with service.client.stream("GET", url, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = "message"
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, line.split(":", 1)[1].strip()))
                if event == "end":
                    break
    kinds = [kind for kind, _ in events]
    assert ("end", "COMPLETED") in events
    assert ("state", "COMPLETED") in events
    assert any(kind == "std_err" and "solver_KLU" in data for kind, data in events)
    assert kinds.index("state") < kinds.index("end")
