"""The dashboard in a real browser (Debian's headless Chromium, Playwright): log in,
upload the tiny model, watch the run reach COMPLETED without reloading, plot its
recorder CSV. Screenshots go to $TEST_ARTIFACTS_DIR (default test-artifacts/)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.browser.conftest import PageProblems
from tests.harness import MODELS, Service, data_rows

if TYPE_CHECKING:
    from playwright.async_api import Page

RUN_SECONDS = 90


async def log_in(page: Page, service: Service) -> None:
    await page.goto(f"{service.url}/ui")
    await page.locator("#login-key").fill(service.keys.client)
    await page.locator("#login-form button[type=submit]").click()
    await page.locator("#app").wait_for(state="visible")


async def test_upload_watch_and_plot(service: Service, page: Page, artifacts_dir: Path) -> None:
    from playwright.async_api import expect

    problems = PageProblems(page)
    await page.goto(f"{service.url}/")
    assert page.url == f"{service.url}/ui"
    # A wrong key is refused with a message; a worker key lacks the permission.
    await page.locator("#login-key").fill("wfs_not-a-key")
    await page.locator("#login-form button[type=submit]").click()
    await expect(page.locator("#login-error")).to_contain_text("Unknown API key")
    await page.locator("#login-key").fill(service.keys.worker)
    await page.locator("#login-form button[type=submit]").click()
    await expect(page.locator("#login-error")).to_contain_text("PIPELINES_CLIENT")
    await page.screenshot(path=artifacts_dir / "1-login-refused.png")

    await page.locator("#login-key").fill(service.keys.client)
    await page.locator("#login-form button[type=submit]").click()
    await expect(page.locator("#app")).to_be_visible()
    assert all("40" in message for message in problems.messages), problems.messages
    problems.messages.clear()  # the refused keys' 401 and 403
    await expect(page.locator("#pipelines")).to_contain_text("No pipelines yet")

    # A new gridlabd pipeline, created by the form, with the tiny model uploaded.
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    await expect(page.locator("#run-pipeline")).to_have_value("")
    await page.locator("#new-pipeline-name").fill("tiny <b>from the browser</b>")
    await page.locator("#run-files").set_input_files(MODELS / "tiny" / "tiny.glm")
    await page.locator("#run-defines").fill("LOAD_W=100000")
    await page.locator("#start-run-submit").click()

    run = page.locator("#started-runs .run")
    await expect(run).to_have_count(1)
    seen_states: set[str] = set()
    for _ in range(RUN_SECONDS * 10):
        state = await run.get_attribute("data-state")
        seen_states.add(str(state))
        if state in {"COMPLETED", "FAILED", "CANCELLED"}:
            break
        await page.wait_for_timeout(100)
    await page.screenshot(path=artifacts_dir / "2-run-ended.png", full_page=True)
    assert await run.get_attribute("data-state") == "COMPLETED", seen_states
    assert navigations == [], f"the page navigated while the run went on: {navigations}"
    await expect(run.locator(".artifacts")).to_contain_text("tiny_out.csv")
    # The pipeline list caught up (and shows the name as text, not markup).
    await expect(page.locator("#pipelines")).to_contain_text("tiny <b>from the browser</b>")
    await expect(page.locator("#run-pipeline option:checked")).to_contain_text("tiny <b>")

    pipeline_uuid = await run.get_attribute("data-pipeline")
    run_uuid = await run.get_attribute("data-run")
    finished = await service.run(str(pipeline_uuid), str(run_uuid))
    artifact = next(a for a in finished["artifacts"] if a["name"] == "tiny_out.csv")
    csv = await service.download(artifact)
    expected_points = len(data_rows(csv))
    assert expected_points == 60

    # Download through the page: fetch with the key, then a blob saved as the file.
    async with page.expect_download() as download_info:
        await run.locator("tr[data-name='tiny_out.csv'] button.download").click()
    download = await download_info.value
    assert download.suggested_filename == "tiny_out.csv"
    saved = artifacts_dir / "tiny_out.csv"
    await download.save_as(saved)
    assert saved.read_bytes() == csv

    # The plot of the recorder file, on the run's own page.
    await run.locator("tr[data-name='tiny_out.csv'] a.plot-link").click()
    await page.wait_for_url(f"**/ui/pipelines/{pipeline_uuid}/runs/{run_uuid}?plot=*")
    plot = page.locator("#plot")
    await expect(plot).to_have_attribute("data-state", "ready")
    await expect(plot).to_have_attribute("data-points", str(expected_points))
    await expect(plot).to_have_attribute("data-series", "3")
    await expect(plot.locator("canvas")).to_have_count(1)
    columns = page.locator("#plot-columns label")
    await expect(columns).to_have_text(["voltage_A", "voltage_B", "voltage_C"])
    await columns.nth(1).locator("input").uncheck()
    await expect(plot).to_have_attribute("data-series", "2")
    await page.locator("#plot-mode").select_option("angle")
    await expect(plot).to_have_attribute("data-mode", "angle")
    await page.locator("#plot-mode").select_option("magnitude")

    # The console arrived over the event stream, to its end.
    console = page.locator("#console")
    await expect(console).to_have_attribute("data-ended", "true")
    await expect(page.locator("#console-status")).to_contain_text("COMPLETED")
    await expect(page.locator(".run")).to_have_attribute("data-state", "COMPLETED")
    await page.screenshot(path=artifacts_dir / "3-run-page-plot.png", full_page=True)

    # The pipeline's page lists the run with its state.
    await page.goto(f"{service.url}/ui/pipelines/{pipeline_uuid}")
    await expect(page.locator(f"#runs tr[data-run='{run_uuid}']")).to_have_attribute(
        "data-state", "COMPLETED"
    )
    await page.screenshot(path=artifacts_dir / "4-pipeline-page.png", full_page=True)
    assert problems.messages == []


SAMPLE_CSV = """\
# file...... sample.csv
# date...... Sat Nov 28 00:47:18 2026
# timestamp,voltage_A,power,status
2000-01-01 00:00:00 UTC,+3+4j,-1.5e+03,OPEN
2000-01-01 00:01:00 UTC,+10+90d,42.5,CLOSED
2000-01-01 00:02:00 UTC,+2-1.5707963267948966r,7,OPEN
"""


async def test_parsers_in_the_browser(service: Service, page: Page) -> None:
    """The JavaScript parsers (recorder CSV, complex numbers, timestamps, event stream)."""
    problems = PageProblems(page)
    await page.goto(f"{service.url}/ui")
    got: dict[str, Any] = await page.evaluate(
        """(csv) => {
          const P = window.WorkflowPlot;
          const value = (text) => {
            const v = P.parseValue(text);
            return v && [v.re, v.im, v.magnitude, v.angle, v.complex];
          };
          const parsed = P.parseRecorderCsv(csv);
          const events = [];
          const feed = window.WorkflowDashboard.sseParser((e) => events.push(e));
          for (const chunk of [
            "event: std_out\\r", "\\nid: 3:0\\r\\ndata: a\\r\\ndata: b",
            "\\r\\n\\r\\n: ping\\r\\n\\r\\nevent: end\\ndata: COMPLETED\\n\\n",
          ]) {
            feed(chunk);
          }
          return {
            rectangular: value("+3+4j"),
            rectangularI: value("3-4i"),
            degrees: value("+2390.33-0.164162d"),
            radians: value("+2-1.5707963267948966r"),
            plain: value("42.5"),
            exponent: value("-1.5e+03"),
            exponentComplex: value("+1e+03-1e+03j"),
            text: value("OPEN"),
            utc: P.parseTimestamp("2000-01-01 00:00:00 UTC"),
            pst: P.parseTimestamp("2020-01-01 00:00:00 PST"),
            pdt: P.parseTimestamp("2020-07-01 06:00:00 PDT"),
            offset: P.parseTimestamp("2020-07-01 06:00:00+02:00"),
            epoch: P.parseTimestamp("946684800"),
            garbage: P.parseTimestamp("yesterday"),
            unknownZone: P.parseTimestamp("2020-01-01 00:00:00 XYZ"),
            csv: {
              timeColumn: parsed.timeColumn, names: parsed.names, rows: parsed.rows,
              isTime: parsed.isTime, times: Array.from(parsed.times),
              magnitude: Array.from(parsed.series[0].magnitude),
              power: Array.from(parsed.series[1].magnitude),
              status: Array.from(parsed.series[2].magnitude).map(Number.isNaN),
            },
            events: events,
            defines: window.WorkflowDashboard.parseDefines("A=1\\n\\n B = x=y \\n"),
          };
        }""",
        SAMPLE_CSV,
    )
    assert got["rectangular"] == [3, 4, 5, approx(53.13010235415598), True]
    assert got["rectangularI"][:3] == [3, -4, 5]
    re, im, magnitude, angle, complex_ = got["degrees"]
    assert magnitude == 2390.33 and angle == approx(-0.164162) and complex_
    assert re == approx(2390.33 * 0.99999589, rel=1e-6) and im == approx(-6.8484, rel=1e-3)
    re, im, magnitude, angle, _ = got["radians"]
    assert magnitude == 2 and re == approx(0, abs=1e-12) and im == approx(-2)
    assert angle == approx(-90)
    assert got["plain"] == [42.5, 0, 42.5, 0, False]
    assert got["exponent"][2] == -1500
    assert got["exponentComplex"][:2] == [1000, -1000]
    assert got["text"] is None
    assert got["utc"] == 946684800
    assert got["pst"] == 1577865600  # 2020-01-01 08:00:00 UTC
    assert got["pdt"] == 1593608400  # 2020-07-01 13:00:00 UTC
    assert got["offset"] == 1593576000  # 2020-07-01 04:00:00 UTC
    assert got["epoch"] == 946684800
    assert math.isnan(got["garbage"])
    assert got["unknownZone"] == 1577836800  # read as UTC
    csv = got["csv"]
    assert csv["timeColumn"] == "timestamp"
    assert csv["names"] == ["voltage_A", "power", "status"]
    assert csv["rows"] == 3 and csv["isTime"] is True
    assert csv["times"] == [946684800, 946684860, 946684920]
    assert csv["magnitude"] == [5, 10, 2]
    assert csv["power"] == [-1500, 42.5, 7]
    assert csv["status"] == [True, True, True]
    assert got["events"] == [
        {"event": "std_out", "data": "a\nb", "id": "3:0"},
        {"event": "end", "data": "COMPLETED", "id": "3:0"},
    ]
    assert got["defines"] == {"A": "1", "B": "x=y"}
    assert problems.messages == []


def approx(expected: float, **kwargs: Any) -> Any:
    import pytest

    return pytest.approx(expected, **kwargs)


async def test_workflow_run_graph(service: Service, page: Page, artifacts_dir: Path) -> None:
    """A two-stage workflow run from its page: the graph's nodes take their runs' states."""
    from playwright.async_api import expect

    problems = PageProblems(page)
    stages = []
    for name in ("first stage", "second stage"):
        pipeline = await service.pipeline(kind="gridlabd", name=name)
        await service.add_files(pipeline["uuid"], [MODELS / "tiny" / "tiny.glm"])
        stages.append(pipeline["uuid"])
    created = await service.client.post("/v1/workflows", json={"name": "two stages"})
    workflow = created.json()["uuid"]
    first = await service.client.post(
        f"/v1/workflows/{workflow}/pipelines", json={"pipeline_uuid": stages[0]}
    )
    second = await service.client.post(
        f"/v1/workflows/{workflow}/pipelines",
        json={"pipeline_uuid": stages[1], "source_workflow_pipelines": [first.json()["uuid"]]},
    )
    assert second.status_code == 200, second.text

    await log_in(page, service)
    await page.locator(f"#workflows a[href='/ui/workflows/{workflow}']").click()
    await expect(page.locator(".workflow svg.dag .node")).to_have_count(2)
    await expect(page.locator(".workflow svg.dag line.edge")).to_have_count(1)
    await page.locator("button.run-workflow").click()
    run = page.locator(".workflow-run")
    await expect(run).to_have_count(1)
    await expect(run).to_have_attribute("data-state", "COMPLETED", timeout=RUN_SECONDS * 1000)
    nodes = run.locator("svg.dag .node")
    await expect(nodes).to_have_count(2)
    for index in range(2):
        await expect(nodes.nth(index)).to_have_attribute("data-state", "COMPLETED")
        await expect(nodes.nth(index)).to_have_class("node state-COMPLETED")
    await page.screenshot(path=artifacts_dir / "workflow-run.png", full_page=True)
    # A node links to its pipeline run's page.
    await run.locator("svg.dag a").nth(1).click()
    await expect(page.locator(".run")).to_have_attribute("data-state", "COMPLETED")
    await expect(page.locator(".run .inputs")).to_contain_text("tiny_out.csv")
    assert problems.messages == []
