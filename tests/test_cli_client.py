"""The client commands (`pipelines`, `runs`, `workflows`, `submit --json`) as real processes.

One embedded `workflow-service serve` (SQLite, the real engine) for the module; every
command runs as its own process and finds the server through the credentials file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import free_port
from tests.test_cli import COMMAND, EXAMPLES, MODELS, Server, environment, run


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("cli-client")
    started = Server(folder, free_port())
    try:
        yield started, folder
    finally:
        started.stop()


@pytest.fixture
def server(served: tuple[Server, Path]) -> Server:
    return served[0]


@pytest.fixture
def cwd(served: tuple[Server, Path]) -> Path:
    """The server's folder: it holds the credentials file that the commands read."""
    return served[1]


def api(server: Server, cwd: Path) -> httpx.Client:
    saved = json.loads((cwd / ".workflow-service" / "credentials.json").read_text())
    return httpx.Client(base_url=server.url, headers={"Workflow-API-Key": saved["api_key"]})


def ok(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = run(args, cwd)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def as_json(args: list[str], cwd: Path) -> Any:
    return json.loads(ok([*args, "--json"], cwd).stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pipelines_create_list_show_delete(cwd: Path) -> None:
    model = EXAMPLES / "ieee13"
    created = as_json(
        [
            "pipelines",
            "create",
            "feeder 13",
            str(model / "ieee13.glm"),
            str(model / "ieee13_l652.player"),
            "-d",
            "IEEE 13",
            "-a",
            "-D",
            "-a",
            "INTERVAL=300",
            "--timeout",
            "600",
        ],
        cwd,
    )
    assert created["kind"] == "gridlabd" and created["arguments"] == ["-D", "INTERVAL=300"]
    assert sorted(f["name"] for f in created["files"]) == ["ieee13.glm", "ieee13_l652.player"]

    listed = as_json(["pipelines", "list"], cwd)
    assert created["uuid"] in [p["uuid"] for p in listed]
    table = ok(["pipelines", "list"], cwd).stdout
    assert created["uuid"] in table and "feeder 13" in table and "\x1b[" not in table

    shown = as_json(["pipelines", "show", "feeder 13"], cwd)
    assert shown["uuid"] == created["uuid"] and len(shown["files"]) == 2

    deleted = ok(["pipelines", "delete", "feeder 13"], cwd)
    assert created["uuid"] in deleted.stdout
    assert created["uuid"] not in [p["uuid"] for p in as_json(["pipelines", "list"], cwd)]

    # The API's refusal: its message and field errors on stderr, exit 2, nothing on stdout.
    blank = run(["pipelines", "create", " "], cwd)
    assert blank.returncode == 2 and blank.stdout == ""
    assert "400" in blank.stderr and "name: must not be blank" in blank.stderr
    gone = run(["pipelines", "show", created["uuid"]], cwd)
    assert gone.returncode == 2 and "404" in gone.stderr
    unknown = run(["runs", "list", "no such pipeline"], cwd)
    assert unknown.returncode == 2 and "no pipeline named" in unknown.stderr


def test_submit_json_then_list_show_logs_download(cwd: Path, server: Server) -> None:
    result = ok(["submit", str(MODELS / "ieee13"), "--wait", "--json"], cwd)
    submitted = json.loads(result.stdout)  # JSON only on stdout
    pipeline, done = submitted["pipeline"], submitted["run"]
    assert done["state"] == "COMPLETED" and done["exit_code"] == 0
    artifacts = {a["name"]: a for a in done["artifacts"]}
    assert sorted(artifacts) == ["ieee13_substation.csv", "ieee13_v634.csv", "ieee13_v675.csv"]

    runs = as_json(["runs", "list", pipeline["uuid"]], cwd)
    assert [r["uuid"] for r in runs][-1] == done["uuid"]
    shown = ok(["runs", "show", "ieee13", "last"], cwd).stdout
    assert done["uuid"] in shown and "COMPLETED" in shown
    assert artifacts["ieee13_v675.csv"]["sha256"] in shown

    logs = ok(["runs", "logs", "ieee13", done["uuid"]], cwd).stdout
    assert "solver_KLU could not be found" in logs

    folder = cwd / "downloaded"
    saved = as_json(["runs", "download", "ieee13", done["uuid"], "-o", str(folder)], cwd)
    assert sorted(Path(p).name for p in saved) == sorted(artifacts)
    with api(server, cwd) as client:
        for name, artifact in artifacts.items():
            assert sha256(folder / name) == artifact["sha256"]
            assert (
                client.get(f"/v1/artifacts/{artifact['uuid']}").content
                == (folder / name).read_bytes()
            )
    one = ok(
        ["runs", "download", "ieee13", "last", "-o", str(cwd / "one"), "-n", "ieee13_v634.csv"],
        cwd,
    )
    assert [p.name for p in (cwd / "one").iterdir()] == ["ieee13_v634.csv"]
    assert one.stdout.strip().endswith("ieee13_v634.csv")
    missing = run(["runs", "download", "ieee13", "last", "-n", "nope.csv"], cwd)
    assert missing.returncode == 2 and "no artifact 'nope.csv'" in missing.stderr


def test_failing_model_and_bad_arguments_exit_codes(cwd: Path) -> None:
    failed = run(["submit", str(MODELS / "bad_syntax"), "--wait", "--json"], cwd)
    assert failed.returncode == 1, failed.stderr
    body = json.loads(failed.stdout)
    assert body["run"]["state"] == "FAILED" and body["run"]["exit_code"] == 2
    logs = run(["runs", "logs", "bad_syntax", "last", "--follow"], cwd)
    assert logs.returncode == 1 and "expected ';'" in logs.stdout
    assert "FAILED" in logs.stderr
    bad_run = run(["runs", "show", "bad_syntax", "not-a-run"], cwd)
    assert bad_run.returncode == 2 and "404" in bad_run.stderr
    completed_cancel = run(["runs", "cancel", "bad_syntax", "last"], cwd)
    assert completed_cancel.returncode == 2 and "400" in completed_cancel.stderr
    bad_option = run(["runs", "list", "bad_syntax", "--bogus"], cwd)
    assert bad_option.returncode == 2 and "--bogus" in bad_option.stderr
    no_file = run(["submit", str(cwd / "missing.glm")], cwd)
    assert no_file.returncode == 2 and "neither a .glm file nor a folder" in no_file.stderr


def test_logs_follow_a_running_run_then_cancel_it(cwd: Path) -> None:
    run_uuid = ok(["submit", str(MODELS / "long")], cwd).stdout.strip()
    follower = subprocess.Popen(
        [COMMAND, "runs", "logs", "long", run_uuid, "--follow"],
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = ""
        while "WARNING" not in first:  # the engine's first messages, while it runs
            line = follower.stdout.readline()
            assert line, "the console stream ended early"
            first += line
        assert as_json(["runs", "show", "long", run_uuid], cwd)["state"] == "RUNNING"
        cancelled = ok(["runs", "cancel", "long", run_uuid], cwd)
        assert cancelled.stdout.strip() == f"run {run_uuid} CANCELLED"
        _, errors = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 1 and "CANCELLED" in errors
    assert as_json(["runs", "show", "long", run_uuid], cwd)["state"] == "CANCELLED"
    again = ok(["runs", "cancel", "long", run_uuid, "--json"], cwd)
    assert json.loads(again.stdout)["state"] == "CANCELLED"


def test_workflows_run_two_stages(cwd: Path, server: Server) -> None:
    chain = EXAMPLES / "chain"
    feeder = as_json(["pipelines", "create", "feeder", str(chain / "1-feeder" / "feeder.glm")], cwd)
    analysis = as_json(
        ["pipelines", "create", "analysis", str(chain / "2-analysis" / "analysis.glm")], cwd
    )
    with api(server, cwd) as client:
        workflow = client.post("/v1/workflows", json={"name": "two stages"}).json()
        first = client.post(
            f"/v1/workflows/{workflow['uuid']}/pipelines", json={"pipeline_uuid": feeder["uuid"]}
        ).json()
        client.post(
            f"/v1/workflows/{workflow['uuid']}/pipelines",
            json={"pipeline_uuid": analysis["uuid"], "source_workflow_pipelines": [first["uuid"]]},
        ).raise_for_status()
    assert workflow["uuid"] in [w["uuid"] for w in as_json(["workflows", "list"], cwd)]

    result = ok(["workflows", "run", "two stages", "--wait", "--json"], cwd)
    ended = json.loads(result.stdout)
    assert ended["state"] == "COMPLETED"
    stages = [stage["pipeline_run"] for stage in ended["workflow_pipeline_runs"]]
    assert [s["state"] for s in stages] == ["COMPLETED", "COMPLETED"]
    assert [i["name"] for i in stages[1]["inputs"]] == ["feeder_load.csv"]
    assert [a["name"] for a in stages[1]["artifacts"]] == ["analysis_voltage.csv"]

    plain = ok(["workflows", "run", workflow["uuid"], "--wait"], cwd)
    assert "analysis: COMPLETED" in plain.stderr and "workflow: COMPLETED" in plain.stderr
    assert "analysis_voltage.csv" in plain.stdout
    started = ok(["workflows", "run", "two stages"], cwd).stdout.strip()
    assert len(started) == 32
    missing = run(["workflows", "run", "no such workflow"], cwd)
    assert missing.returncode == 2 and "no workflow named" in missing.stderr


def test_submit_on_a_terminal_draws_a_progress_bar(cwd: Path) -> None:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [COMMAND, "submit", str(MODELS / "tiny"), "--wait"],
            cwd=cwd,
            env=environment(TERM="xterm-256color", COLUMNS="100"),
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        output = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=30) == 0
    finally:
        os.close(leader)
    text = output.decode(errors="replace")
    assert "━" in text and "COMPLETED" in text and "100%" in text
    assert "state: RUNNING" not in text  # the bar, not the plain lines


def test_client_commands_without_a_server_say_how_to_start_one(tmp_path: Path) -> None:
    missing = run(["runs", "list", "x"], tmp_path)
    assert missing.returncode == 2 and "workflow-service serve" in missing.stderr
    down = run(
        ["pipelines", "list", "--server", f"http://127.0.0.1:{free_port()}", "--key", "k"],
        tmp_path,
    )
    assert down.returncode == 2 and len(down.stderr.strip().splitlines()) == 1
    assert "cannot reach the server" in down.stderr and "workflow-service serve" in down.stderr
