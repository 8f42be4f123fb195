"""References to a workflow's named entries (``"models.fraud_detector"``, ``"config.risk.high"``,
``"base_images.ml"``): one resolver, so what ``kumeo check`` accepts is what compile plans.

A string is a reference when it reads ``<block>.<entry>[.<field>…]`` for one of the blocks below. A text that also
reads as a file name (``"data.json"``, ``"models.onnx"``) is a reference only when the block declares that entry;
otherwise it is the file.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Final, Literal

from kumeo_iac.spec._suggest import did_you_mean

if TYPE_CHECKING:
    from kumeo_iac.spec._workflow import WorkflowSpec

__all__ = ["FILE_EXTENSIONS", "REFERENCE_BLOCKS", "BlockRef", "RefProblem", "Resolution", "block_ref", "resolve"]

#: The blocks a reference may name; ``base_images`` is ``deployment.base_images``.
REFERENCE_BLOCKS: Final = ("models", "data", "schemas", "config", "base_images")

_BLOCK_REF: Final = re.compile(
    r"\s*(models|data|schemas|config|base_images)\.([A-Za-z_][A-Za-z0-9_-]*)((?:\.[A-Za-z0-9_-]+)*)\s*\Z")

#: Suffixes that make ``"<block>.<suffix>"`` read as a file name too.
FILE_EXTENSIONS: Final = frozenset({
    "onnx", "json", "bn", "bif", "xml", "xmlbif", "dmx", "yaml", "yml", "csv", "parquet", "pt", "pth", "wasm", "wat",
    "txt", "md", "jsonl", "pkl", "joblib", "gguf", "rules", "bin", "safetensors"})


@dataclasses.dataclass(frozen=True)
class BlockRef:
    """A parsed ``block.entry[.field…]`` reference."""

    text: str
    block: str
    name: str
    rest: tuple[str, ...]

    @property
    def block_label(self) -> str:
        """The block as the user declares it (``deployment.base_images`` for ``base_images``)."""
        return "deployment.base_images" if self.block == "base_images" else self.block

    @property
    def could_be_file(self) -> bool:
        return not self.rest and self.name.lower() in FILE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class RefProblem:
    """Why a reference resolves to nothing: ``missing-block`` (the block is absent: an external registry may still
    provide it, so ``kumeo check`` only warns) or ``unknown-entry`` (the block has no such entry or field)."""

    code: Literal["missing-block", "unknown-entry"]
    message: str


@dataclasses.dataclass(frozen=True)
class Resolution:
    """What a written value means: no reference (``ref`` None: the value as written), the entry it names
    (``value``), or why it names nothing (``problem``)."""

    ref: BlockRef | None
    value: Any = None
    problem: RefProblem | None = None

    @property
    def resolved(self) -> bool:
        return self.ref is not None and self.problem is None


def block_ref(text: Any) -> BlockRef | None:
    """The reference a string reads as, or ``None`` when it is no ``block.entry`` text."""
    if not isinstance(text, str):
        return None
    m = _BLOCK_REF.fullmatch(text)
    if m is None:
        return None
    rest = tuple(p for p in m.group(3).split(".") if p)
    return BlockRef(text.strip(), m.group(1), m.group(2), rest)


def entries_of(wf: WorkflowSpec, block: str) -> dict[str, Any]:
    """The entries of one of a workflow's reference blocks (empty when the block is absent)."""
    if block == "base_images":
        return dict(wf.deployment.base_images) if wf.deployment else {}
    return dict(wf.resource_block(block))


def resolve(wf: WorkflowSpec, value: Any) -> Resolution:
    """Resolve ``value`` against workflow ``wf``; anything but a reference text resolves to itself."""
    ref = block_ref(value)
    if ref is None:
        return Resolution(None, value)
    entries = entries_of(wf, ref.block)
    if ref.could_be_file and ref.name not in entries:
        return Resolution(None, value)  # "data.json": a file, since the block names no entry "json"
    if not entries:
        return Resolution(ref, problem=RefProblem(
            "missing-block",
            f"refers to '{ref.text}', but workflow '{wf.name}' has no `{ref.block_label}` block; fine if an external "
            f"registry provides it, but `kumeo render`, `run` and `up` will refuse it — add "
            f"`{ref.block_label}: {{ {ref.name}: … }}`"))
    keys = [str(k) for k in entries]
    if ref.name not in entries:
        return Resolution(ref, problem=RefProblem(
            "unknown-entry",
            f"refers to '{ref.text}', but the `{ref.block_label}` block has no entry '{ref.name}'"
            + (did_you_mean(ref.name, keys) or f"; its entries are: {', '.join(keys)}")))
    current: Any = entries[ref.name]
    walked = [ref.block, ref.name]
    for part in ref.rest:
        if not isinstance(current, dict):
            return Resolution(ref, problem=RefProblem(
                "unknown-entry",
                f"refers to '{ref.text}', but '{'.'.join(walked)}' is not an object, so it has no entry '{part}'; "
                f"refer to '{'.'.join(walked)}' itself"))
        if part not in current:
            inner = [str(k) for k in current]
            return Resolution(ref, problem=RefProblem(
                "unknown-entry",
                f"refers to '{ref.text}', but '{'.'.join(walked)}' has no entry '{part}'"
                + (did_you_mean(part, inner) or f"; its entries are: {', '.join(inner) or 'none'}")))
        current = current[part]
        walked.append(part)
    return Resolution(ref, current)
