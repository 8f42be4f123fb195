"""The logger every JetStream operation reports on (its name predates this package; log configurations use it)."""

from __future__ import annotations

import logging

log = logging.getLogger("kumeo_providers.jetstream")
