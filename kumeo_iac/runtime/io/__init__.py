"""Sources and targets beyond NATS: adapters that run beside the agent workers.

HTTP, Timer and File sources publish events on ``kumeo.<slug>.source.<name>``; HTTP and File targets read
``kumeo.<slug>.target.<name>`` with a durable consumer of their own, which the deployer creates
(:func:`target_consumers`) and they only bind to. Kafka and MQTT are accepted by the language and
the Plan, and refused here at start with the workflow and the line (:func:`refusals`). A :class:`Gateway` holds
the adapters of one workflow.
"""

from kumeo_iac.runtime.io._common import (
    SUPPORTED_SOURCES,
    SUPPORTED_TARGETS,
    Adapter,
    EndpointRefused,
    InvalidLine,
    dead_letter_subject,
    parse_json_lines,
    publish_event,
    refusals,
    source_headers,
    target_durable,
)
from kumeo_iac.runtime.io._file_source import FileSource
from kumeo_iac.runtime.io._file_target import FileTarget
from kumeo_iac.runtime.io._gateway import Gateway
from kumeo_iac.runtime.io._http_source import HttpSource, parse_body
from kumeo_iac.runtime.io._http_target import HttpTarget
from kumeo_iac.runtime.io._target import target_consumers
from kumeo_iac.runtime.io._timer_source import TimerSource

__all__ = [
    "SUPPORTED_SOURCES",
    "SUPPORTED_TARGETS",
    "Adapter",
    "EndpointRefused",
    "FileSource",
    "FileTarget",
    "Gateway",
    "HttpSource",
    "HttpTarget",
    "InvalidLine",
    "TimerSource",
    "dead_letter_subject",
    "parse_body",
    "parse_json_lines",
    "publish_event",
    "refusals",
    "source_headers",
    "target_consumers",
    "target_durable",
]
