"""The partitioned workflow the provider tests compile: ``total`` keeps a running total per customer on N lanes.

Shared by tests/unit (the stream provider's preview of a new N) and tests/integration (lanes on a real
nats-server); importable from both because tests/conftest.py puts this directory on ``sys.path``.
"""

from __future__ import annotations

from kumeo_iac.compile import PlatformSettings, WorkflowPlan, compile_program
from kumeo_iac.lang import parse

WORKFLOW = """\
workflow Totals {
  source: NATS("payments.in")
  agents: [
    DataProcessor(id: "validate", input: source),
    Custom(id: "total", entrypoint: "totals:add", input: validate.output, partitions: PARTS,
           partition_key: "customer.id")
  ]
}
"""
# The partition stream Kumeo compiles for ``total``.
PARTITION_STREAM = "KUMEO_TOTALS_TOTAL_PARTITIONS"


def totals(parts: int, nats_url: str = "nats://127.0.0.1:4222") -> WorkflowPlan:
    """The workflow with ``parts`` lanes, compiled for the server at ``nats_url``."""
    result = parse(WORKFLOW.replace("PARTS", str(parts)), "totals.kumeo")
    assert result.ok, result.diagnostics
    return compile_program(result.program, settings=PlatformSettings(nats_url=nats_url)).workflows[0]
