"""The web UI in headless Chromium, against a real `kumeo run --follow` on a real nats-server.

What a user does, page by page, with a screenshot of each saved under docs/images/ (linked from docs/ui.md):
the live graph shows every agent, its counts rise as events flow, and the review node counts the events waiting
for a decision; the inspector shows a dead letter and replays it; a review approved in the page releases its event
to the workflow's target (seen on `kumeo run`'s stdout) and the count drops to zero; the code editor shows live
diagnostics; an agent added, connected and configured in the visual editor shows up in the text, which is saved
and passes `kumeo check`.

Needs Chromium (``apt-get install chromium`` → /usr/bin/chromium, or ``KUMEO_CHROMIUM=/path``), the Python
``playwright`` package (its bundled driver; no browser download), and the built front end (``make ui``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import (
    CHROMIUM,
    DEMO,
    IMAGES,
    KUMEO,
    LAUNCH_ARGS,
    ROOT,
    Process,
    require_browser,
    require_built_front_end,
    start_dashboard,
)
from ui_support import wait_for as _wait

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(240)]

sync_api = require_browser()


@pytest.fixture
def stack(tmp_path: Path, nats_url: str) -> Iterator[dict[str, Any]]:
    """`kumeo run --follow` and `kumeo dashboard` on one nats-server, on a copy of the demo workflow."""
    require_built_front_end()
    work = tmp_path / "project"
    shutil.copytree(DEMO, work)
    run = Process([*KUMEO, "run", str(work / "orders.kumeo"), "--input", str(work / "orders.jsonl"), "--follow",
                   "--nats", nats_url], tmp_path, "run")
    dashboard = None
    try:
        dashboard, url = start_dashboard(work / "orders.kumeo", nats_url, tmp_path)
        _wait(lambda: "orders.accepted" in run.stdout() or not run.alive(), 60, "kumeo run to process the input")
        assert run.alive(), run.stderr()
        yield {"url": url, "run": run, "dashboard": dashboard, "work": work, "nats": nats_url}
    finally:
        if dashboard is not None:
            dashboard.stop()
        run.stop()


def _publish(nats_url: str, count: int) -> None:
    """More orders, the way an upstream system would send them (`kumeo send`)."""
    events = "\n".join(json.dumps({"order_id": f"bulk-{i}", "amount": 10 + i}) for i in range(count))
    subprocess.run([*KUMEO, "send", "orders.submitted", "--file", "-", "--nats", nats_url, "--event-id", "bulk"],
                   input=events.encode(), check=True, capture_output=True, timeout=60, cwd=ROOT)


def test_the_pages_drive_a_running_workflow(stack: dict[str, Any]) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        # Playwright gives every launch a fresh temporary profile (it refuses --user-data-dir here).
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1680, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(20_000)
            page.goto(stack["url"])

            # -- the live graph: every agent, counts rising as events flow -----------------------------------
            for agent in ("validate", "score", "review", "decide"):
                page.wait_for_selector(f"[data-testid='node-{agent}']")
            for endpoint in ("source:0", "target:0", "target:1"):
                assert page.is_visible(f"[data-testid='node-{endpoint}']")
            count = page.locator("[data-testid='count-in-validate']")
            _wait(lambda: int(count.text_content()) >= 4, 15, "the first events to be counted")
            before = int(count.text_content())
            _publish(stack["nats"], 30)
            _wait(lambda: int(count.text_content()) >= before + 30, 30, "the counts to rise")
            _wait(lambda: int(page.locator("[data-testid='count-out-decide']").text_content()) >= 32, 30,
                  "the new events to reach the end")
            assert page.locator("[data-testid='dlq-validate']").text_content() == "1"
            # the large order waits for a reviewer: the review node says so
            waiting = page.locator("[data-testid='reviews-count-review']")
            _wait(lambda: waiting.text_content() == "1", 15, "the pending review to be counted on the graph")
            page.screenshot(path=str(IMAGES / "ui-graph.png"))

            # -- the inspector: the dead letter and its reason, replayed ----------------------------------------
            page.click("[data-testid='node-validate']")
            page.click("[data-testid='tab-dlq']")
            reason = page.wait_for_selector("[data-testid='dlq-reason']")
            assert "missing required field(s): amount" in reason.inner_text()
            page.screenshot(path=str(IMAGES / "ui-inspector.png"))
            page.click("[data-testid='replay']")
            notice = page.wait_for_selector("[data-testid='notice']")
            assert "Replayed" in notice.inner_text() and "attempt 2" in notice.inner_text(), notice.inner_text()
            page.click("[data-testid='tab-in']")
            _wait(lambda: page.locator("[data-testid='message']").count() >= 35, 20, "the replayed input")

            # -- reviews: approving in the page releases the event ----------------------------------------------
            page.click("[data-testid='nav-graph']")
            page.click("[data-testid='reviews-review']")  # the count on the graph leads to the queue
            card = page.wait_for_selector("[data-testid='review']")
            assert "Large order" in card.inner_text()
            assert page.input_value("[data-testid='field-order_id']") == "o-2"
            page.screenshot(path=str(IMAGES / "ui-reviews.png"))
            assert '"o-2"' not in stack["run"].stdout()
            page.fill("input[aria-label='comment']", "checked with the customer")
            page.click("[data-testid='approve']")
            page.wait_for_selector("[data-testid='no-reviews']")

            def released() -> dict[str, Any] | None:
                for line in stack["run"].stdout().splitlines():
                    out = json.loads(line)
                    if out["subject"] == "orders.accepted" and out["data"].get("order_id") == "o-2":
                        return out
                return None

            out = _wait(released, 20, "the approved order on orders.accepted")
            assert out["data"]["review"]["decision"] == "approved"
            assert out["data"]["review"]["comments"][0]["comment"] == "checked with the customer"
            page.click("[data-testid='nav-graph']")
            waiting = page.locator("[data-testid='reviews-count-review']")
            _wait(lambda: waiting.text_content() == "0", 15, "the graph to show no review waiting")

            # -- the visual editor: add, connect and configure an agent ----------------------------------------
            page.click("[data-testid='nav-visual']")
            page.click("[data-testid='vnode-decide']")
            page.select_option("[data-testid='add-kind']", "DataProcessor")
            page.fill("[data-testid='add-id']", "audit")
            page.click("[data-testid='add-agent']")
            page.wait_for_selector("[data-testid='vnode-audit']")
            port = page.locator("[data-testid='port-out-score']").bounding_box()
            node = page.locator("[data-testid='vnode-audit']").bounding_box()
            page.mouse.move(port["x"] + port["width"] / 2, port["y"] + port["height"] / 2)
            page.mouse.down()
            page.mouse.move(node["x"] + 60, node["y"] + 40, steps=8)
            page.mouse.up()
            page.wait_for_selector("[data-testid='notice']:has-text('audit now reads score')")
            page.click("[data-testid='vnode-audit']")
            page.fill("[data-testid='arg-config']", '{ required_fields: ["order_id"] }')
            page.click("[data-testid='apply-config']")
            page.wait_for_selector("[data-testid='notice']:has-text('audit.config set')")
            page.wait_for_selector("[data-testid='visual-check']:has-text('kumeo check: ok')")
            page.screenshot(path=str(IMAGES / "ui-visual.png"))

            # -- the code editor shows it; saved, it passes `kumeo check` --------------------------------------
            page.click("[data-testid='nav-code']")
            editor = page.locator("[data-testid='code-editor'] .cm-content")
            editor.click()
            page.keyboard.press("Control+End")  # CodeMirror renders the lines in view only: go to the end
            _wait(lambda: 'id: "audit"' in editor.inner_text(), 20, "the new agent in the code editor")
            text = editor.inner_text()
            assert "input: score.output" in text and 'required_fields: ["order_id"]' in text
            page.wait_for_selector("[data-testid='check-status']:has-text('kumeo check: ok')")
            page.click("text=Save")
            page.wait_for_selector("[data-testid='notice']:has-text('Saved orders.kumeo')")
            page.screenshot(path=str(IMAGES / "ui-code.png"))

            # live diagnostics: a typo shows up as a located error
            page.locator(".cm-line", has_text='input: score.output').first.click()
            page.keyboard.press("End")
            page.keyboard.press("Backspace")
            page.keyboard.type("x,")
            page.wait_for_selector("[data-testid='check-status']:has-text('1 error')")
            problems = page.inner_text("[data-testid='diagnostics']")
            assert re.match(r"\d+:\d+ input 'score.outputx' .*did you mean 'score.output'", problems), problems
            page.screenshot(path=str(IMAGES / "ui-code-diagnostics.png"))
        finally:
            browser.close()
    assert not errors, errors

    saved = (stack["work"] / "orders.kumeo").read_text()
    assert 'id: "audit"' in saved and "input: score.output" in saved
    check = subprocess.run([*KUMEO, "check", str(stack["work"] / "orders.kumeo")], check=False, capture_output=True,
                           text=True,
                           cwd=ROOT, timeout=60)
    assert check.returncode == 0, check.stderr
