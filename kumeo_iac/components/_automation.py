"""Deploying a `.kumeo` file with Pulumi's Automation API: an inline program, no Pulumi.yaml needed.

``kumeo up fraud.kumeo --stack dev`` runs :func:`workflow_program` through ``auto.create_or_select_stack``; the
same function runs under mocks in the tests, so what the tests check is what ``up`` deploys. The Automation API
drives the ``pulumi`` CLI, so :func:`pulumi_cli` is checked first.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kumeo_iac._load import is_pulumi_program
from kumeo_iac.components._config import CONFIG_NAMESPACE, config_key
from kumeo_iac.errors import KumeoError

PULUMI_INSTALL_URL = "https://www.pulumi.com/docs/install/"

PULUMI_MISSING = (
    "the `pulumi` CLI is not installed (or not on PATH); `kumeo preview|up|destroy` drive it through Pulumi's "
    f"Automation API. Install it ({PULUMI_INSTALL_URL}, e.g. `curl -fsSL https://get.pulumi.com | sh`), then "
    "run `pulumi login --local` to keep stack state on this machine (or `pulumi login` for Pulumi Cloud)."
)


def pulumi_cli() -> str | None:
    """The path of the ``pulumi`` executable, or ``None`` when it is not installed."""
    return shutil.which("pulumi")


def project_name(path: str | os.PathLike[str]) -> str:
    """The Pulumi project a file deploys as: its (single) workflow's slug, else the file's stem."""
    from kumeo_iac.compile import slugify

    path = Path(path)
    if path.suffix == ".kumeo":
        from kumeo_iac.lang import parse_file

        workflows = parse_file(str(path)).program.workflows
        if len(workflows) == 1:
            return slugify(workflows[0].name)
    return slugify(path.stem)


def workflow_program(path: str | os.PathLike[str], *, resource_name: str | None = None) -> Callable[[], None]:
    """The Pulumi program deploying one file: a `.kumeo` workflow or a Python workflow (through
    :meth:`Workflow.from_file`), or a Python Pulumi program — a `.py` importing `pulumi` or Kumeo's components — run
    as is."""
    path = Path(path).resolve()

    def program() -> None:
        import pulumi

        from kumeo_iac.components._workflow import Workflow

        try:
            if path.suffix == ".py" and is_pulumi_program(path):
                runpy.run_path(str(path), run_name="__main__")
                return
            workflow = Workflow.from_file(resource_name or project_name(path), path)
        except KumeoError as exc:
            raise _program_error(exc) from exc
        pulumi.export("namespace", workflow.namespace)
        pulumi.export("streams", workflow.stream_names)
        pulumi.export("subjects", workflow.subjects)
        pulumi.export("deployments", workflow.deployments)

    return program


def _program_error(exc: KumeoError) -> Exception:
    """A KumeoError as a ``pulumi.RunError``, which Pulumi reports by its message alone (no traceback)."""
    import pulumi

    if isinstance(exc, pulumi.RunError):
        return exc
    return pulumi.RunError(str(exc))


def stack_config(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``--config key=value`` pairs as Automation API config: bare keys go under ``kumeo:``, secret keys are secret.

    A key with a ``.`` (``secrets.VENDOR``) is a path into an object; :func:`select_stack` sets those with
    ``path=True``.
    """
    from pulumi import automation as auto

    config: dict[str, Any] = {}
    for key, value in pairs:
        full = key if ":" in key else f"{CONFIG_NAMESPACE}:{key}"
        config[full] = auto.ConfigValue(value=value, secret=_is_secret(full))
    return config


def _is_secret(full_key: str) -> bool:
    namespace, _, bare = full_key.partition(":")
    if namespace != CONFIG_NAMESPACE:
        return False
    try:
        return config_key(bare.split(".", 1)[0]).secret
    except KeyError:
        return False


def _is_path(full_key: str) -> bool:
    return "." in full_key.partition(":")[2] or "[" in full_key


def _python_runtime() -> Any:
    """The project's runtime: Python, in this very environment (its virtualenv when there is one), so the plugins
    the engine starts for the program (the JetStream dynamic providers) import the same packages as the program."""
    from pulumi import automation as auto

    if sys.prefix == sys.base_prefix:
        return "python"
    return auto.ProjectRuntimeInfo(name="python", options={"virtualenv": sys.prefix})


def _python_env() -> dict[str, str]:
    """The interpreter the dynamic-provider launcher falls back on outside a virtualenv: this one."""
    return {"PULUMI_PYTHON_CMD": sys.executable}


def select_stack(
    path: str | os.PathLike[str], stack_name: str, config: Iterable[tuple[str, str]] = (), *,
    work_dir: str | None = None,
) -> Any:
    """Create or select ``stack_name`` for the file's inline program, with its config set.

    The workspace lives in ``.kumeo/pulumi/<project>`` next to the file so the stack's settings file persists
    between runs (state itself goes wherever ``pulumi login`` points).
    """
    from pulumi import automation as auto

    path = Path(path).resolve()
    project = project_name(path)
    work_dir = work_dir or str(path.parent / ".kumeo" / "pulumi" / project)
    os.makedirs(work_dir, exist_ok=True)
    stack = auto.create_or_select_stack(
        stack_name=stack_name,
        project_name=project,
        program=workflow_program(path, resource_name=project),
        opts=auto.LocalWorkspaceOptions(
            work_dir=work_dir,
            project_settings=auto.ProjectSettings(name=project, runtime=_python_runtime()),
            # The engine tells its dynamic providers neither project nor stack; their audit records read these.
            env_vars={**_python_env(), "PULUMI_PROJECT": project, "PULUMI_STACK": stack_name},
        ),
    )
    values = stack_config(config)
    plain = {k: v for k, v in values.items() if not _is_path(k)}
    paths = {k: v for k, v in values.items() if _is_path(k)}
    if plain:
        stack.set_all_config(plain)
    if paths:  # `kumeo:secrets.VENDOR` is the VENDOR entry of the kumeo:secrets object, not a key of its own
        stack.set_all_config(paths, path=True)
    return stack
