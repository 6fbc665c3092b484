"""A Python client generated from /openapi.json with openapi-python-client drives a run:
create a pipeline, upload a model (multipart), wait for completion, download the artifact.

openapi-python-client cannot live in the project's venv (it requires typer<0.28, the CLI
pins typer>=0.29), so the pyproject's `codegen` dependency group is installed into a venv
of its own, .venv/codegen, once; the generated code itself needs only httpx, attrs and
python-dateutil, which the service's environment has.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.harness import MODELS, Service, data_rows, sha256

ROOT = Path(__file__).resolve().parent.parent
CODEGEN = Path(sys.prefix) / "codegen"
TIMEOUT_SECONDS = 60.0


def _codegen_requirements() -> list[str]:
    document = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(document["dependency-groups"]["codegen"])


@pytest.fixture(scope="session")
def generator() -> Path:
    """The bin folder of a venv holding openapi-python-client (and the ruff its post-hooks
    call), installed from the `codegen` dependency group when missing or out of date."""
    marker = CODEGEN / "installed.json"
    wanted = json.dumps(_codegen_requirements())
    with (CODEGEN.parent / "codegen.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs install it once
        if not marker.exists() or marker.read_text() != wanted:
            subprocess.run(
                [sys.executable, "-m", "venv", "--clear", "--without-pip", str(CODEGEN)],
                check=True,
            )
            pip = [sys.executable, "-m", "pip", "--python", str(CODEGEN / "bin" / "python")]
            installed = subprocess.run(
                [*pip, "install", "--quiet", "--group", f"{ROOT / 'pyproject.toml'}:codegen"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert installed.returncode == 0, installed.stdout + installed.stderr
            marker.write_text(wanted)
    return CODEGEN / "bin"


@pytest.fixture
def imported() -> Iterator[list[str]]:
    """Names of generated packages registered in sys.modules, removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        for module in [key for key in sys.modules if key == name or key.startswith(f"{name}.")]:
            del sys.modules[module]


def import_package(folder: Path, names: list[str]) -> str:
    """Import the generated package in ``folder`` under a unique name; that name."""
    name = f"generated_client_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    names.append(name)
    spec.loader.exec_module(package)
    return name


async def generate(service: Service, generator: Path, tmp_path: Path) -> tuple[Path, set[str]]:
    """Generate the client from the served document; its folder and the operation ids."""
    response = await service.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    (tmp_path / "spec.json").write_text(json.dumps(document))
    output = tmp_path / "client"
    process = await asyncio.create_subprocess_exec(
        str(generator / "openapi-python-client"),
        "generate",
        "--path",
        str(tmp_path / "spec.json"),
        "--output-path",
        str(output),
        "--meta",
        "none",
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{generator}{os.pathsep}{os.environ.get('PATH', '')}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed = (await asyncio.wait_for(process.communicate(), TIMEOUT_SECONDS))[0].decode()
    assert process.returncode == 0, printed
    # Skipped endpoints, responses or bodies are reported as warnings: there must be none.
    assert "Warning" not in printed and "WARNING" not in printed, printed
    operations = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    return output, operations


async def test_generated_client_runs_a_model(
    generator: Path, service: Service, tmp_path: Path, imported: list[str]
) -> None:
    folder, operations = await generate(service, generator, tmp_path)
    generated = {module.stem for module in (folder / "api").glob("*/*.py")} - {"__init__"}
    assert generated == operations  # every operation of the document has its function

    package = import_package(folder, imported)

    def module(name: str) -> ModuleType:
        return importlib.import_module(f"{package}.{name}")

    models: Any = module("models")
    types: Any = module("types")
    create_pipeline: Any = module("api.pipelines.create_pipeline")
    create_run: Any = module("api.runs.create_run")
    get_run: Any = module("api.runs.get_run")
    download_artifact: Any = module("api.runs.download_artifact")

    # Bearer auth; follow the 307 to a presigned URL (S3): httpx drops Authorization there.
    client = module("client").AuthenticatedClient(
        base_url=service.url,
        token=service.keys.client,
        prefix="Bearer",
        raise_on_unexpected_status=True,
        follow_redirects=True,
        timeout=30.0,
    )
    async with client:
        pipeline = await create_pipeline.asyncio(
            client=client,
            body=models.GridlabdPipeline(kind="gridlabd", name="generated"),
        )
        assert isinstance(pipeline, models.PipelineOut), pipeline
        assert pipeline.kind == models.PipelineKind.GRIDLABD

        model = (MODELS / "tiny" / "tiny.glm").read_bytes()
        upload = types.File(payload=BytesIO(model), file_name="tiny.glm", mime_type="text/plain")
        run = await create_run.asyncio(
            pipeline.uuid,
            client=client,
            body=models.CreateRunFilesBody(files=[upload], defines=json.dumps({})),
        )
        assert isinstance(run, models.RunOut), run
        assert [(item.name, item.sha256) for item in run.inputs] == [("tiny.glm", sha256(model))]

        deadline = time.monotonic() + TIMEOUT_SECONDS
        while run.state.value not in {"COMPLETED", "FAILED", "CANCELLED"}:
            assert time.monotonic() < deadline, f"run still {run.state.value}"
            await asyncio.sleep(0.1)
            run = await get_run.asyncio(pipeline.uuid, run.uuid, client=client)
            assert isinstance(run, models.RunOut), run
        assert run.state == models.RunState.COMPLETED, run.to_dict()

        [artifact] = run.artifacts
        assert artifact.name == "tiny_out.csv"
        file = await download_artifact.asyncio(artifact.uuid, client=client)
        assert isinstance(file, types.File), file
        content = file.payload.read()
        assert sha256(content) == artifact.sha256 and len(content) == artifact.size
        assert len(data_rows(content)) == 60
