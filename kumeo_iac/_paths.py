"""Where the files a workflow names may live: inside the workflow's folder, or inside a declared data root.

A workflow names files its agents read (models, decision tables, networks, rule files, wasm modules). Each must
resolve — after ``..`` and symlinks, with :meth:`Path.resolve` — inside the folder of the `.kumeo`/`.py` file, or
inside a data root the workflow declares with ``deployment: { storage: { data_root: "../shared" } }`` (relative to
the workflow's folder, or absolute). Absolute paths elsewhere, ``..`` escapes and symlinks pointing out are refused
by ``kumeo check`` (an error at the path), by compile, by the deployer that reads the files, and by the runtime
agents (which also accept the folders listed in ``KUMEO_DATA_ROOTS``, separated by ``os.pathsep``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["DATA_ROOTS_ENV", "DATA_ROOT_KEY", "data_roots", "declared_roots", "env_roots", "escapes",
           "escapes_lexically", "inside", "runtime_path"]

#: The `deployment.storage` key that declares a data root.
DATA_ROOT_KEY = "data_root"
#: The environment variable listing extra folders the runtime agents may read files from.
DATA_ROOTS_ENV = "KUMEO_DATA_ROOTS"


def _resolved(path: str | os.PathLike[str]) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop or an unusable name: compare it as written
        return Path(os.path.abspath(path))


def inside(path: str | os.PathLike[str], roots: Iterable[str | os.PathLike[str]]) -> bool:
    """Whether ``path`` (symlinks followed) lies inside one of ``roots`` (symlinks followed too)."""
    target = _resolved(path)
    return any(target == root or target.is_relative_to(root) for root in (_resolved(r) for r in roots))


def escapes(file: str, base_dir: str | os.PathLike[str], roots: Iterable[str | os.PathLike[str]] = ()
            ) -> Path | None:
    """The resolved path of ``file`` (relative to ``base_dir``) when it lies outside ``base_dir`` and ``roots``;
    ``None`` when it is inside."""
    path = Path(file)
    full = path if path.is_absolute() else Path(base_dir) / path
    if inside(full, [base_dir, *roots]):
        return None
    return _resolved(full)


def escapes_lexically(file: str, roots: Iterable[str] = ()) -> bool:
    """Whether ``file`` leaves its workflow's folder by its text alone (absolute, or ``..`` past the top), for
    when that folder is not known; ``roots`` are data roots as written (relative to the folder, or absolute)."""
    top = "/\0workflow"
    full = posixpath.normpath(posixpath.join(top, str(file).replace("\\", "/")))
    allowed = [top] + [posixpath.normpath(posixpath.join(top, str(r))) for r in roots]
    return not any(full == a or full.startswith(a.rstrip("/") + "/") for a in allowed)


def declared_roots(workflows: Iterable[Any]) -> list[str]:
    """The data roots the workflows declare (``deployment.storage.data_root``), as written."""
    out: list[str] = []
    for wf in workflows:
        deployment = getattr(wf, "deployment", None)
        storage = getattr(deployment, "storage", None) or {}
        root = storage.get(DATA_ROOT_KEY) if isinstance(storage, dict) else None
        if isinstance(root, str) and root.strip() and "${" not in root:
            out.append(root.strip())
    return out


def data_roots(workflows: Iterable[Any], base_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The data roots the workflows declare, relative ones under ``base_dir``."""
    out: list[Path] = []
    for root in declared_roots(workflows):
        path = Path(root)
        out.append(path if path.is_absolute() or base_dir is None else Path(base_dir) / path)
    return out


def env_roots() -> list[Path]:
    """The folders listed in ``KUMEO_DATA_ROOTS`` (for the runtime)."""
    return [Path(p) for p in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep) if p.strip()]


def runtime_path(name: str, base_dir: str | os.PathLike[str], where: str) -> Path:
    """The path of a file an agent reads, relative to the worker's files folder (``--base-dir``,
    ``KUMEO_FILES_DIR``); a :class:`KumeoRuntimeError` when it resolves outside that folder and the folders of
    ``KUMEO_DATA_ROOTS`` (defence in depth: check and compile refuse such paths first)."""
    from kumeo_iac.errors import KumeoRuntimeError

    path = Path(name)
    full = path if path.is_absolute() else Path(base_dir) / path
    if escapes(name, base_dir, env_roots()) is not None:
        raise KumeoRuntimeError(
            f"{where}: file {name!r} leaves the files folder {_resolved(base_dir)}; refused, not read — keep it "
            f"under that folder (or list its folder in {DATA_ROOTS_ENV})")
    return full
