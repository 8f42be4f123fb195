"""``kumeo new``: the project it writes installs in a fresh virtual environment by following its own README.md.

The README's install, test and run blocks are run as written (bash, in the project folder), in a real venv (no
system site packages) that pip fills from this checkout, which is what the README names when the ``kumeo`` that wrote
the project is this repository's. The wheel ``make dist`` builds is the README's other way, tried in the same venv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kumeo_iac._cli.deploy import KUMEO_REQUIREMENT, kumeo_source, project_readme

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def sh_blocks(readme: str, heading: str) -> list[str]:
    """The ```sh blocks of one ``## heading`` section of a README."""
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def run_block(block: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"$ {block}\n{done.stdout}\n{done.stderr}"
    return done


def fresh_env() -> dict[str, str]:
    """A shell whose ``python`` is the interpreter this venv was made from, and no trace of this venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join([str(Path(sys.base_prefix) / "bin"), env.get("PATH", "")])
    return env


def test_the_generated_project_installs_and_passes_its_tests_following_its_readme(tmp_path):
    project = tmp_path / "payments"
    made = subprocess.run([sys.executable, "-m", "kumeo_iac.cli", "new", "payments", "--dir", str(project)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "follow its README.md" in made.stderr
    readme = (project / "README.md").read_text()
    assert f'"{KUMEO_REQUIREMENT} @ {ROOT.as_uri()}"' in readme  # this checkout: the kumeo that wrote it
    requirements = (project / "requirements.txt").read_text()
    assert "kumeo-iac[pulumi,local]>=0.1" in requirements and "nats]" not in requirements

    env = fresh_env()
    (install,) = sh_blocks(readme, "Install")
    run_block(install, project, env)
    venv = project / "venv"
    shown = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import sys, kumeo_iac; print(sys.prefix); print(kumeo_iac.__file__)"],
                           capture_output=True, text=True, env=env, cwd=project, check=True).stdout.split()
    assert shown[0] == str(venv) and shown[1].startswith(str(venv)), shown  # installed in the venv, not linked

    (tests,) = sh_blocks(readme, "Test")
    done = run_block(tests, project, env)
    assert re.search(r"\b2 passed\b", done.stdout), done.stdout

    (run,) = sh_blocks(readme, "Run it on this machine")
    done = run_block(run, project, env, timeout=180)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(o["subject"], o["data"].get("id")) for o in lines if "error" not in o] == [("payments.out", "e1")]
    (dead,) = [o for o in lines if "error" in o]
    assert dead["subject"] == "kumeo.payments.dlq.clean" and "id" in dead["error"]
    assert "drained" in done.stderr

    # The README's other way: the wheel `make dist` builds, installed over the checkout's copy (same version, hence
    # --force-reinstall; its dependencies are there already); the tests pass on it.
    dist = tmp_path / "dist"
    subprocess.run(["make", "-s", "dist", f"DIST={dist}"], cwd=ROOT, capture_output=True, text=True, check=True,
                   timeout=300)
    (wheel,) = dist.glob("kumeo_iac-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"kumeo_iac/lang/grammar.lark", "kumeo_iac/dashboard/static/index.html",
            "kumeo_providers/__init__.py"} <= names
    other = readme.split("On another machine", 1)[1]
    (command,) = re.findall(r"`(venv/bin/pip install [^`]+)`", other)
    run_block(command.replace("file:///path/to/that.whl", wheel.as_uri()) + " --force-reinstall --no-deps",
              project, env)
    record = json.loads(next((venv / "lib").glob("python*/site-packages/kumeo_iac-*.dist-info/direct_url.json"))
                        .read_text())
    assert record["url"] == wheel.as_uri()
    done = run_block(tests, project, env)
    assert re.search(r"\b2 passed\b", done.stdout), done.stdout
    # A project made by this wheel-installed kumeo names the wheel in its README.
    other = tmp_path / "other"
    subprocess.run([str(venv / "bin" / "kumeo"), "new", "other", "--dir", str(other)], cwd=tmp_path, env=env,
                   capture_output=True, text=True, check=True)
    assert f'"{KUMEO_REQUIREMENT} @ {wheel.as_uri()}"' in (other / "README.md").read_text()


def test_the_readme_names_where_kumeo_came_from(tmp_path):
    # This checkout runs the suite, so the source is the checkout itself.
    assert kumeo_source() == ROOT.as_uri()
    readme = project_readme("demo", ROOT.as_uri())
    (install,) = sh_blocks(readme, "Install")
    assert install.splitlines() == ["python -m venv venv",
                                    f'venv/bin/pip install "kumeo-iac[pulumi,local] @ {ROOT.as_uri()}"',
                                    "venv/bin/pip install -r requirements.txt"]
    # Kumeo from an index (no local source known): requirements.txt is all it takes.
    readme = project_readme("demo", None)
    assert sh_blocks(readme, "Install") == ["python -m venv venv\nvenv/bin/pip install -r requirements.txt\n"]
    assert "not published" not in readme
