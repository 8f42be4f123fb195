"""Kumeo's policy pack: run it on every PR with ``pulumi preview --policy-pack policy/`` (see docs/security.md)."""

from kumeo_policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="kumeo-security",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
