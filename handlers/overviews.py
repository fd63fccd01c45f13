"""Integrations as the list, status and App Home show them: with their last and next run."""

from __future__ import annotations

from handlers.blocks import IntegrationOverview
from handlers.context import Services
from services.models import Integration, IntegrationStatus


def overview(
    services: Services, integration: Integration, *, payouts: bool = False
) -> IntegrationOverview:
    """With `payouts`, the last settlement and the clearing balances too (for its status)."""
    runs = services.sync.runs(integration.id, limit=1, workspace_id=integration.workspace_id)
    next_run, next_period = services.next_sync()
    active = integration.status == IntegrationStatus.ACTIVE
    return IntegrationOverview(
        integration,
        last_run=runs[0] if runs else None,
        next_run=next_run if active else None,
        next_period=next_period if active else None,
        payouts=(
            services.sync.payouts(integration.id, workspace_id=integration.workspace_id)
            if payouts
            else None
        ),
    )


def overviews(services: Services, workspace_id: str) -> list[IntegrationOverview]:
    return [overview(services, i) for i in services.integrations.list(workspace_id)]
