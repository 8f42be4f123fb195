"""The entry points of the importer and the formatter: parse text or a file into a Spec, and print one back."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from kumeo_iac.errors import (
    Diagnostic,
    KumeoSyntaxError,
    KumeoValidationError,
    SourceSpan,
    sort_diagnostics,
)
from kumeo_iac.lang._builder import Builder
from kumeo_iac.lang._formatter import format_program
from kumeo_iac.lang._parser import parse_syntax
from kumeo_iac.lang._source import normalise_newlines, read_source
from kumeo_iac.lang._syntax import Comment
from kumeo_iac.spec import Program


@dataclasses.dataclass
class ParseResult:
    """What one `.kumeo` text declares, the importer's diagnostics about it, and its comments (for the formatter)."""

    program: Program
    diagnostics: list[Diagnostic] = dataclasses.field(default_factory=list)
    comments: list[Comment] = dataclasses.field(default_factory=list)
    #: Objects built from ``{ … }``, by id, with the span of their braces (so the formatter keeps comments inside).
    objects: dict[int, tuple[Any, SourceSpan]] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when the importer found no error (validation may still find some)."""
        return not any(d.is_error for d in self.diagnostics)


def parse(text: str, path: str = "<string>") -> ParseResult:
    """Parse `.kumeo` text into a Program; raises KumeoSyntaxError when the text does not follow the grammar.

    Problems the importer can step over (a wrong argument type, an unknown kind, a duplicate key) are returned as
    diagnostics rather than raised, so one run reports all of them.
    """
    text = normalise_newlines(text)
    try:
        decls, comments = parse_syntax(text, path)
        builder = Builder(path)
        program = builder.program(decls)
    except RecursionError:
        raise KumeoSyntaxError("values are nested too deeply", SourceSpan(path, 1, 1)) from None
    return ParseResult(program, sort_diagnostics(builder.diagnostics), comments, builder.objects)


def parse_file(path: str | os.PathLike[str]) -> ParseResult:
    """Read and parse a `.kumeo` file; unreadable files and invalid UTF-8 are KumeoSyntaxErrors with a position."""
    text, name = read_source(path)
    return parse(text, name)


def format_text(text: str, path: str = "<string>") -> str:
    """The canonical form of `.kumeo` text, comments kept (what `kumeo fmt` writes).

    Raises KumeoSyntaxError for text that does not parse, and KumeoValidationError (with the importer's
    diagnostics) when something could not be imported: an unknown kind or a mistyped argument is left out of the
    Spec, so printing the Spec would silently delete it from the user's file.
    """
    result = parse(text, path)
    if not result.ok:
        raise KumeoValidationError(result.diagnostics)
    return format_program(result.program, result.comments, result.objects)
