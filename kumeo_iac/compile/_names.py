"""The naming rules, as compile has always imported them; they live in :mod:`kumeo_iac._names` so that
validation applies them without importing the compile stage (and its NATS types)."""

from kumeo_iac._names import (
    words,
    slugify,
    snake,
    shorten,
    dns_name,
    is_dns_label,
    is_token,
    token,
    stream_name,
    bucket_name,
    Subjects,
    valid_subject,
    covers,
    overlap,
    minimal_subjects,
    gateway_target_durable,
)

__all__ = [
    "words",
    "slugify",
    "snake",
    "shorten",
    "dns_name",
    "is_dns_label",
    "is_token",
    "token",
    "stream_name",
    "bucket_name",
    "Subjects",
    "valid_subject",
    "covers",
    "overlap",
    "minimal_subjects",
    "gateway_target_durable",
]
