"""Which modal field shows which validation message."""

from __future__ import annotations

from services.integrations import InvalidInput


def field_errors(error: InvalidInput) -> dict[str, str]:
    return dict(error.errors)
