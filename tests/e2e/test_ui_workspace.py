"""The web UI on a directory of workflows, in headless Chromium against a real nats-server (no workflow running).

What a new user meets when `kumeo dashboard DIR` opens a folder: the page says which file it opened; a file that
does not compile shows its diagnostics (not a NATS error); switching files leaves nothing of the previous file on
screen; a workflow of thirty agents is laid out with no box over another, no edge through a box, no text past its
box, and all of it in view. Screenshots go to docs/images/ (linked from docs/ui.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import (
    CHROMIUM,
    DEMO,
    IMAGES,
    LAUNCH_ARGS,
    require_browser,
    require_built_front_end,
    start_dashboard,
)

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(180)]

sync_api = require_browser()

BROKEN = """\
workflow Broken {
  source: NATS("broken.in")
  agents: [
    DataProcessor(id: "check", input: source),
    RuleEngine(id: "score", input: nosuch.output, rules: [])
  ]
}
"""


def fleet_workflow() -> str:
    """A workflow of 30 agents in six stages of uneven width, each agent reading one of the previous stage (so
    edges cross stages and fan out), long ids, and a Router sending to three targets."""
    widths = [3, 6, 4, 7, 5, 4]
    agents: list[str] = []
    previous = ["source"]
    for stage, width in enumerate(widths):
        current = []
        for n in range(width):
            agent = f"stage{stage}_enrichment_worker_{n}"
            reads = previous[(n * 2 + stage) % len(previous)]
            source = "source" if reads == "source" else f"{reads}.output"
            agents.append(f'    DataProcessor(id: "{agent}", input: {source}, '
                          'config: { required_fields: ["id"] })')
            current.append(agent)
        previous = current
    agents.append(f'    Router(id: "dispatch", input: {previous[1]}.output, rules: {{ "kind == 1": '
                  '"target.fleet.accepted", "kind == 2": "target.fleet.on_hold_for_inspection", '
                  'default: "target.fleet.refused" })')
    return ("workflow Fleet {\n  source: NATS(\"fleet.vehicle_telemetry.incoming\")\n  target: [\n"
            '    NATS("fleet.accepted"),\n    NATS("fleet.on_hold_for_inspection"),\n    NATS("fleet.refused")\n'
            "  ]\n  agents: [\n" + ",\n".join(agents) + "\n  ]\n}\n")


@pytest.fixture
def folder_dashboard(tmp_path: Path, nats_url: str) -> Iterator[dict[str, Any]]:
    """`kumeo dashboard DIR` on a folder of three workflows: broken.kumeo (first), fleet.kumeo, orders.kumeo."""
    require_built_front_end()
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(DEMO / "orders.kumeo", folder / "orders.kumeo")
    (folder / "broken.kumeo").write_text(BROKEN)
    (folder / "fleet.kumeo").write_text(fleet_workflow())
    dashboard, url = start_dashboard(folder, nats_url, tmp_path)
    try:
        yield {"url": url, "folder": folder}
    finally:
        dashboard.stop()


def _browse(url: str) -> Iterator[Any]:
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1680, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(20_000)
            page.goto(url)
            yield page
        finally:
            browser.close()
    assert not errors, errors


@pytest.fixture
def page(folder_dashboard: dict[str, Any]) -> Iterator[Any]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    yield from _browse(folder_dashboard["url"])


def test_a_folder_names_the_file_it_opened_and_a_broken_file_shows_its_diagnostics(
        page: Any, folder_dashboard: dict[str, Any]) -> None:
    picked = page.wait_for_selector("[data-testid='file-picked']").inner_text()
    assert "broken.kumeo" in picked and "3" in picked and str(folder_dashboard["folder"]) in picked, picked
    assert page.input_value("[data-testid='file-select']") == "broken.kumeo"

    # It does not compile: the graph page shows why, located, and NATS is reported as it is (connected).
    problems = page.wait_for_selector("[data-testid='compile-errors']").inner_text()
    assert "broken.kumeo does not compile" in problems
    assert "broken.kumeo:5:" in problems and "'nosuch.output'" in problems, problems
    status = page.inner_text("[data-testid='nats-status']")
    assert status.startswith("NATS: nats://"), status
    page.screenshot(path=str(IMAGES / "ui-folder-diagnostics.png"))

    # The code editor shows the same problem for this file …
    page.click("[data-testid='nav-code']")
    page.wait_for_selector("[data-testid='check-status']:has-text('1 error')")
    assert "nosuch.output" in page.inner_text("[data-testid='diagnostics']")

    # … and nothing of it is left once another file is opened: not in the code editor, not on the graph.
    page.select_option("[data-testid='file-select']", "orders.kumeo")
    page.wait_for_selector("[data-testid='check-status']:has-text('kumeo check: ok')")
    assert "nosuch" not in page.inner_text("[data-testid='diagnostics']")
    assert page.locator("[data-testid='file-picked']").count() == 0
    page.click("[data-testid='nav-graph']")
    page.wait_for_selector("[data-testid='node-review']")
    assert page.locator("[data-testid='compile-errors']").count() == 0
    page.wait_for_selector("[data-testid='nats-status']:has-text('NATS: nats://')")
    assert page.locator("[data-testid='stats-error']").count() == 0
    page.screenshot(path=str(IMAGES / "ui-folder-switched.png"))

    # Back to the broken file from the graph page: its diagnostics again, not the orders graph.
    page.select_option("[data-testid='file-select']", "broken.kumeo")
    page.wait_for_selector("[data-testid='compile-errors']")
    assert page.locator("[data-testid='node-review']").count() == 0


#: In the page: every node's box (SVG user units), edges sampled along their length, and text that overflows.
_GEOMETRY = """(svg) => {
  const boxes = {};
  for (const g of svg.querySelectorAll('g.node')) {
    const m = g.transform.baseVal.consolidate().matrix;
    const r = g.querySelector(':scope > rect');
    const box = {x: m.e, y: m.f, w: r.width.baseVal.value, h: r.height.baseVal.value};
    boxes[g.dataset.testid.slice(5)] = box;
  }
  const overflowing = [];
  for (const g of svg.querySelectorAll('g.node')) {
    const box = boxes[g.dataset.testid.slice(5)];
    for (const t of g.querySelectorAll(':scope > text')) {
      const b = t.getBBox();
      if (b.x < -0.5 || b.x + b.width > box.w + 0.5) overflowing.push(`${g.dataset.testid}: ${t.textContent}`);
    }
  }
  const edges = [];
  for (const p of svg.querySelectorAll('path.edge')) {
    const total = p.getTotalLength();
    const points = [];
    for (let at = 0; at <= total; at += 3) { const q = p.getPointAtLength(at); points.push([q.x, q.y]); }
    edges.push({from: p.dataset.from, to: p.dataset.to, points});
  }
  const frame = svg.closest('[data-testid=graph-viewport]').getBoundingClientRect();
  const shown = svg.getBoundingClientRect();
  return {boxes, overflowing, edges, frame: [frame.left, frame.top, frame.right, frame.bottom],
          shown: [shown.left, shown.top, shown.right, shown.bottom]};
}"""


def test_thirty_agents_are_laid_out_without_overlap_or_clipping(page: Any) -> None:
    page.wait_for_selector("[data-testid='file-picked']")
    page.select_option("[data-testid='file-select']", "fleet.kumeo")
    page.wait_for_selector("[data-testid='node-dispatch']")
    geometry = page.eval_on_selector("[data-testid='graph-fleet']", _GEOMETRY)
    boxes: dict[str, dict[str, float]] = geometry["boxes"]
    assert sum(1 for key in boxes if ":" not in key) == 30, sorted(boxes)
    assert len(boxes) == 34  # and the source and three targets

    # No box over another.
    keys = sorted(boxes)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            p, q = boxes[a], boxes[b]
            apart = (p["x"] + p["w"] <= q["x"] or q["x"] + q["w"] <= p["x"] or
                     p["y"] + p["h"] <= q["y"] or q["y"] + q["h"] <= p["y"])
            assert apart, f"{a} {p} overlaps {b} {q}"

    # No edge through a box other than its own two ends (a 2-unit margin for the line's width).
    assert len(geometry["edges"]) >= 33
    for edge in geometry["edges"]:
        for key, box in boxes.items():
            if key in (edge["from"], edge["to"]):
                continue
            inside = [(x, y) for x, y in edge["points"]
                      if box["x"] + 2 < x < box["x"] + box["w"] - 2 and box["y"] + 2 < y < box["y"] + box["h"] - 2]
            assert not inside, f"the edge {edge['from']} → {edge['to']} crosses {key} at {inside[0]}"

    # Every text fits in its box (long ids are shortened in the middle, the full id is the tooltip) …
    assert not geometry["overflowing"], geometry["overflowing"]
    title = page.locator("[data-testid='node-stage3_enrichment_worker_6'] text.title").text_content()
    assert "…" in title and title.endswith("6"), title
    # … and the whole graph is in view: fitted to the page, nothing cut at its right or bottom edge.
    left, top, right, bottom = geometry["shown"]
    f_left, f_top, f_right, f_bottom = geometry["frame"]
    assert f_left - 1 <= left and right <= f_right + 1 and f_top - 1 <= top and bottom <= f_bottom + 1, geometry
    page.screenshot(path=str(IMAGES / "ui-graph-large.png"), full_page=True)

    # Full size: the same layout, readable, and the page scrolls to the rest.
    page.click("[data-testid='zoom']")
    page.wait_for_function("document.querySelector(\"[data-testid='graph-viewport']\").scrollWidth > "
                           "document.querySelector(\"[data-testid='graph-viewport']\").clientWidth")
