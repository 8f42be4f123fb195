"""The content hash of a build context: the image's tag, so an unchanged context is an unchanged image.

What goes in, and nothing else: every file the engine would receive (its path relative to the context, in POSIX
form, whether it is executable, and its bytes; symlinks by their target), the Dockerfile's path inside the context,
the build arguments and the labels. Absolute paths, modification times, owners and the order the file system lists
entries in do not count, so the same context assembled twice, anywhere, hashes the same. The files are the ones
:func:`context_files` selects (honouring ``.dockerignore``); the tarball sent to the engine is made from the same
list, so what is hashed is exactly what is built.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Bump when the hashing rules change, so old tags are not mistaken for new ones.
HASH_VERSION = "kumeo-context-v1"
#: Hex digits of the sha256 kept in the tag (64 bits: collisions are not a practical concern for one repository).
TAG_LENGTH = 16
_CHUNK = 1 << 20


def _ignore_patterns(root: Path) -> list[tuple[bool, str]]:
    """The ``.dockerignore`` rules of ``root`` as (negated, pattern) pairs, in file order."""
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    rules: list[tuple[bool, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:].strip() if negated else line
        pattern = os.path.normpath(pattern).replace(os.sep, "/").lstrip("/")
        if pattern and pattern != ".":
            rules.append((negated, pattern))
    return rules


def _ignored(relative: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a directory covers what is inside."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, pattern in rules:
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            excluded = not negated
    return excluded


def context_files(root: str | os.PathLike[str], dockerfile: str = "Dockerfile") -> list[str]:
    """The paths (relative, POSIX, sorted) of every file and directory under ``root`` that a build receives.

    ``.dockerignore`` is honoured (``!`` re-includes), except that the Dockerfile and ``.dockerignore`` are always
    sent, as Docker does.
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"build context {os.fspath(root)!r} is not a directory")
    rules = _ignore_patterns(base)
    always = {os.path.normpath(dockerfile).replace(os.sep, "/"), ".dockerignore"}
    selected: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(base).as_posix()
        for name in sorted(dirnames + filenames):
            relative = name if rel_dir == "." else f"{rel_dir}/{name}"
            if relative in always or not _ignored(relative, rules):
                selected.append(relative)
    return sorted(selected)


def _file_record(root: Path, relative: str) -> bytes:
    """One context entry as hashed: kind, path, executable bit and a digest of the content."""
    path = root / relative
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return b"L\0" + relative.encode() + b"\0" + os.readlink(path).encode() + b"\n"
    if stat.S_ISDIR(info.st_mode):
        return b"D\0" + relative.encode() + b"\n"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    executable = b"x" if info.st_mode & 0o111 else b"-"
    return b"F\0" + relative.encode() + b"\0" + executable + b"\0" + digest.hexdigest().encode() + b"\n"


def _mapping_records(kind: bytes, values: Mapping[str, str] | None) -> Iterable[bytes]:
    for key in sorted(values or {}):
        yield kind + b"\0" + str(key).encode() + b"\0" + str(values[key]).encode() + b"\n"  # type: ignore[index]


def context_digest(
    root: str | os.PathLike[str],
    *,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    files: Iterable[str] | None = None,
) -> str:
    """The sha256 (64 hex digits) of a build context, its Dockerfile path, build arguments and labels.

    ``files`` is the list :func:`context_files` returned, when the caller already has it.
    """
    base = Path(root)
    relatives = sorted(files) if files is not None else context_files(base, dockerfile)
    digest = hashlib.sha256()
    digest.update(HASH_VERSION.encode() + b"\n")
    digest.update(b"dockerfile\0" + dockerfile.replace(os.sep, "/").encode() + b"\n")
    for relative in relatives:
        digest.update(_file_record(base, relative))
    for record in _mapping_records(b"A", build_args):
        digest.update(record)
    for record in _mapping_records(b"B", labels):
        digest.update(record)
    return digest.hexdigest()


def content_tag(
    root: str | os.PathLike[str],
    *,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The image tag for a build context: the first 16 hex digits of :func:`context_digest`."""
    return context_digest(root, dockerfile=dockerfile, build_args=build_args, labels=labels)[:TAG_LENGTH]
