"""Where a runtime process finds its Plan: a file (``--plan``/``KUMEO_PLAN``) or its own part in the environment.

In the cluster each pod carries only its own part of the Plan in ``KUMEO_PLAN_JSON`` (written by compile, see
``kumeo_iac.compile._slices``); locally and in tests a whole Plan file serves every agent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kumeo_iac.errors import KumeoError

if TYPE_CHECKING:
    from kumeo_iac.compile import Plan

#: The environment variable holding a pod's own Plan (the same name as ``compile._kubernetes.PLAN_ENV``).
PLAN_ENV = "KUMEO_PLAN_JSON"


def read_plan(path: str | None, env: Mapping[str, str] = os.environ) -> tuple[Plan, str]:
    """The Plan and a label saying where it came from (for error messages); a file wins over the environment."""
    from kumeo_iac.compile import Plan

    if path:
        try:
            text, where = Path(path).read_text(encoding="utf-8"), path
        except OSError as exc:
            raise KumeoError(f"cannot read the Plan {path}: {exc.strerror}") from exc
    elif env.get(PLAN_ENV):
        text, where = env[PLAN_ENV], f"${PLAN_ENV}"
    else:
        raise KumeoError(f"no Plan given: pass --plan PLAN.json, or set KUMEO_PLAN (a file) or {PLAN_ENV}")
    try:
        return Plan.from_json(text), where
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: absurdly deep JSON
        raise KumeoError(f"{where} is not a Kumeo Plan ({type(exc).__name__}: {exc}); "
                         "regenerate it with `kumeo render`") from None
