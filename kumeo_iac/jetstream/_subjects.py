"""NATS subject patterns: validity, matching (``*`` one token, ``>`` the rest) and overlap.

One matcher (:func:`covers`) serves the compiler (which stream holds a subject), the worker (which input an event
came in on), the dashboard and the audit stream; :func:`subject_matches` is its name for a literal subject.
"""

from __future__ import annotations

__all__ = ["covers", "minimal_subjects", "overlap", "subject_matches", "valid_subject"]


def valid_subject(subject: str, *, wildcards: bool) -> bool:
    """Whether ``subject`` is a well-formed NATS subject (a pattern when ``wildcards``): no empty tokens, no
    whitespace, ``*`` and ``>`` only as whole tokens and ``>`` last."""
    if not subject or subject != subject.strip() or any(c.isspace() for c in subject):
        return False
    tokens = subject.split(".")
    for i, tok in enumerate(tokens):
        if not tok:
            return False
        if tok in ("*", ">"):
            if not wildcards or (tok == ">" and i != len(tokens) - 1):
                return False
        elif "*" in tok or ">" in tok:
            return False
    return True


def covers(pattern: str, subject: str) -> bool:
    """Whether every subject matched by ``subject`` (a pattern too) is matched by ``pattern``."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s):
            return False
        if tok == "*":
            if s[i] == ">":
                return False
            continue
        if tok != s[i]:
            return False
    return len(s) == len(p)


def overlap(a: str, b: str) -> bool:
    """Whether some literal subject is matched by both patterns (JetStream forbids that across streams)."""
    x, y = a.split("."), b.split(".")
    for i in range(max(len(x), len(y))):
        if i >= len(x) or i >= len(y):
            return False
        tx, ty = x[i], y[i]
        if tx == ">" or ty == ">":
            return True
        if tx == "*" or ty == "*" or tx == ty:
            continue
        return False
    return True


def minimal_subjects(subjects: list[str]) -> list[str]:
    """Sorted, without duplicates and without subjects another one already covers."""
    unique = sorted(set(subjects))
    return [s for s in unique if not any(o != s and covers(o, s) for o in unique)]


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether a literal subject matches a NATS subject pattern (``*`` one token, ``>`` the rest)."""
    return covers(pattern, subject)
