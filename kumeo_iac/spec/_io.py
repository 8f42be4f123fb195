"""Sources (where events enter a workflow), targets (where results leave it) and contexts (what agents may read)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from kumeo_iac.spec._base import arg
from kumeo_iac.spec._kinds import KindSpec


class Endpoint(KindSpec):
    """A source or target: one positional address and an options object."""

    id: str | None = arg("A name for this endpoint; defaults to its address.")
    options: Any = arg("Transport-specific options (an object).")

    @property
    def address(self) -> str:
        return str(getattr(self, self.positional[0]) or "")


# -- sources -----------------------------------------------------------------------------------------------------


class NatsSource(Endpoint):
    kind_name: ClassVar[str] = "NATS"
    summary: ClassVar[str] = "Events published on a NATS subject (kept in a JetStream stream)."
    positional: ClassVar[tuple[str, ...]] = ("subject", "options")
    kind: Literal["NATS"] = "NATS"
    subject: str | None = arg("The subject, as written (wildcards allowed for sources).", required=True)
    stream: str | None = arg("An existing JetStream stream holding the subject, instead of one Kumeo creates.")


class HttpSource(Endpoint):
    kind_name: ClassVar[str] = "HTTP"
    summary: ClassVar[str] = "An HTTP ingest endpoint: each POSTed JSON body becomes an event."
    positional: ClassVar[tuple[str, ...]] = ("endpoint", "options")
    kind: Literal["HTTP"] = "HTTP"
    endpoint: str | None = arg("The path (`/ingest`) or URL to serve.", required=True)


class KafkaSource(Endpoint):
    kind_name: ClassVar[str] = "Kafka"
    summary: ClassVar[str] = "A Kafka topic (accepted by the language and the Plan; not run locally yet)."
    positional: ClassVar[tuple[str, ...]] = ("topic", "options")
    kind: Literal["Kafka"] = "Kafka"
    topic: str | None = arg("The topic.", required=True)


class MqttSource(Endpoint):
    kind_name: ClassVar[str] = "MQTT"
    summary: ClassVar[str] = "An MQTT topic (accepted by the language and the Plan; not run locally yet)."
    positional: ClassVar[tuple[str, ...]] = ("topic", "options")
    kind: Literal["MQTT"] = "MQTT"
    topic: str | None = arg("The topic.", required=True)


class TimerSource(Endpoint):
    kind_name: ClassVar[str] = "Timer"
    summary: ClassVar[str] = "Emits an event every interval (`\"30s\"`, `\"5m\"`)."
    positional: ClassVar[tuple[str, ...]] = ("interval", "options")
    kind: Literal["Timer"] = "Timer"
    interval: str | int | float | None = arg("How often to fire.", required=True)
    payload: Any = arg("The body of each event (default: `{ \"tick\": n, \"time\": … }`).")


class FileSource(Endpoint):
    kind_name: ClassVar[str] = "File"
    summary: ClassVar[str] = "Reads events from a JSON-lines file."
    positional: ClassVar[tuple[str, ...]] = ("path", "options")
    kind: Literal["File"] = "File"
    path: str | None = arg("The file (one JSON object a line).", required=True)


AnySource = Annotated[
    NatsSource | HttpSource | KafkaSource | MqttSource | TimerSource | FileSource, Field(discriminator="kind")
]
SOURCE_KINDS: dict[str, type[Endpoint]] = {
    c.kind_name: c for c in (NatsSource, HttpSource, KafkaSource, MqttSource, TimerSource, FileSource)
}


# -- targets -----------------------------------------------------------------------------------------------------


class NatsTarget(Endpoint):
    kind_name: ClassVar[str] = "NATS"
    summary: ClassVar[str] = "Publishes results on a NATS subject."
    positional: ClassVar[tuple[str, ...]] = ("subject", "options")
    kind: Literal["NATS"] = "NATS"
    subject: str | None = arg("The subject (no wildcards).", required=True)


class HttpTarget(Endpoint):
    kind_name: ClassVar[str] = "HTTP"
    summary: ClassVar[str] = "POSTs each result as JSON, with retries; dead-letters after the last failure."
    positional: ClassVar[tuple[str, ...]] = ("endpoint", "options")
    kind: Literal["HTTP"] = "HTTP"
    endpoint: str | None = arg("The URL to POST to.", required=True)


class KafkaTarget(Endpoint):
    kind_name: ClassVar[str] = "Kafka"
    summary: ClassVar[str] = "A Kafka topic (accepted by the language and the Plan; not run locally yet)."
    positional: ClassVar[tuple[str, ...]] = ("topic", "options")
    kind: Literal["Kafka"] = "Kafka"
    topic: str | None = arg("The topic.", required=True)


class MqttTarget(Endpoint):
    kind_name: ClassVar[str] = "MQTT"
    summary: ClassVar[str] = "An MQTT topic (accepted by the language and the Plan; not run locally yet)."
    positional: ClassVar[tuple[str, ...]] = ("topic", "options")
    kind: Literal["MQTT"] = "MQTT"
    topic: str | None = arg("The topic.", required=True)


class FileTarget(Endpoint):
    kind_name: ClassVar[str] = "File"
    summary: ClassVar[str] = "Appends each result as one JSON line to a file."
    positional: ClassVar[tuple[str, ...]] = ("path", "options")
    kind: Literal["File"] = "File"
    path: str | None = arg("The file to append to.", required=True)


AnyTarget = Annotated[
    NatsTarget | HttpTarget | KafkaTarget | MqttTarget | FileTarget, Field(discriminator="kind")
]
TARGET_KINDS: dict[str, type[Endpoint]] = {
    c.kind_name: c for c in (NatsTarget, HttpTarget, KafkaTarget, MqttTarget, FileTarget)
}


# -- contexts ----------------------------------------------------------------------------------------------------


class Context(KindSpec):
    """Something agents can read while they work (a knowledge base, a Bayesian network, a database)."""

    id: str | None = arg("The name agents use in `context:`; defaults to the file's stem.")
    options: Any = arg("Kind-specific options (an object).")


class KnowledgeBase(Context):
    kind_name: ClassVar[str] = "KnowledgeBase"
    summary: ClassVar[str] = "A document or JSON knowledge store agents can look things up in."
    positional: ClassVar[tuple[str, ...]] = ("path", "options")
    kind: Literal["KnowledgeBase"] = "KnowledgeBase"
    path: str | None = arg("The file or directory.", required=True)


class BayesianNetworkContext(Context):
    kind_name: ClassVar[str] = "BayesianNetwork"
    summary: ClassVar[str] = "A discrete Bayesian network agents can query (BIF or XMLBIF file)."
    positional: ClassVar[tuple[str, ...]] = ("path", "options")
    kind: Literal["BayesianNetwork"] = "BayesianNetwork"
    path: str | None = arg("The network file.", required=True)


class Database(Context):
    kind_name: ClassVar[str] = "Database"
    summary: ClassVar[str] = "A database connection and query whose rows agents can read."
    positional: ClassVar[tuple[str, ...]] = ("connection", "query")
    kind: Literal["Database"] = "Database"
    connection: str | None = arg("A connection string or name.", required=True)
    query: str | None = arg("The query (may use `{{path}}` placeholders).")


AnyContext = Annotated[KnowledgeBase | BayesianNetworkContext | Database, Field(discriminator="kind")]
CONTEXT_KINDS: dict[str, type[Context]] = {
    c.kind_name: c for c in (KnowledgeBase, BayesianNetworkContext, Database)
}
