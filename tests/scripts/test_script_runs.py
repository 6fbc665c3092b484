"""OpenFIDO script pipelines: a real git repository (file://), real scripts, the real
engine through the `gridlabd` command on the script's PATH."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import MODELS, Service, data_rows, engine_processes

HERE = Path(__file__).resolve().parent

SCRIPTS = {
    "openfido.sh": """\
set -e
echo "inputs: $(ls "$OPENFIDO_INPUT")"
cp "$OPENFIDO_INPUT/tiny.glm" .
gridlabd tiny.glm
mkdir -p "$OPENFIDO_OUTPUT/results"
cp tiny_out.csv "$OPENFIDO_OUTPUT/results/"
echo done > "$OPENFIDO_OUTPUT/summary.txt"
""",
    "fail.sh": 'echo "something went wrong" >&2\nexit 3\n',
    "hang.sh": "sleep 300 &\nsleep 300\nwait\n",
}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repository(tmp_path: Path) -> str:
    """A bare repository with the scripts on branch `main`, as a file:// URL."""
    bare, work = tmp_path / "pipeline.git", tmp_path / "checkout"
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(bare), cwd=tmp_path)
    git("init", "--quiet", "--initial-branch", "main", str(work), cwd=tmp_path)
    for name, text in SCRIPTS.items():
        (work / name).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "scripts", cwd=work)
    git("push", "--quiet", str(bare), "main", cwd=work)
    return f"file://{bare}"


async def script_pipeline(service: Service, repository: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "openfido",
        "docker_image_url": "debian:bookworm",
        "repository_ssh_url": repository,
        "repository_branch": "main",
    } | fields
    response = await service.client.post("/v1/pipelines", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_script_runs_gridlabd_and_its_outputs_are_artifacts(
    service: Service, repository: str
) -> None:
    pipeline = await script_pipeline(service, repository)
    assert pipeline["kind"] == "script"
    run = await service.start(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "COMPLETED", done
    names = sorted(artifact["name"] for artifact in done["artifacts"])
    assert names == ["results/tiny_out.csv", "summary.txt"]
    csv = next(a for a in done["artifacts"] if a["name"] == "results/tiny_out.csv")
    assert len(data_rows(await service.download(csv))) == 60
    console = await service.console(pipeline["uuid"], run["uuid"])
    assert "inputs: tiny.glm" in console["std_out"]
    assert "solver_KLU" in console["std_err"]


@pytest.mark.parametrize(
    ("fields", "reason", "in_console"),
    [
        ({"repository_branch": "nope"}, "branch nope not found", None),
        ({"repository_script": "missing.sh"}, "script missing: missing.sh", None),
        ({"repository_script": "fail.sh"}, "exited with code 3", "something went wrong"),
        ({"repository_ssh_url": "ext::sh -c touch% /tmp/pwned"}, "unsupported repository", None),
        ({"repository_ssh_url": "file:///nonexistent/repo.git"}, "clone failed", None),
    ],
)
async def test_script_failures_name_their_cause(
    service: Service, repository: str, fields: dict[str, str], reason: str, in_console: str | None
) -> None:
    pipeline = await script_pipeline(service, repository, **fields)
    run = await service.start(pipeline["uuid"], json={})
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED"
    assert reason in done["failure_reason"], done["failure_reason"]
    console = await service.console(pipeline["uuid"], run["uuid"])
    assert reason in console["std_err"]
    if in_console:
        assert in_console in console["std_err"]
    assert not Path("/tmp/pwned").exists()  # noqa: ASYNC240


async def test_cancel_kills_the_script_and_its_children(service: Service, repository: str) -> None:
    pipeline = await script_pipeline(service, repository, repository_script="hang.sh")
    run = await service.start(pipeline["uuid"], json={})
    await service.wait(pipeline["uuid"], run["uuid"], {"RUNNING"})
    deadline = time.monotonic() + 20
    while len(engine_processes(run["uuid"])) < 3:  # sh and its two sleeps
        assert time.monotonic() < deadline, engine_processes(run["uuid"])
        await asyncio.sleep(0.1)
    cancelled = await service.client.post(
        f"/v1/pipelines/{pipeline['uuid']}/runs/{run['uuid']}/cancel"
    )
    assert cancelled.json()["state"] == "CANCELLED"
    deadline = time.monotonic() + 5
    while engine_processes(run["uuid"]):
        assert time.monotonic() < deadline, "script processes still alive"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("mode_settings", [{"run_timeout_seconds": 3}], indirect=True)
async def test_timeout_kills_the_script_and_its_children(service: Service, repository: str) -> None:
    pipeline = await script_pipeline(service, repository, repository_script="hang.sh")
    run = await service.start(pipeline["uuid"], json={})
    done = await service.wait(pipeline["uuid"], run["uuid"], timeout=30)
    assert done["state"] == "FAILED" and "timeout" in done["failure_reason"]
    assert not engine_processes(run["uuid"])


@pytest.fixture
def fake_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`docker` on PATH is the stand-in: the one place a stand-in is right, since no
    container engine runs on these machines."""
    folder = tmp_path / "runtime-bin"
    folder.mkdir()
    (folder / "docker").symlink_to(HERE / "fake_container_runtime")
    log = tmp_path / "runtime.log"
    monkeypatch.setenv("PATH", f"{folder}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_RUNTIME_LOG", str(log))
    return log


@pytest.mark.parametrize("mode_settings", [{"container_runtime": "docker"}], indirect=True)
async def test_container_mode_argument_list_and_mounts(
    fake_runtime: Path, service: Service, repository: str
) -> None:
    """The host's engine runs inside the stand-in "container" through the mounts."""
    pipeline = await script_pipeline(
        service, repository, docker_image_url="registry.example/openfido:1"
    )
    run = await service.start(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
    done = await service.wait(pipeline["uuid"], run["uuid"])
    calls = [json.loads(line) for line in fake_runtime.read_text().splitlines()]  # noqa: ASYNC240
    run_call = next(call for call in calls if call[0] == "run")
    repository_mount = next(v for v in run_call if v.endswith(":/openfido/repository"))
    workdir = repository_mount.removesuffix("/repository:/openfido/repository")
    assert run_call == [
        "run",
        "--rm",
        "--name",
        f"workflow-run-{run['uuid']}",
        "--pull",
        "missing",
        "--volume",
        f"{workdir}/repository:/openfido/repository",
        "--volume",
        f"{workdir}/input:/openfido/input:ro",
        "--volume",
        f"{workdir}/output:/openfido/output",
        "--workdir",
        "/openfido/repository",
        "--env",
        "OPENFIDO_INPUT=/openfido/input",
        "--env",
        "OPENFIDO_OUTPUT=/openfido/output",
        "--",
        "registry.example/openfido:1",
        "sh",
        "openfido.sh",
    ]
    assert f"run-{run['uuid'][:12]}-" in workdir
    assert ["rm", "--force", f"workflow-run-{run['uuid']}"] in calls
    # The stand-in runs the script on the host: gridlabd is not on its PATH there, as in
    # an image without GridLAB-D, so this run fails after the container "started".
    assert done["state"] in {"COMPLETED", "FAILED"}


@pytest.mark.parametrize("mode_settings", [{"container_runtime": "docker"}], indirect=True)
async def test_container_image_missing_fails_with_the_runtime_message(
    fake_runtime: Path, service: Service, repository: str
) -> None:
    pipeline = await script_pipeline(service, repository, docker_image_url="missing/image:1")
    run = await service.start(pipeline["uuid"], json={})
    done = await service.wait(pipeline["uuid"], run["uuid"])
    assert done["state"] == "FAILED" and done["exit_code"] == 125
    assert "image" in done["failure_reason"]
    console = await service.console(pipeline["uuid"], run["uuid"])
    assert "pull access denied for missing/image" in console["std_err"]


def test_run_local_runs_a_script_pipeline_without_a_server(repository: str, tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "tiny.glm").write_bytes((MODELS / "tiny" / "tiny.glm").read_bytes())
    command = [
        str(Path(sys.executable).parent / "workflow-service"),
        "run-local",
        "--repository",
        repository,
        "--branch",
        "main",
        "--input-dir",
        str(inputs),
        "--output-dir",
        str(outputs),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "inputs: tiny.glm" in done.stdout
    assert len(data_rows((outputs / "results" / "tiny_out.csv").read_bytes())) == 60
    assert (outputs / "summary.txt").read_text() == "done\n"
    failed = subprocess.run(
        [
            *command[:-4],
            "--script",
            "fail.sh",
            "--input-dir",
            str(inputs),
            "--output-dir",
            str(tmp_path / "out2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert failed.returncode == 3
    assert "something went wrong" in failed.stderr and "exited with code 3" in failed.stderr
