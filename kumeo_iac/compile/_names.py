"""The naming rules, as compile has always imported them; they live in :mod:`kumeo_iac._names` so that
validation applies them without importing the compile stage (and its NATS types)."""

from kumeo_iac._names import (
    Subjects,
    bucket_name,
    covers,
    dns_name,
    gateway_target_durable,
    is_dns_label,
    is_token,
    minimal_subjects,
    overlap,
    shorten,
    slugify,
    snake,
    stream_name,
    token,
    valid_subject,
    words,
)

__all__ = [
    "Subjects",
    "bucket_name",
    "covers",
    "dns_name",
    "gateway_target_durable",
    "is_dns_label",
    "is_token",
    "minimal_subjects",
    "overlap",
    "shorten",
    "slugify",
    "snake",
    "stream_name",
    "token",
    "valid_subject",
    "words",
]
