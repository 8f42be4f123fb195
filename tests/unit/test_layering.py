"""Layering: no module imports a name another package keeps private.

What "private" and "package" mean here, precisely:

* A **package** is a directory with an ``__init__.py``; a module belongs to the package of its directory, and a
  package's own ``__init__.py`` belongs to that package.
* A dotted component is **private** when it starts with one underscore (``_jetstream``, ``_closest``); dunder names
  (``__main__``, ``__version__``) are not private.
* A private name **belongs to the package that contains it**: in ``kumeo_iac.compile._names.slugify`` the first
  private component is ``_names``, a module of ``kumeo_iac.compile``, so the name belongs to ``kumeo_iac.compile``;
  in ``kumeo_iac.validate._closest`` it is ``_closest``, an attribute of the module ``kumeo_iac.validate``, so it
  belongs to ``kumeo_iac``. Everything below a private component is private to that same package.
* A module may import a private name only when it is in the owning package or in one of its sub-packages (private
  sub-packages such as ``kumeo_iac._cli`` included): a package's sub-packages are its implementation too. Sibling
  packages, parents and other distributions (``kumeo_providers`` ↔ ``kumeo_iac``) go through public names, which a
  package gives by re-exporting them from its ``__init__.py``.

Checked: every module of Kumeo's own packages (``kumeo_iac``, and ``kumeo_providers`` and ``kumeo_component`` under
``providers/``), every ``import`` and ``from … import`` statement anywhere in the module (function-level lazy imports
and ``TYPE_CHECKING`` blocks included), relative imports resolved. Names private to third-party packages are out of
scope: this test is about Kumeo's own layering.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Kumeo's top-level packages and where their sources live.
PACKAGES: dict[str, Path] = {
    "kumeo_iac": REPO / "kumeo_iac",
    "kumeo_providers": REPO / "providers" / "kumeo_providers",
    "kumeo_component": REPO / "providers" / "kumeo_component",
}
IGNORED_DIRS = {"__pycache__", "static", "node_modules"}


def is_private(component: str) -> bool:
    return component.startswith("_") and not (component.startswith("__") and component.endswith("__"))


def is_package(dotted: tuple[str, ...]) -> bool:
    root = PACKAGES.get(dotted[0]) if dotted else None
    return root is not None and (root.joinpath(*dotted[1:]) / "__init__.py").is_file()


def owner_of(target: tuple[str, ...]) -> tuple[str, ...] | None:
    """The package a private name belongs to (None when ``target`` names nothing private)."""
    first = next((i for i, part in enumerate(target) if is_private(part)), None)
    if first is None:
        return None
    container = target[:first]
    return container if is_package(container) else container[:-1]


def allowed(importer_package: tuple[str, ...], target: tuple[str, ...]) -> bool:
    """Whether a module of ``importer_package`` may import ``target`` (a dotted name, as a tuple)."""
    if target[0] not in PACKAGES:
        return True
    owner = owner_of(target)
    return owner is None or importer_package[: len(owner)] == owner


def module_of(path: Path, top: str, root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the module's dotted name, the package it belongs to)."""
    parts = (top, *path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return parts[:-1], parts[:-1]
    return parts, parts[:-1]


def imported_names(tree: ast.AST, package: tuple[str, ...]) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line, dotted target) of every name an import statement in ``tree`` binds or loads."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, tuple(alias.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = (*base, *(node.module.split(".") if node.module else ()))
            else:
                module = tuple((node.module or "").split("."))
            for alias in node.names:
                yield node.lineno, (*module, alias.name) if alias.name != "*" else module


def violations() -> list[str]:
    found = []
    for top, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            if IGNORED_DIRS & set(path.relative_to(root).parts):
                continue
            _, package = module_of(path, top, root)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, target in imported_names(tree, package):
                if not allowed(package, target):
                    owner = ".".join(owner_of(target) or ())
                    found.append(f"{path.relative_to(REPO)}:{line}: imports {'.'.join(target)}, private to {owner}")
    return found


def test_no_module_imports_a_name_another_package_keeps_private() -> None:
    found = violations()
    assert not found, (
        f"{len(found)} import(s) of private names across packages; import a public name instead (re-export it from "
        "the owning package's __init__.py):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("importer", "target", "ok"),
    [
        # the owning package and its sub-packages, private ones included
        ("kumeo_iac.compile", "kumeo_iac.compile._names.slugify", True),
        ("kumeo_iac.compile", "kumeo_iac._names.slugify", True),
        ("kumeo_iac._cli", "kumeo_iac._load.load_file", True),
        ("kumeo_iac._cli", "kumeo_iac._cli._report.emit", True),
        ("kumeo_iac.runtime.agents", "kumeo_iac.runtime._agent.Emit", True),
        ("kumeo_iac._cli", "kumeo_iac.validate._closest", True),
        ("kumeo_iac.compile", "kumeo_iac.validate._closest", True),  # a module of kumeo_iac: private to kumeo_iac
        # siblings, parents and other distributions
        ("kumeo_iac.runtime.agents", "kumeo_iac.runtime.llm._cache.open_cache", False),
        ("kumeo_iac", "kumeo_iac.spec._durations.parse_duration", False),
        ("kumeo_iac.dashboard", "kumeo_iac.runtime._worker.subject_matches", False),
        ("kumeo_iac.runtime", "kumeo_providers._jetstream.connect", False),
        ("kumeo_providers", "kumeo_iac.images._hash.TAG_LENGTH", False),
        ("kumeo_iac._cli", "kumeo_iac.local._runner.LocalRunner", False),
        ("kumeo_iac.dashboard", "kumeo_iac.lang._formatter._Formatter", False),
        ("kumeo_iac.compile", "kumeo_iac.runtime.llm._provider.resolve_provider", False),
        # public names, dunders and other distributions' names are fine
        ("kumeo_iac.runtime", "kumeo_iac.jetstream.connect", True),
        ("kumeo_iac.runtime", "kumeo_iac.runtime.__main__", True),
        ("kumeo_iac", "pulumi.runtime.sync_await._sync_await", True),
    ],
)
def test_the_rule_on_examples(importer: str, target: str, ok: bool) -> None:
    assert allowed(tuple(importer.split(".")), tuple(target.split("."))) is ok


def test_relative_imports_are_resolved_against_the_importing_package() -> None:
    tree = ast.parse("from ..compile._plan import Plan\nfrom . import _common\n")
    names = [target for _, target in imported_names(tree, ("kumeo_iac", "runtime"))]
    assert names == [("kumeo_iac", "compile", "_plan", "Plan"), ("kumeo_iac", "runtime", "_common")]
