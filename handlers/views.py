"""Modal submissions: setup, settings, stop. Invalid input raises; the error handler shows it.
All three are for admins alone, declared in `register`."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext

from handlers import blocks
from handlers.authz import admin_only
from handlers.blocks import ids
from handlers.context import payload_id, services_of, workspace_of
from handlers.lifecycle import connect_links
from services.integrations import IntegrationSpec, PostingSettings, line_account_choices
from services.models import ContactPolicy


def setup_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
) -> None:
    services = services_of(context)
    user, workspace = body["user"]["id"], workspace_of(context)
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
    links = connect_links(services, integration, user=user, workspace=workspace)
    ack(response_action="update", view=links)


def settings_submitted(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
) -> None:
    integrations = services_of(context).integrations
    user, workspace = body["user"]["id"], workspace_of(context)
    integration = integrations.get_by_id(
        payload_id(view.get("private_metadata"), "integration"), workspace_id=workspace, actor=user
    )
    values = blocks.parse_settings_submission(
        view["state"]["values"],
        current_overrides=integration.tax_overrides,
        current_vat_rates=integration.vat_rates,
        current_payout_accounts=integration.payout_accounts,
        current_clearing_accounts=integration.clearing_accounts,
        current_line_accounts=line_account_choices(integration),
        current_contact_policy=ContactPolicy(integration.contact_policy),
    )
    integrations.update_settings(
        integration.id,
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
        payout_accounts=values["payout_accounts"],
        clearing_accounts=values["clearing_accounts"],
        line_accounts=values["line_accounts"],
        contact_policy=values["contact_policy"],
    )
    ack()


def stop_confirmed(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
) -> None:
    services_of(context).integrations.stop(
        payload_id(view.get("private_metadata"), "integration"),
        actor=body["user"]["id"],
        workspace_id=workspace_of(context),
    )
    ack()


def register(app: App) -> None:
    # The answer to a submission carries a refusal: admin_only checks before it.
    app.view(ids.SETUP_CALLBACK, middleware=[admin_only("set up integrations")])(setup_submitted)
    app.view(ids.SETTINGS_CALLBACK, middleware=[admin_only("change integrations")])(
        settings_submitted
    )
    app.view(ids.STOP_CALLBACK, middleware=[admin_only("stop integrations")])(stop_confirmed)
