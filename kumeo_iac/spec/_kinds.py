"""The base of every callable kind (agents, sources, targets, contexts): positional arguments and argument rules.

A kind is a pydantic model whose fields are its arguments. The same declaration gives the Python DSL its signature
(``LLM("ollama/llama3", prompt=…)``), the importer its positional mapping, validation its required/unknown checks and
docs/language.md its tables.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from kumeo_iac.errors import KumeoSpecError
from kumeo_iac.spec._base import SpecNode


class KindSpec(SpecNode):
    """A node written as a call: ``Kind(positional…, name: value…)``."""

    #: The name users write (``"LLM"``); also the discriminator value in JSON.
    kind_name: ClassVar[str] = ""
    #: Other names the language accepts for this kind (``HumanInLoop`` for ``HumanReview``).
    kind_aliases: ClassVar[tuple[str, ...]] = ()
    #: Argument names filled, in order, by positional arguments.
    positional: ClassVar[tuple[str, ...]] = ()
    #: Groups of arguments of which at least one must be given (``(("engine", "provider"),)`` for LLM).
    required_one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: One sentence for the reference docs.
    summary: ClassVar[str] = ""

    #: Arguments the kind does not declare, kept so validation can report them (with a did-you-mean) at their span.
    extra_args: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            if len(args) > len(self.positional):
                raise KumeoSpecError(
                    f"{self.kind_name or type(self).__name__}() takes at most {len(self.positional)} positional "
                    f"argument(s) ({', '.join(self.positional) or 'none'}), {len(args)} given"
                )
            for name, value in zip(self.positional, args, strict=False):  # fewer args than positionals is fine
                if name in kwargs:
                    raise KumeoSpecError(f"{self.kind_name}() got argument {name!r} both by position and by name")
                kwargs[name] = value
        try:
            super().__init__(**kwargs)
        except KumeoSpecError:
            raise
        except Exception as exc:  # pydantic.ValidationError → ours, so DSL users catch one tree
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}" for e in exc.errors()
                )
                raise KumeoSpecError(f"{self.kind_name or type(self).__name__}(): {problems}") from None
            raise

    @classmethod
    def argument_names(cls) -> tuple[str, ...]:
        """The names a user may write, in declaration order (aliases where a field has one)."""
        names = []
        for name, field in cls.model_fields.items():
            if name in ("span", "arg_spans", "extra_args", "kind"):
                continue
            names.append(field.alias or name)
        return tuple(names)

    @classmethod
    def field_for_argument(cls, argument: str) -> str | None:
        """The model field an argument name fills, or ``None`` if the kind does not declare it."""
        for name, field in cls.model_fields.items():
            if name in ("span", "arg_spans", "extra_args", "kind"):
                continue
            if argument == (field.alias or name):
                return name
        return None

    @classmethod
    def required_arguments(cls) -> tuple[str, ...]:
        out = []
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get("kumeo_required"):
                out.append(field.alias or name)
        return tuple(out)

    def given(self, argument: str) -> bool:
        """Whether an argument was given a value (``None`` counts as not given)."""
        field = self.field_for_argument(argument)
        return field is not None and getattr(self, field) is not None
