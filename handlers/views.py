"""Modal submissions: setup, settings, stop. Invalid input raises; the error handler shows it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from handlers import blocks
from handlers.authz import require_admin
from handlers.blocks import ids
from handlers.context import services_of, workspace_of
from services.connect import STATE_LIFETIME
from services.errors import ErrorKind, ServiceError
from services.integrations import IntegrationSpec, PostingSettings
from services.models import Integration


def setup_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    services = services_of(context)
    user, workspace = body["user"]["id"], workspace_of(context)
    require_admin(context, client, user, "set up integrations")
    values = blocks.parse_setup_submission(view["state"]["values"])
    integration = services.integrations.create(
        IntegrationSpec(
            name=values["name"],
            region=values["region"],
            marketplaces=tuple(values["marketplaces"]),
            start_date=values["start_date"],
            errors_channel=values["errors_channel"],
            summary_channel=values["summary_channel"],
            posting=PostingSettings(
                invoice_status=values["invoice_status"],
                sales_account_code=values["sales_account_code"],
                shipping_account_code=values["shipping_account_code"],
            ),
        ),
        actor=user,
        workspace_id=workspace,
    )
    links = blocks.connect_links_modal(
        integration.name,
        amazon_url=services.connect.amazon_consent_url(
            integration, actor=user, workspace_id=workspace
        ),
        xero_url=services.connect.xero_consent_url(integration, actor=user, workspace_id=workspace),
        expires_at=datetime.now(UTC) + STATE_LIFETIME,
    )
    ack(response_action="update", view=links)


def _submitted_for(
    body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext, doing: str
) -> tuple[Integration, str, str]:
    """The integration a settings or stop modal is about, once the submitter may do it: only
    one of the submitting workspace (the id in private_metadata is the payload's word)."""
    user, workspace = body["user"]["id"], workspace_of(context)
    require_admin(context, client, user, doing)
    metadata = str(view.get("private_metadata") or "")
    if not re.fullmatch(r"[0-9]{1,9}", metadata):  # "²" is a digit to isdigit(); ids are int32
        raise ServiceError(
            ErrorKind.NOT_FOUND, f"No integration with id {metadata!r}.", retryable=False
        )
    integration = services_of(context).integrations.get_by_id(
        int(metadata), workspace_id=workspace, actor=user
    )
    return integration, user, workspace


def settings_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    services = services_of(context)
    integration, user, workspace = _submitted_for(
        body, view, client, context, "change integrations"
    )
    values = blocks.parse_settings_submission(
        view["state"]["values"],
        current_overrides=integration.tax_overrides,
        current_vat_rates=integration.vat_rates,
    )
    services.integrations.update_settings(
        integration.name,
        actor=user,
        workspace_id=workspace,
        name=values["name"],
        region=values["region"],
        marketplaces=tuple(values["marketplaces"]),
        start_date=values["start_date"],
        errors_channel=values["errors_channel"],
        summary_channel=values["summary_channel"],
        invoice_status=values["invoice_status"],
        sales_account_code=values["sales_account_code"],
        shipping_account_code=values["shipping_account_code"],
        tax_overrides=values["tax_overrides"],
        vat_rates=values["vat_rates"],
    )
    ack()


def stop_confirmed(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    integration, user, workspace = _submitted_for(body, view, client, context, "stop integrations")
    services_of(context).integrations.stop(integration.name, actor=user, workspace_id=workspace)
    ack()


def register(app: App) -> None:
    app.view(ids.SETUP_CALLBACK)(setup_submitted)
    app.view(ids.SETTINGS_CALLBACK)(settings_submitted)
    app.view(ids.STOP_CALLBACK)(stop_confirmed)
