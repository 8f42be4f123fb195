"""The KUMEO_AUDIT stream: where deploys, the dashboard and the review API record what they did.

The providers create it before their first change, the dashboard and review APIs before their first record; all of
them use this one configuration, so whoever comes first creates the same stream.
"""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

__all__ = ["AUDIT_MAX_AGE_SECONDS", "AUDIT_STREAM", "AUDIT_SUBJECTS", "audit_stream_config"]

AUDIT_STREAM = "KUMEO_AUDIT"
#: What the stream holds: deploy records, the dashboard's (``kumeo.audit.ui``) and the review API's
#: (``kumeo.audit.review``). Creating it on the whole namespace spares agents any right to widen it.
AUDIT_SUBJECTS = "kumeo.audit.>"
#: How long audit records are kept (a year and a bit, for yearly reviews).
AUDIT_MAX_AGE_SECONDS = 400 * 24 * 3600.0


def audit_stream_config() -> StreamConfig:
    """The configuration of the KUMEO_AUDIT stream (records can be neither deleted nor purged through the API)."""
    return StreamConfig(
        name=AUDIT_STREAM,
        description="Kumeo audit: every change the JetStream providers make, and reviewers' and operators' actions",
        subjects=[AUDIT_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=AUDIT_MAX_AGE_SECONDS,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
    )
