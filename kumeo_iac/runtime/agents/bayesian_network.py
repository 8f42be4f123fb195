"""BayesianNetwork: exact inference on a discrete Bayesian network (pgmpy) with evidence taken from each event.

Settings (named arguments, or entries of the agent's ``config`` object, which win):

- ``network``: the BIF (``.bn``/``.bif``) or XMLBIF (``.xml``) file, relative to the workflow file.
- ``query``, ``evidence``, ``method``: see :class:`kumeo_iac.runtime._models.NetworkQuery`.
- ``output_key``: nest the result under this field instead of merging it into the event.

Output: the event with, for ``method: "posterior"``, ``{variable: {state: probability}}`` for each query variable
(``{"fraud": {"no": 0.968, "yes": 0.032}}``); for ``method: "map"``, ``{variable: state}``. The network is parsed
once per process (see ``_models.load_network``) and pgmpy is imported in :meth:`start`, never at import time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kumeo_iac.runtime._agent import Emit, Event
from kumeo_iac.runtime.agents._common import KindAgent

__all__ = ["BayesianNetworkAgent"]


class BayesianNetworkAgent(KindAgent):
    """Answers one configured query per event: posterior distributions or the MAP assignment."""

    kind_name = "BayesianNetwork"
    options_in_config = True

    async def start(self) -> None:
        from kumeo_iac.runtime._models import NetworkQuery, load_network, network_file

        options = self.options()
        path = self.resolve_path(network_file(options.get("network"), self.label))
        # Parsing (and pgmpy's import) take seconds: keep the event loop free for NATS heartbeats meanwhile.
        network = await asyncio.to_thread(load_network, path, self.label)
        self.query = NetworkQuery(network, options, self.label)
        output_key = options.get("output_key")
        self.output_key: str | None = str(output_key) if output_key else None
        self.started = True

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(getattr(self, "started", False))
        data = self.payload(event.data)
        evidence = self.query.observe(data, self.workflow_config)
        query = self.query
        result: dict[str, Any] = dict(query.map(evidence) if query.method == "map" else query.posterior(evidence))
        if self.output_key:
            return [Emit({**data, self.output_key: result})]
        return [Emit({**data, **result})]
