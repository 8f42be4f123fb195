"""The Plan's JetStream objects as resources of the ``kumeo_providers`` dynamic providers.

Kept apart from the component so the component never needs to know how the providers spell their arguments.

``adopt`` (stack config ``kumeo:adoptStreams``): take over an object that already exists on the server instead of
failing. ``allow_replace`` (``kumeo:allowStreamReplacement``): allow a change that replaces a stream or bucket,
deleting its data, instead of failing the preview. A consumer holds no data, so its replacement is always allowed.
"""

from __future__ import annotations

from typing import Any

import pulumi

from kumeo_iac.compile import ConsumerPlan, KeyValuePlan, StreamPlan


def stream(
    name: str, plan: StreamPlan, server_url: pulumi.Input[str], opts: pulumi.ResourceOptions, *,
    token: pulumi.Input[str] | None = None, user: str | None = None, password: pulumi.Input[str] | None = None,
    adopt: bool = False, allow_replace: bool = False,
) -> pulumi.Resource:
    from kumeo_providers import Stream, StreamArgs

    return Stream(name, StreamArgs(config=plan.config, server_url=server_url, token=token, user=user,
                                   password=password, adopt=adopt, allow_replace=allow_replace), opts=opts)


def consumer(
    name: str, plan: ConsumerPlan, server_url: pulumi.Input[str], opts: pulumi.ResourceOptions, *,
    stream: pulumi.Resource | None = None, token: pulumi.Input[str] | None = None, user: str | None = None,
    password: pulumi.Input[str] | None = None, adopt: bool = False, allow_replace: bool = False,
) -> pulumi.Resource:
    """A durable consumer; given its managed ``stream``, it takes the stream's ``created`` Output, so Pulumi creates
    it after the stream and replaces it whenever the stream is created again. The stream's name is the Plan's, a
    plain string: ``created`` already carries the dependency, and a second Output would only cost a turn.

    ``allow_replace`` is accepted so the component can pass the same settings to every kind; it changes nothing here
    (replacing a consumer loses no messages: the new one delivers from its deliver policy).
    """
    from kumeo_providers import Consumer, ConsumerArgs

    del allow_replace
    stream_created: Any = getattr(stream, "created", None) if stream is not None else None
    return Consumer(
        name,
        ConsumerArgs(stream=plan.stream, stream_created=stream_created, config=plan.config,
                     server_url=server_url, token=token, user=user, password=password, adopt=adopt),
        opts=opts,
    )


def key_value(
    name: str, plan: KeyValuePlan, server_url: pulumi.Input[str], opts: pulumi.ResourceOptions, *,
    token: pulumi.Input[str] | None = None, user: str | None = None, password: pulumi.Input[str] | None = None,
    adopt: bool = False, allow_replace: bool = False,
) -> pulumi.Resource:
    from kumeo_providers import KeyValue, KeyValueArgs

    return KeyValue(name, KeyValueArgs(config=plan.config, server_url=server_url, token=token, user=user,
                                       password=password, adopt=adopt, allow_replace=allow_replace), opts=opts)
