"""The running side of the dashboard: one NATS connection, and what it reads and does for a compiled Plan.

- **Topology** comes from the Plan (so integrations are already expanded, and subjects are the ones the workers
  use): an edge joins whoever publishes a subject to whoever consumes it.
- **Stats** are read from JetStream every time the page polls (at most every half second, shared by all pages):
  consumer info per agent (``delivered``, ``num_pending`` = lag, ``num_ack_pending``, ``num_redelivered``), the
  message count per subject of the workflow's streams (outputs, dead letters, sources, targets), and for each
  HumanReview agent the reviews still open in its review bucket (``reviews_pending``). Agents whose
  ``/metrics`` is reachable add failures and processing-time percentiles: ``--metrics AGENT=URL``, or, with
  ``--metrics-discover`` inside a cluster, every pod behind the workflow's headless metrics Service (its name,
  namespace and port from the Plan), each agent's replicas summed.
- **Inspector**: the newest messages on an agent's input, output and dead-letter subjects, straight from the streams.
- **Replay** of a dead letter republishes its input to the agent's input subject: same ``Kumeo-Event-Id`` and
  trace, ``Kumeo-Attempt`` one more than the failed one, a fresh ``Nats-Msg-Id`` (a replay is a new message, not a
  duplicate), ``Kumeo-Replay-Of`` naming the dead letter; then an audit record.
- **Reviews** use the HumanReview agent's own store and rules (``kumeo_iac.runtime.review``): the same KV bucket,
  the same revision-checked transitions, and a release with the dedupe ids the worker uses, so a release by the
  dashboard and one by the agent's sweeper are one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kumeo_iac.compile import AgentPlan, Plan, WorkflowPlan
from kumeo_iac.dashboard._audit import AuditLog
from kumeo_iac.dashboard._auth import Identity
from kumeo_iac.dashboard._scrape import (
    AgentSample,
    bucket_delta,
    latency_summary,
    parse_metrics,
    sum_samples,
)
from kumeo_iac.dashboard._streams import message_json, recent_messages, subject_counts
from kumeo_iac.runtime import envelope

__all__ = ["Live", "LiveError", "NotConnected", "Resolver", "metrics_service", "resolve_addresses", "topology"]

log = logging.getLogger("kumeo.dashboard")

REPLAY_OF = envelope.REPLAY_OF
REPLAYED_BY = envelope.REPLAYED_BY
DASHBOARD_AGENT = "kumeo-dashboard"
STATS_CACHE_SECONDS = 0.5
SCRAPE_TIMEOUT_SECONDS = 1.5

#: Resolves a host name and port to addresses (every pod of a headless Service); injectable for tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class LiveError(Exception):
    """A request about the running workflow that cannot be answered; ``status`` is the HTTP status to use."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotConnected(LiveError):
    def __init__(self, url: str, reason: str | None = None) -> None:
        more = f" ({reason})" if reason else ""
        super().__init__(503, f"not connected to NATS at {url}{more}; start `kumeo run PATH --follow` or pass --nats")


def _matches(pattern: str, subject: str) -> bool:
    from kumeo_iac.jetstream import subject_matches

    return subject_matches(pattern, subject)


def _input_subjects(agent: AgentPlan) -> list[str]:
    subjects = [b["subject"] for b in agent.input_bindings if b.get("subject")] or list(agent.inputs.values())
    return list(dict.fromkeys(subjects))


def _published_by(agent: AgentPlan) -> list[str]:
    subjects = [agent.output_subject, *agent.target_subjects, *(r.subject for r in agent.routes)]
    fallback = (agent.fallback or {}).get("subject")
    if fallback:
        subjects.append(fallback)
    return list(dict.fromkeys(subjects))


def topology(wf: WorkflowPlan) -> dict[str, Any]:
    """Nodes (sources, agents, targets) and edges of a compiled workflow, joined by subject."""
    nodes: list[dict[str, Any]] = []
    for ep in wf.sources:
        nodes.append({"key": f"source:{ep.name}", "type": "source", "label": ep.address, "kind": ep.kind,
                      "subject": ep.subject})
    for agent in wf.agents:
        nodes.append({"key": agent.id, "type": "agent", "label": agent.id, "kind": agent.kind,
                      "subject": agent.output_subject, "dead_letter_subject": agent.dead_letter_subject,
                      "inputs": _input_subjects(agent)})
    for ep in wf.targets:
        nodes.append({"key": f"target:{ep.name}", "type": "target", "label": ep.address, "kind": ep.kind,
                      "subject": ep.subject})
    edges: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()

    def edge(a: str, b: str, kind: str) -> None:
        if (a, b) not in seen:
            seen.add((a, b))
            edges.append({"from": a, "to": b, "kind": kind})

    for agent in wf.agents:
        for subject in _input_subjects(agent):
            for ep in wf.sources:
                if _matches(subject, ep.subject):
                    edge(f"source:{ep.name}", agent.id, "data")
            for other in wf.agents:
                if any(_matches(subject, s) for s in _published_by(other)) and other.id != agent.id:
                    kind = "route" if any(_matches(subject, r.subject) for r in other.routes) else "data"
                    edge(other.id, agent.id, kind)
    for agent in wf.agents:
        for ep in wf.targets:
            if ep.subject in agent.target_subjects:
                edge(agent.id, f"target:{ep.name}", "data")
            elif any(r.subject == ep.subject for r in agent.routes):
                edge(agent.id, f"target:{ep.name}", "route")
    return {"name": wf.name, "slug": wf.slug, "nodes": nodes, "edges": edges}


def _stream_for(wf: WorkflowPlan, subject: str) -> str | None:
    from kumeo_iac.jetstream import covers

    for stream in wf.streams:
        if any(covers(s, subject) for s in stream.config.get("subjects") or []):
            return stream.name
    return None


def _consumer_stats(info: Any) -> dict[str, int]:
    delivered = getattr(info, "delivered", None)
    ack_floor = getattr(info, "ack_floor", None)
    return {
        "delivered": int(getattr(delivered, "consumer_seq", 0) or 0),
        "acked": int(getattr(ack_floor, "consumer_seq", 0) or 0),
        "pending": int(info.num_pending or 0),
        "ack_pending": int(info.num_ack_pending or 0),
        "redelivered": int(info.num_redelivered or 0),
        "waiting": int(info.num_waiting or 0),
    }


class _Rates:
    """Per-second rates of counters, over windows of at least one second."""

    def __init__(self) -> None:
        self._then: dict[str, tuple[float, float]] = {}
        self._rate: dict[str, float] = {}

    def update(self, key: str, value: float, now: float) -> float:
        then = self._then.get(key)
        if then is None:
            self._then[key] = (now, value)
            return 0.0
        if now - then[0] >= 1.0:
            self._rate[key] = max(0.0, (value - then[1]) / (now - then[0]))
            self._then[key] = (now, value)
        return round(self._rate.get(key, 0.0), 3)


class Live:
    """The dashboard's NATS connection and everything it reads from and does on the running workflows."""

    def __init__(
        self,
        nats_url: str,
        *,
        connect_options: Mapping[str, Any] | None = None,
        metrics_urls: Mapping[str, str] | None = None,
        discover_metrics: bool = False,
        runner: Any = None,
        resolve: Resolver | None = None,
    ) -> None:
        self.url = nats_url
        self.connect_options = dict(connect_options or {})
        self.metrics_urls = dict(metrics_urls or {})
        self.discover_metrics = discover_metrics
        #: How ``--metrics-discover`` turns the metrics Service's DNS name into pod addresses.
        self.resolve: Resolver = resolve or resolve_addresses
        #: A LocalRunner started by the dashboard itself (``--run``): its workers' metrics are read in-process.
        self.runner = runner
        self.nc: Any = None
        self.js: Any = None
        self.audit: AuditLog | None = None
        self.last_error: str | None = None
        self._connector: asyncio.Task[None] | None = None
        self._rates = _Rates()
        self._buckets_then: dict[str, dict[float, float]] = {}
        self._cache: dict[int, tuple[float, dict[str, Any]]] = {}
        self._stats_lock = asyncio.Lock()
        self._kv: dict[str, Any] = {}

    # -- connection ------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def start(self) -> None:
        """Connect in the background (retrying), so the editor works while NATS is not up yet."""
        self._connector = asyncio.create_task(self._connect_forever(), name="kumeo-dashboard-nats")

    async def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.connected

    async def _connect_forever(self) -> None:
        import nats

        delay = 0.2
        while True:
            try:
                self.nc = await nats.connect(self.url, name="kumeo-dashboard", connect_timeout=3,
                                             allow_reconnect=True, max_reconnect_attempts=-1,
                                             reconnect_time_wait=0.5, **self.connect_options)
                self.js = self.nc.jetstream()
                self.audit = AuditLog(self.js)
                self.last_error = None
                log.info("dashboard connected to NATS at %s", self.url)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - not up yet: keep trying, say why on the page
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(BaseException):
                await self._connector
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 3.0)

    def _require(self) -> Any:
        if not self.connected:
            raise NotConnected(self.url, self.last_error)
        return self.js

    # -- stats -----------------------------------------------------------------------------------------------

    async def stats(self, plan: Plan) -> dict[str, Any]:
        """Live numbers of every workflow of ``plan`` (cached for half a second across callers)."""
        async with self._stats_lock:
            cached = self._cache.get(id(plan))
            if cached is not None and time.monotonic() - cached[0] < STATS_CACHE_SECONDS:
                return cached[1]
            result = await self._stats(plan)
            self._cache = {id(plan): (time.monotonic(), result)}
            return result

    async def _stats(self, plan: Plan) -> dict[str, Any]:
        now = time.monotonic()
        out: dict[str, Any] = {"connected": self.connected, "nats": self.url, "at": time.time(), "workflows": []}
        if not self.connected:
            out["error"] = str(NotConnected(self.url, self.last_error))
            return out
        samples = await self._samples(plan)
        for wf in plan.workflows:
            counts: dict[str, int] = {}
            for stream in wf.streams:
                try:
                    counts.update(await subject_counts(self.js, stream.name))
                except Exception as exc:  # noqa: BLE001 - one stream unreadable: show the rest
                    log.debug("stream %s: %r", stream.name, exc)
            agents: dict[str, Any] = {}
            for agent in wf.agents:
                total: dict[str, int] = {"delivered": 0, "acked": 0, "pending": 0, "ack_pending": 0,
                                         "redelivered": 0, "waiting": 0}
                missing = []
                for consumer in agent.consumers:
                    try:
                        info = await self.js.consumer_info(consumer.stream, consumer.durable)
                    except Exception:  # noqa: BLE001 - not created yet (the workflow is not running)
                        missing.append(consumer.durable)
                        continue
                    for k, v in _consumer_stats(info).items():
                        total[k] += v
                key = f"{wf.slug}/{agent.id}"
                out_count = sum(counts.get(s, 0) for s in _published_by(agent) if s != agent.dead_letter_subject)
                dlq = sum(v for s, v in counts.items() if s == agent.dead_letter_subject)
                entry: dict[str, Any] = {
                    **total,
                    "running": not missing and total["waiting"] > 0,
                    "missing_consumers": missing,
                    "out": out_count,
                    "dead_letters": dlq,
                    "rate_in": self._rates.update(f"{key}:in", total["delivered"], now),
                    "rate_out": self._rates.update(f"{key}:out", out_count, now),
                    "metrics": None,
                }
                sample = samples.get((wf.slug, agent.id))
                if sample is not None:
                    delta = bucket_delta(sample.buckets, self._buckets_then.get(key))
                    if sum(delta.values()) <= 0:
                        delta = {}
                    self._buckets_then[key] = dict(sample.buckets)
                    entry["metrics"] = {
                        **{k: int(v) for k, v in sample.counters.items()},
                        "lag": int(sample.lag),
                        "processed": int(sample.count),
                        "mean_seconds": (sample.sum / sample.count) if sample.count else None,
                        "latency": latency_summary(delta) or latency_summary(sample.buckets),
                    }
                if agent.review_bucket:
                    entry["reviews_pending"] = await self._open_reviews(wf, agent)
                agents[agent.id] = entry
            endpoints = {}
            for ep in [*wf.sources, *wf.targets]:
                role = "source" if ep in wf.sources else "target"
                count = counts.get(ep.subject, 0)
                endpoints[f"{role}:{ep.name}"] = {
                    "subject": ep.subject, "count": count,
                    "rate": self._rates.update(f"{wf.slug}/{role}:{ep.name}", count, now)}
            out["workflows"].append({"name": wf.name, "slug": wf.slug, "agents": agents, "endpoints": endpoints})
        return out

    async def _open_reviews(self, wf: WorkflowPlan, agent: AgentPlan) -> int | None:
        """How many events wait for a decision at a HumanReview agent; None while its bucket does not exist."""
        try:
            queue = await self._queue(wf, agent)
            # One KV watch per agent and refresh (the stats are cached for half a second across pages).
            return sum(1 for review in await queue.store.list() if review.is_open)
        except LiveError:
            return None
        except Exception as exc:  # noqa: BLE001 - an unreadable bucket must not hide the other numbers
            log.debug("reviews of %s/%s: %r", wf.slug, agent.id, exc)
            return None

    async def _samples(self, plan: Plan) -> dict[tuple[str, str], AgentSample]:
        """Metrics of the agents whose numbers are known: in-process workers, or scraped ``/metrics``."""
        found: dict[tuple[str, str], AgentSample] = {}
        if self.runner is not None:
            by_agent: dict[tuple[str, str], list[AgentSample]] = {}
            for worker in getattr(self.runner, "workers", []):
                text = worker.metrics.render()
                for agent_id, sample in parse_metrics(text).items():
                    by_agent.setdefault((worker.workflow.slug, agent_id), []).append(sample)
            found.update({k: sum_samples(v) for k, v in by_agent.items()})
        urls: dict[tuple[str, str], str] = {}  # explicit --metrics: one agent each
        discover: list[WorkflowPlan] = []  # --metrics-discover: the other agents, from every pod of the Service
        for wf in plan.workflows:
            for agent in wf.agents:
                for key in (f"{wf.name}/{agent.id}", f"{wf.slug}/{agent.id}", agent.id):
                    if key in self.metrics_urls:
                        urls[(wf.slug, agent.id)] = self.metrics_urls[key]
                        break
            if self.discover_metrics and any((wf.slug, a.id) not in urls for a in wf.agents):
                discover.append(wf)
        if not urls and not discover:
            return found
        import httpx

        async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_SECONDS) as client:
            async def fetch(url: str) -> str | None:
                try:
                    response = await client.get(url)
                    response.raise_for_status()
                except Exception as exc:  # noqa: BLE001 - an agent that does not answer shows NATS numbers only
                    log.debug("scraping %s failed: %r", url, exc)
                    return None
                return response.text

            async def scrape(key: tuple[str, str], url: str) -> None:
                text = await fetch(url)
                wf_name = next(w.name for w in plan.workflows if w.slug == key[0])
                sample = parse_metrics(text, wf_name).get(key[1]) if text is not None else None
                if sample is not None:
                    found[key] = sample

            async def scrape_pods(wf: WorkflowPlan) -> None:
                service = metrics_service(wf)
                if service is None:
                    return
                host, port = service
                try:
                    addresses = await asyncio.wait_for(self.resolve(host, port), SCRAPE_TIMEOUT_SECONDS)
                except Exception as exc:  # noqa: BLE001 - not inside the cluster, or no pod ready yet
                    log.debug("resolving %s failed: %r", host, exc)
                    return
                texts = await asyncio.gather(*(fetch(_pod_url(ip, port)) for ip in dict.fromkeys(addresses)))
                wanted = {a.id for a in wf.agents if (wf.slug, a.id) not in urls}
                replicas: dict[str, list[AgentSample]] = {}
                for text in texts:
                    for agent, sample in parse_metrics(text or "", wf.name).items():
                        if agent in wanted:
                            replicas.setdefault(agent, []).append(sample)
                found.update({(wf.slug, agent): sum_samples(s) for agent, s in replicas.items()})

            await asyncio.gather(*(scrape(k, u) for k, u in urls.items()), *(scrape_pods(wf) for wf in discover))
        return found

    # -- inspector -------------------------------------------------------------------------------------------

    async def messages(self, wf: WorkflowPlan, agent: AgentPlan, direction: str,
                       limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` messages in (``in``), out of (``out``) or dead-lettered by (``dlq``) an agent."""
        js = self._require()
        if direction == "in":
            subjects = [(b.get("stream") or _stream_for(wf, b["subject"]), b["subject"])
                        for b in agent.input_bindings if b.get("subject")]
            if not subjects:
                subjects = [(_stream_for(wf, s), s) for s in agent.inputs.values()]
        elif direction == "out":
            subjects = [(_stream_for(wf, s), s) for s in _published_by(agent)]
        elif direction == "dlq":
            subjects = [(_stream_for(wf, agent.dead_letter_subject), agent.dead_letter_subject)]
        else:
            raise LiveError(400, f"direction {direction!r}: use in, out or dlq")
        found: list[dict[str, Any]] = []
        for stream, subject in dict.fromkeys(subjects):
            if stream is None:
                continue
            for msg in await recent_messages(js, stream, subject, limit):
                found.append(message_json(msg, stream))
        found.sort(key=lambda m: (m.get("time") or "", m["seq"]), reverse=True)
        return found[:limit]

    # -- replay ----------------------------------------------------------------------------------------------

    async def replay(self, wf: WorkflowPlan, agent: AgentPlan, stream: str, seq: int,
                     identity: Identity) -> dict[str, Any]:
        """Republish a dead letter's input to the agent's input subject(s), then write the audit record."""
        import nats.js.errors

        js = self._require()
        try:
            msg = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            raise LiveError(404, f"no message {seq} in stream {stream} (expired or purged)") from None
        if msg.subject != agent.dead_letter_subject:
            raise LiveError(400, f"message {stream}/{seq} is on {msg.subject}, not on {agent.id}'s dead-letter "
                                 f"subject {agent.dead_letter_subject}")
        headers = dict(msg.headers or {})
        try:
            body = json.loads(msg.data or b"null")
        except ValueError:
            raise LiveError(422, "this dead letter's body is not JSON, so its input cannot be recovered") from None
        if not isinstance(body, dict) or "input" not in body:
            raise LiveError(422, "this dead letter has no 'input' to replay")
        event_id = envelope.header(headers, envelope.EVENT_ID) or f"{stream}-{seq}"
        failed_attempt = int(body.get("attempt") or envelope.header(headers, envelope.ATTEMPT) or 1)
        deliveries = self._replay_targets(agent, headers, event_id, body["input"])
        replay_id = uuid.uuid4().hex[:12]
        published = []
        for n, (subject, payload) in enumerate(deliveries):
            out_headers = {
                envelope.EVENT_ID: event_id,
                envelope.MSG_ID: f"{event_id}:replay:{replay_id}" + (f":{n}" if n else ""),
                envelope.TRACEPARENT: envelope.next_traceparent(envelope.header(headers, envelope.TRACEPARENT),
                                                                event_id),
                envelope.AGENT: DASHBOARD_AGENT,
                envelope.ATTEMPT: str(failed_attempt + 1),
                REPLAY_OF: f"{stream}/{seq}",
                REPLAYED_BY: envelope.one_line(identity.subject, 200),
            }
            data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            ack = await js.publish(subject, data, headers=out_headers, timeout=5.0)
            published.append({"subject": subject, "stream": ack.stream, "seq": ack.seq})
        also = sorted({other.id for other in wf.agents if other.id != agent.id
                       for s in _input_subjects(other) for p in published if _matches(s, p["subject"])})
        assert self.audit is not None
        record = await self.audit.record(
            "dead_letter.replay", identity.to_json(), workflow=wf.name, agent=agent.id, event_id=event_id,
            dead_letter={"stream": stream, "seq": seq, "error": envelope.header(headers, envelope.ERROR)},
            attempt=failed_attempt + 1, published=published, also_delivered_to=also)
        return {"event_id": event_id, "attempt": failed_attempt + 1, "published": published,
                "also_delivered_to": also, "audit": {"seq": record["seq"], "id": record["id"]}}

    @staticmethod
    def _replay_targets(agent: AgentPlan, headers: dict[str, str], event_id: str,
                        payload: Any) -> list[tuple[str, Any]]:
        parts = {b.get("part", ""): b["subject"] for b in reversed(agent.input_bindings) if b.get("subject")}
        parts = parts or dict(agent.inputs)
        if len(parts) <= 1:
            return [(next(iter(parts.values())), payload)]
        msg_id = envelope.header(headers, envelope.MSG_ID) or ""
        prefix = f"{envelope.dedupe_id(event_id, agent.id)}:dlq:"
        if msg_id.startswith(prefix):  # one part of a join failed on its own
            part = msg_id[len(prefix):]
            if part in parts:
                return [(parts[part], payload)]
        if isinstance(payload, dict) and set(payload) <= set(parts):  # a whole join: every part again
            return [(parts[p], v) for p, v in payload.items()]
        raise LiveError(422, "cannot tell which input of this join the dead letter came from")

    # -- reviews ---------------------------------------------------------------------------------------------

    async def _queue(self, wf: WorkflowPlan, agent: AgentPlan) -> Any:
        from kumeo_iac.errors import KumeoRuntimeError
        from kumeo_iac.runtime.review import (
            NatsKeyValue,
            ReviewQueue,
            ReviewSettings,
            ReviewStore,
        )

        js = self._require()
        bucket = agent.settings.get("review_bucket") or next(
            (kv.bucket for kv in wf.key_values if kv.purpose == "reviews"), None)
        if not bucket:
            raise LiveError(404, f"{agent.id} has no review bucket in the Plan")
        kv = self._kv.get(bucket)
        if kv is None:
            try:
                kv = await js.key_value(bucket)
            except Exception as exc:  # noqa: BLE001 - the agent has not started yet
                raise LiveError(503, f"the review bucket {bucket} does not exist yet ({type(exc).__name__}); "
                                     "is the workflow running?") from None
            self._kv[bucket] = kv
        config = agent.settings.get("config")
        try:
            settings = ReviewSettings.from_config(config if isinstance(config, dict) else {},
                                                  f"{wf.name}/{agent.id}", environ={})
        except KumeoRuntimeError:  # ${env.X} in notifications: the dashboard does not notify anyway
            settings = ReviewSettings.from_config({"ui": (config or {}).get("ui") or {}}, agent.id)
        return ReviewQueue(ReviewStore(NatsKeyValue(kv), agent.id), settings, workflow=wf.name,
                           release=lambda review: self._release(agent, review))

    async def _release(self, agent: AgentPlan, review: Any) -> None:
        """Publish a decided review's event exactly as ``Worker.release`` does (same subjects, dedupe ids)."""
        hop = envelope.next_traceparent(review.traceparent, review.event_id)
        data = json.dumps(review.released_event(), separators=(",", ":"), ensure_ascii=False).encode()
        msg_id = envelope.dedupe_id(review.event_id, agent.id)
        for n, subject in enumerate(dict.fromkeys([agent.output_subject, *agent.target_subjects])):
            headers = envelope.build_headers(event_id=review.event_id, agent=agent.id, attempt=1, traceparent=hop,
                                             msg_id=msg_id if n == 0 else f"{msg_id}@{subject}")
            await self.js.publish(subject, data, headers=headers, timeout=5.0)

    async def reviews(self, wf: WorkflowPlan, status: str = "open") -> list[dict[str, Any]]:
        """Reviews of every HumanReview agent of the workflow (open ones by default), oldest first."""
        out = []
        for agent in wf.agents:
            if not agent.review_bucket:
                continue
            queue = await self._queue(wf, agent)
            for review in await queue.store.list():
                if status == "open" and not review.is_open:
                    continue
                if status not in ("open", "all") and review.status.value != status:
                    continue
                out.append({**review.summary(), "agent": agent.id, "revision": review.revision,
                            "payload": review.current_payload(), "rounds": [r.to_json() for r in review.rounds],
                            "decision": review.decision})
        return out

    async def decide(self, wf: WorkflowPlan, agent: AgentPlan, review_id: str, action: str, identity: Identity,
                     *, comment: str | None = None, fields: dict[str, Any] | None = None,
                     revision: int | None = None) -> dict[str, Any]:
        """Approve, reject or comment on a review as ``identity``, then write the audit record."""
        from kumeo_iac.runtime.review import (
            InvalidReviewAction,
            ReviewConflict,
            ReviewNotFound,
        )

        if not agent.review_bucket:
            raise LiveError(404, f"{agent.id} is a {agent.kind}, not a HumanReview agent")
        queue = await self._queue(wf, agent)
        act = {"approve": queue.approve, "reject": queue.reject, "comment": queue.comment}.get(action)
        if act is None:
            raise LiveError(400, f"action {action!r}: use approve, reject or comment")
        try:
            review = await act(review_id, reviewer=identity.display, text=comment, fields=fields, revision=revision)
        except ReviewNotFound as exc:
            raise LiveError(404, str(exc)) from None
        except ReviewConflict as exc:
            raise LiveError(409, str(exc)) from None
        except InvalidReviewAction as exc:
            raise LiveError(422, str(exc)) from None
        assert self.audit is not None
        record = await self.audit.record(
            f"review.{action}", identity.to_json(), workflow=wf.name, agent=agent.id, review_id=review.id,
            event_id=review.event_id, comment=comment, fields=fields or {}, status=review.status.value,
            released=review.released)
        return {**review.to_api(), "audit": {"seq": record["seq"], "id": record["id"]}}


def metrics_service(wf: WorkflowPlan) -> tuple[str, int] | None:
    """The in-cluster DNS name and port of the workflow's headless metrics Service, from its Plan objects."""
    from kumeo_iac.compile import SHARED_METRICS, dns_name

    name = dns_name(wf.slug, SHARED_METRICS)
    for obj in wf.kubernetes:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "Service" and meta.get("name") == name:
            ports = obj["spec"]["ports"]
            port = next((p for p in ports if p.get("name") == "http"), ports[0])
            return f"{name}.{meta['namespace']}.svc", int(port["port"])
    return None


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (for a headless Service: one per ready pod), without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _pod_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/metrics"
