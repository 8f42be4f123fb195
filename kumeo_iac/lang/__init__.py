"""The `.kumeo` language: parse text into a typed Spec (with source spans) and print a Spec back canonically.

``parse``/``parse_file`` raise :class:`~kumeo_iac.errors.KumeoSyntaxError` for text that does not follow the grammar
and return every other problem as diagnostics; ``format_program``/``format_text`` are `kumeo fmt`.
"""

from kumeo_iac.lang._api import ParseResult, format_text, parse, parse_file
from kumeo_iac.lang._formatter import format_program, format_value
from kumeo_iac.lang._syntax import Comment

__all__ = ["Comment", "ParseResult", "format_program", "format_text", "format_value", "parse", "parse_file"]
