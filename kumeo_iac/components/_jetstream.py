"""The Plan's JetStream objects as resources of the ``kumeo_providers`` dynamic providers.

Kept apart from the component so the component never needs to know how the providers spell their arguments.
"""

from __future__ import annotations

from typing import Any

import pulumi

from kumeo_iac.compile._plan import ConsumerPlan, KeyValuePlan, StreamPlan


def stream(
    name: str, plan: StreamPlan, server_url: pulumi.Input[str], opts: pulumi.ResourceOptions, *,
    token: pulumi.Input[str] | None = None, user: str | None = None, password: pulumi.Input[str] | None = None,
) -> pulumi.Resource:
    from kumeo_providers import Stream, StreamArgs

    return Stream(name, StreamArgs(config=plan.config, server_url=server_url, token=token, user=user,
                                   password=password), opts=opts)


def consumer(
    name: str, plan: ConsumerPlan, server_url: pulumi.Input[str], opts: pulumi.ResourceOptions, *,
    stream: pulumi.Resource | None = None, token: pulumi.Input[str] | None = None, user: str | None = None,
    password: pulumi.Input[str] | None = None,
) -> pulumi.Resource:
    """A durable consumer; given its managed ``stream``, it takes the stream's name Output so Pulumi replaces it
    whenever the stream is replaced."""
    from kumeo_providers import Consumer, ConsumerArgs

    stream_name: Any = getattr(stream, "name", None) if stream is not None else None
    return Consumer(
        name,
        ConsumerArgs(stream=stream_name or plan.stream, config=plan.config, server_url=server_url, token=token,
                     user=user, password=password),
        opts=opts,
    )


def key_value(
    name: str, plan: KeyValuePlan, server_url: pulumi.Input[str], opts: pulumi.ResourceOptions, *,
    token: pulumi.Input[str] | None = None, user: str | None = None, password: pulumi.Input[str] | None = None,
) -> pulumi.Resource:
    from kumeo_providers import KeyValue, KeyValueArgs

    return KeyValue(name, KeyValueArgs(config=plan.config, server_url=server_url, token=token, user=user,
                                       password=password), opts=opts)
