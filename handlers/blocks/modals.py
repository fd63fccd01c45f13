"""Modals: set up, settings (with the tax mapping), stop confirmation, connect links; and the
readers that turn a view_submission's state.values into plain values for the services."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypedDict

from slack_sdk.models.blocks import (
    Block,
    ConversationFilter,
    ConversationSelectElement,
    DatePickerElement,
    InputBlock,
    InputInteractiveElement,
    Option,
    OptionGroup,
    PlainTextInputElement,
    RadioButtonsElement,
    StaticMultiSelectElement,
    StaticSelectElement,
)

from handlers.blocks import ids
from handlers.blocks.common import (
    MAX_HINT_TEXT,
    MAX_LABEL_TEXT,
    MAX_OPTION_TEXT,
    MAX_OPTION_VALUE,
    MAX_OPTIONS,
    MAX_PLACEHOLDER_TEXT,
    IntegrationOverview,
    Json,
    actions,
    context,
    describe_period,
    divider,
    escape,
    link_button,
    modal,
    plain,
    plural,
    section,
    when,
)
from services.documents import TaxKey
from services.integrations import (
    NAME_MAX_LENGTH,
    OWN_VAT_SCHEMES,
    InvalidInput,
    PostingSettings,
    line_account_choices,
)
from services.marketplaces import MARKETPLACES, Region
from services.models import ContactPolicy, Integration, InvoiceStatus
from services.settlement_plan import MAPPABLE_LINES, LineAccountChoice
from services.vat_rates import country_name, own_rate_key

ACCOUNT_CODE_MAX_LENGTH = 10  # the integrations table's column
_NEW = PostingSettings()  # what a new integration's setup form starts from
MAX_TEXT_INPUT = 3000  # a plain_text_input's max_length
# A view takes 100 blocks; the settings modal's other blocks take 20.
MAX_TAX_ROWS = 78
REGION_NAMES = {Region.NA: "North America", Region.EU: "Europe", Region.FE: "Far East"}
_SCHEMES = {
    "domestic": "",
    "oss": " OSS",
    "reverse_charge": " reverse charge",
    "export": " export",
    "facilitator": " marketplace facilitator",
}


class SetupValues(TypedDict):
    name: str
    region: Region
    marketplaces: list[str]
    start_date: date
    invoice_status: InvoiceStatus
    sales_account_code: str
    shipping_account_code: str
    errors_channel: str | None
    summary_channel: str | None


class SettingsValues(SetupValues):
    tax_overrides: dict[str, str]  # "DE:19:domestic" -> Xero TaxType
    vat_rates: dict[str, str]  # "DE:domestic" -> "19", as written: the service validates
    payout_accounts: dict[str, str]  # "EUR" -> Xero bank account code, as written
    clearing_accounts: dict[str, str]  # "EUR" -> Xero bank account code, as written
    contact_policy: ContactPolicy
    line_accounts: dict[str, LineAccountChoice]  # "referral" -> code and tax type, as written


# --- elements ------------------------------------------------------------------------------


def _option(value: str, label: str, description: str | None = None) -> Option:
    if len(value) > MAX_OPTION_VALUE:
        # A cut value would name something else: a bug, not a text to shorten.
        raise ValueError(f"option value over {MAX_OPTION_VALUE} characters: {value[:40]}…")
    return Option(
        value=value,
        text=plain(label, MAX_OPTION_TEXT),
        description=plain(description, MAX_OPTION_TEXT) if description else None,
    )


def _input(
    field: ids.Field,
    label: str,
    element: InputInteractiveElement,
    *,
    hint: str | None = None,
    optional: bool = False,
) -> InputBlock:
    return InputBlock(
        block_id=field.block,
        label=plain(label, MAX_LABEL_TEXT),
        element=element,
        hint=plain(hint, MAX_HINT_TEXT) if hint else None,
        optional=optional or None,
    )


def _region_options() -> dict[Region, Option]:
    options = {}
    for region, name in REGION_NAMES.items():
        countries = ", ".join(m.country for m in MARKETPLACES.values() if m.region == region)
        options[region] = _option(region.value, f"{name} ({countries})")
    return options


def _marketplace_options() -> dict[str, Option]:
    return {m.id: _option(m.id, f"{m.domain} ({m.currency})") for m in MARKETPLACES.values()}


def _invoice_status_options() -> dict[InvoiceStatus, Option]:
    return {
        InvoiceStatus.AUTHORISED: _option(
            InvoiceStatus.AUTHORISED.value,
            "Approved",
            "Final documents, ready for payments and allocations",
        ),
        InvoiceStatus.DRAFT: _option(
            InvoiceStatus.DRAFT.value, "Draft", "Someone approves each document in Xero"
        ),
    }


def _channel_select(field: ids.Field, initial: str | None) -> ConversationSelectElement:
    return ConversationSelectElement(
        action_id=field.action,
        placeholder=plain("Choose a channel", MAX_PLACEHOLDER_TEXT),
        initial_conversation=initial,
        # Prefilled with the channel the command was typed in, when there is one.
        default_to_current_conversation=True if initial is None else None,
        filter=ConversationFilter(include=["public", "private"], exclude_bot_users=True),
    )


def _account_code_input(field: ids.Field, label: str, code: str, *, hint: str) -> InputBlock:
    element = PlainTextInputElement(
        action_id=field.action,
        initial_value=code,
        min_length=1,
        max_length=ACCOUNT_CODE_MAX_LENGTH,
    )
    return _input(field, label, element, hint=hint)


def _integration_inputs(integration: Integration | None, start: date) -> list[Block]:
    """The fields setup and settings share, prefilled from `integration` when given."""
    regions = _region_options()
    marketplaces = _marketplace_options()
    statuses = _invoice_status_options()
    groups = [
        OptionGroup(
            label=plain(name, MAX_OPTION_TEXT),
            options=[marketplaces[m.id] for m in MARKETPLACES.values() if m.region == region],
        )
        for region, name in REGION_NAMES.items()
    ]
    chosen = (
        [marketplaces[m] for m in integration.marketplaces if m in marketplaces]
        if (integration)
        else []
    )
    region = regions.get(Region(integration.region)) if integration else None
    status = statuses[InvoiceStatus(integration.invoice_status)] if integration else None
    return [
        _input(
            ids.NAME,
            "Name",
            PlainTextInputElement(
                action_id=ids.NAME.action,
                placeholder=plain("e.g. Acme EU", MAX_PLACEHOLDER_TEXT),
                initial_value=integration.name if integration else None,
                min_length=1,
                max_length=NAME_MAX_LENGTH,
            ),
            hint="Unique in this workspace; used in commands such as /amazon status NAME.",
        ),
        _input(
            ids.REGION,
            "Amazon region",
            StaticSelectElement(
                action_id=ids.REGION.action,
                placeholder=plain("Choose a region", MAX_PLACEHOLDER_TEXT),
                options=list(regions.values()),
                initial_option=region,
            ),
        ),
        _input(
            ids.MARKETPLACES,
            "Marketplaces",
            StaticMultiSelectElement(
                action_id=ids.MARKETPLACES.action,
                placeholder=plain("Choose marketplaces", MAX_PLACEHOLDER_TEXT),
                option_groups=groups,
                initial_options=chosen or None,
            ),
            hint="Only marketplaces of the chosen region.",
        ),
        _input(
            ids.START_DATE,
            "Start date",
            DatePickerElement(action_id=ids.START_DATE.action, initial_date=start.isoformat()),
            hint="Transactions from this date on are posted. It cannot be in the future.",
        ),
        _input(
            ids.INVOICE_STATUS,
            "Xero invoice status",
            RadioButtonsElement(
                action_id=ids.INVOICE_STATUS.action,
                options=list(statuses.values()),
                initial_option=status or statuses[_NEW.invoice_status],
            ),
        ),
        _account_code_input(
            ids.SALES_ACCOUNT_CODE,
            "Sales account code",
            integration.sales_account_code if integration else _NEW.sales_account_code,
            hint="The Xero revenue account for item sales.",
        ),
        _account_code_input(
            ids.SHIPPING_ACCOUNT_CODE,
            "Shipping account code",
            integration.shipping_account_code if integration else _NEW.shipping_account_code,
            hint="The Xero revenue account for shipping and gift wrap.",
        ),
        _input(
            ids.ERRORS_CHANNEL,
            "Errors channel",
            _channel_select(
                ids.ERRORS_CHANNEL, integration.errors_channel if integration else None
            ),
            hint="Failed documents, with Retry buttons. Invite the bot: /invite @Amazon Xero Bot",
        ),
        _input(
            ids.SUMMARY_CHANNEL,
            "Summary channel",
            _channel_select(
                ids.SUMMARY_CHANNEL, integration.summary_channel if integration else None
            ),
            hint="Each month's totals. Invite the bot there too.",
        ),
    ]


# --- views ---------------------------------------------------------------------------------


def setup_modal(*, today: date, private_metadata: str = "") -> Json:
    """`/amazon setup`. The start date is prefilled with the first of `today`'s month."""
    blocks: list[Block] = [
        section(
            "Connect an Amazon Seller Central account to a Xero organisation. After you "
            "create it you get two links: one to authorize Amazon, one to connect Xero."
        ),
        *_integration_inputs(None, today.replace(day=1)),
    ]
    return modal(
        "Set up integration",
        blocks,
        callback_id=ids.SETUP_CALLBACK,
        submit="Create",
        private_metadata=private_metadata,
    )


def _tax_label(key_text: str) -> str:
    """ "Germany 19% OSS" for "DE:19:oss"; the key as written when it does not parse."""
    try:
        key = TaxKey.parse(key_text)
    except ValueError:
        return key_text
    country = country_name(key.country) if key.country else "Home country"
    rate = format(key.rate.normalize(), "f")
    return f"{country} {rate}%{_SCHEMES.get(key.scheme.value, '')} ({key_text})"


def _tax_options(tax_types: Sequence[tuple[str, str]], *, keep: str | None) -> list[Option]:
    """At most a select's worth of Xero tax types (minus the Automatic choice), keeping the
    one currently chosen even when Xero no longer lists it."""
    names = dict(tax_types)
    options = [_option(code, f"{name} ({code})") for code, name in tax_types]
    if keep and keep not in names:
        options.insert(0, _option(keep, f"{keep} (not an active rate in Xero)"))
    room = MAX_OPTIONS - 1
    if len(options) > room:
        kept = [o for o in options if o.value == keep]
        options = kept + [o for o in options if o.value != keep][: room - len(kept)]
    return options


def _tax_row(
    key: str, tax_types: Sequence[tuple[str, str]], *, automatic: str | None, override: str | None
) -> InputBlock:
    names = dict(tax_types)
    auto_label = "Automatic"
    if automatic:
        auto_label += f": {names.get(automatic, automatic)} ({automatic})"
    auto = _option(ids.AUTOMATIC_TAX_TYPE, auto_label)
    options = [auto, *_tax_options(tax_types, keep=override)]
    initial = next((o for o in options if override and o.value == override), auto)
    return InputBlock(
        block_id=ids.TAX_BLOCK_PREFIX + key,
        label=plain(_tax_label(key), MAX_LABEL_TEXT),
        element=StaticSelectElement(
            action_id=ids.TAX_TYPE_ACTION, options=options, initial_option=initial
        ),
    )


def _vat_rates_input(rates: Mapping[str, str]) -> InputBlock:
    """The seller's own rates as text, one "DE domestic 19" a line (read by _vat_rate_lines)."""
    schemes = ", ".join(scheme.value for scheme in OWN_VAT_SCHEMES)
    return _lines_input(
        ids.VAT_RATES,
        "Your own VAT rates (for sales Amazon calculated no VAT for)",
        [f"{key.replace(':', ' ')} {percent}" for key, percent in sorted(rates.items())],
        "DE domestic 19",
        f"One a line: country, scheme ({schemes}) and percent, e.g. DE domestic 19. "
        "Such sales fail until their rate is set; none is guessed.",
    )


def _payout_accounts_input(accounts: Mapping[str, str]) -> InputBlock:
    """The bank account Amazon pays each currency into, "EUR 091" a line (read by
    _currency_account_lines)."""
    return _lines_input(
        ids.PAYOUT_ACCOUNTS,
        "Payout bank accounts (where Amazon pays each currency into)",
        [f"{currency} {code}" for currency, code in sorted(accounts.items())],
        "EUR 091",
        "One a line: currency and the Xero bank account's code, e.g. EUR 091. A currency not "
        "named pays into the organisation's one other bank account in it.",
    )


_CONTACT_POLICIES = {
    ContactPolicy.BUYERS: ("Each buyer their own contact", None),
    ContactPolicy.MARKETPLACE: (
        "One contact per marketplace",
        "Amazon DE customers, and so on; buyers with a VAT number keep their own",
    ),
}


def _contact_policy_input(policy: ContactPolicy) -> InputBlock:
    options = {
        chosen: _option(chosen.value, label, description)
        for chosen, (label, description) in _CONTACT_POLICIES.items()
    }
    return _input(
        ids.CONTACT_POLICY,
        "Customers in Xero",
        RadioButtonsElement(
            action_id=ids.CONTACT_POLICY.action,
            options=list(options.values()),
            initial_option=options[policy],
        ),
        hint="Xero advises under about 10,000 contacts: with many buyers a month, keep them "
        "per marketplace. A refund always goes to the contact of its order's invoice.",
    )


def _clearing_accounts_input(accounts: Mapping[str, str]) -> InputBlock:
    return _lines_input(
        ids.CLEARING_ACCOUNTS,
        "Amazon clearing accounts (what Amazon settles passes through them)",
        [f"{currency} {code}" for currency, code in sorted(accounts.items())],
        "EUR 610",
        "One a line: currency and the code of a Xero bank account in it, e.g. EUR 610. A "
        'currency not named uses "Amazon EUR clearing", made if missing.',
    )


def _line_accounts_input(choices: Mapping[str, LineAccountChoice]) -> InputBlock:
    """The account and tax type of each kind of fee line, "referral 6100 INPUT2" a line (read
    by _line_account_lines)."""
    return _lines_input(
        ids.LINE_ACCOUNTS,
        "Fee and charge accounts (and tax rates)",
        [f"{kind} {choice}" for kind, choice in sorted(choices.items())],
        "referral 6100 INPUT2",
        "One a line: kind, Xero account code and, if Amazon charges you tax on it, the Xero tax "
        f"type, e.g. referral 6100 INPUT2. Kinds: {', '.join(MAPPABLE_LINES)}. A kind not named "
        "goes to the bot's Amazon fees account, without tax.",
    )


def _lines_input(
    field: ids.Field, label: str, lines: Sequence[str], example: str, hint: str
) -> InputBlock:
    """An optional multiline text field, one entry a line (read by _field_lines)."""
    return _input(
        field,
        label,
        PlainTextInputElement(
            action_id=field.action,
            multiline=True,
            initial_value="\n".join(lines) or None,
            placeholder=plain(example, MAX_PLACEHOLDER_TEXT),
            max_length=MAX_TEXT_INPUT,
        ),
        hint=hint,
        optional=True,
    )


def settings_modal(integration: Integration, *, tax_types: Sequence[tuple[str, str]]) -> Json:
    """`/amazon settings NAME`, prefilled. `tax_types` are the Xero organisation's active
    sales tax rates as (TaxType, name); each tax key the integration has met (or has an
    override for) gets a select, Automatic meaning "as the rates in Xero say"."""
    automatic = dict(integration.xero_tax_types or {})
    overrides = dict(integration.tax_overrides or {})
    keys = sorted(set(automatic) | set(overrides))
    blocks: list[Block] = [
        section(f"Settings of *{escape(integration.name)}*."),
        *_integration_inputs(integration, integration.start_date),
        _vat_rates_input(integration.vat_rates or {}),
        _payout_accounts_input(integration.payout_accounts or {}),
        _clearing_accounts_input(integration.clearing_accounts or {}),
        _contact_policy_input(ContactPolicy(integration.contact_policy)),
        _line_accounts_input(line_account_choices(integration)),
        divider(),
        section(
            "*Tax mapping*\nWhich Xero tax type each country and rate posts under. "
            "Automatic follows the organisation's tax rates (a missing one is created)."
        ),
    ]
    if not tax_types:
        blocks.append(context("The tax mapping can be edited once Xero is connected."))
    else:
        shown = keys[:MAX_TAX_ROWS]
        blocks += [
            _tax_row(key, tax_types, automatic=automatic.get(key), override=overrides.get(key))
            for key in shown
        ]
        if not keys:
            blocks.append(context("Tax keys appear here after the first sync."))
        if len(keys) > len(shown):
            blocks.append(
                context(
                    f"{plural(len(keys) - len(shown), 'more mapping')} not shown here "
                    "stay as they are."
                )
            )
        blocks += [
            _input(
                ids.NEW_TAX_KEY,
                "Map another tax key",
                PlainTextInputElement(
                    action_id=ids.NEW_TAX_KEY.action,
                    placeholder=plain(
                        "COUNTRY:RATE:SCHEME, e.g. DE:19:domestic", MAX_PLACEHOLDER_TEXT
                    ),
                ),
                hint="Schemes: domestic, oss, reverse_charge, export, facilitator.",
                optional=True,
            ),
            _input(
                ids.NEW_TAX_TYPE,
                "Its Xero tax type",
                StaticSelectElement(
                    action_id=ids.NEW_TAX_TYPE.action,
                    placeholder=plain("Choose a tax type", MAX_PLACEHOLDER_TEXT),
                    options=_tax_options(tax_types, keep=None),
                ),
                optional=True,
            ),
        ]
    return modal(
        "Integration settings",
        blocks,
        callback_id=ids.SETTINGS_CALLBACK,
        submit="Update settings",
        private_metadata=str(integration.id),
    )


def stop_confirm_modal(overview: IntegrationOverview) -> Json:
    """Stop asks first, and says what stopping means."""
    integration = overview.integration
    name = escape(integration.name)
    period = (
        f"The next period ({describe_period(overview.next_period)})"
        if overview.next_period
        else "The next period"
    )
    text = (
        f"Stop *{name}*?\n\n{period} is not pulled from Amazon, and nothing more is posted "
        f"to Xero until an admin activates it again (`/amazon activate {name}`). "
        "Documents already in Xero stay as they are."
    )
    return modal(
        "Stop integration",
        [section(text)],
        callback_id=ids.STOP_CALLBACK,
        submit="Stop",
        private_metadata=str(integration.id),
    )


def connect_links_modal(
    name: str, *, amazon_url: str | None, xero_url: str | None, expires_at: datetime
) -> Json:
    """After setup (or for one still waiting): a link for each side not yet connected.
    Each link works once and expires with its state."""
    buttons = []
    if amazon_url:
        buttons.append(
            link_button(
                "Connect Amazon Seller Central", amazon_url, ids.CONNECT_AMAZON, style="primary"
            )
        )
    if xero_url:
        buttons.append(link_button("Connect Xero", xero_url, ids.CONNECT_XERO, style="primary"))
    blocks: list[Block] = [
        section(
            f"Connect *{escape(name)}* to both sides: sign in to Seller Central as the seller, "
            "and to Xero as someone who may connect the organisation."
        )
    ]
    if buttons:
        blocks.append(actions(*buttons))
    blocks.append(
        context(
            f"Each link works once and expires {when(expires_at)}. When both sides are "
            "connected, the bot says so and when the first sync runs."
        )
    )
    return modal("Connect integration", blocks, callback_id=ids.CONNECT_CALLBACK, close="Done")


def notice_modal(message: Json) -> Json:
    """A message in a modal: what a click on App Home came to, where there is no channel to
    answer in."""
    blocks = [block for block in Block.parse_all(message["blocks"]) if block is not None]
    return modal("Amazon Xero Bot", blocks, callback_id=ids.NOTICE_CALLBACK, close="Close")


def errors_response(errors: Mapping[str, str]) -> Json:
    """A view_submission answer that shows each message on its field. Messages for fields
    this modal does not have go on the name field, so none is lost."""
    fields = {field.block for field in ids.SETUP_FIELDS} | {
        ids.NEW_TAX_KEY.block,
        ids.NEW_TAX_TYPE.block,
        ids.VAT_RATES.block,
        ids.PAYOUT_ACCOUNTS.block,
        ids.CLEARING_ACCOUNTS.block,
        ids.LINE_ACCOUNTS.block,
        ids.CONTACT_POLICY.block,
    }
    shown: dict[str, str] = {}
    for key, text in errors.items():
        block = key if key in fields or key.startswith(ids.TAX_BLOCK_PREFIX) else ids.NAME.block
        shown[block] = f"{shown[block]} {text}" if block in shown else text
    return {"response_action": "errors", "errors": shown}


# --- reading submissions ---------------------------------------------------------------------


def _state(values: Mapping[str, Any], field: ids.Field) -> Mapping[str, Any]:
    return values.get(field.block, {}).get(field.action) or {}


def _text(values: Mapping[str, Any], field: ids.Field) -> str:
    return (_state(values, field).get("value") or "").strip()


def _selected(values: Mapping[str, Any], field: ids.Field) -> str | None:
    option = _state(values, field).get("selected_option")
    return option.get("value") if option else None


def parse_setup_submission(values: Mapping[str, Any]) -> SetupValues:
    """view.state.values of the setup (or settings) modal as plain values. What only a service
    can judge (name taken, region of each marketplace, date in the future) is left to it."""
    errors: dict[str, str] = {}
    region_text = _selected(values, ids.REGION) or ""
    start_text = _state(values, ids.START_DATE).get("selected_date")
    if region_text not in {r.value for r in Region}:
        errors[ids.REGION.block] = "Choose the Amazon region."
    try:
        start = date.fromisoformat(str(start_text)) if start_text else None
    except ValueError:
        start = None
    if start is None:
        errors[ids.START_DATE.block] = "Choose a start date."
    status = _selected(values, ids.INVOICE_STATUS)
    if status is not None and status not in {s.value for s in InvoiceStatus}:
        errors[ids.INVOICE_STATUS.block] = "Choose how invoices are saved in Xero."
    if errors or start is None:
        raise InvalidInput(errors)
    return {
        "name": " ".join(_text(values, ids.NAME).split()),
        "region": Region(region_text),
        "marketplaces": [
            option["value"]
            for option in _state(values, ids.MARKETPLACES).get("selected_options") or []
        ],
        "start_date": start,
        "invoice_status": InvoiceStatus(status) if status else InvoiceStatus.AUTHORISED,
        "sales_account_code": _text(values, ids.SALES_ACCOUNT_CODE),
        "shipping_account_code": _text(values, ids.SHIPPING_ACCOUNT_CODE),
        "errors_channel": _state(values, ids.ERRORS_CHANNEL).get("selected_conversation"),
        "summary_channel": _state(values, ids.SUMMARY_CHANNEL).get("selected_conversation"),
    }


def setup_form_values(values: SetupValues) -> dict[str, Any]:
    """The view.state.values Slack sends for a setup modal filled in with `values`: the
    inverse of parse_setup_submission, for the demo and the tests that play a person."""
    state: dict[ids.Field, dict[str, Any]] = {
        ids.NAME: {"type": "plain_text_input", "value": values["name"]},
        ids.REGION: {"type": "static_select", "selected_option": {"value": values["region"]}},
        ids.MARKETPLACES: {
            "type": "multi_static_select",
            "selected_options": [{"value": m} for m in values["marketplaces"]],
        },
        ids.START_DATE: {
            "type": "datepicker",
            "selected_date": values["start_date"].isoformat(),
        },
        ids.INVOICE_STATUS: {
            "type": "radio_buttons",
            "selected_option": {"value": values["invoice_status"].value},
        },
        ids.SALES_ACCOUNT_CODE: {
            "type": "plain_text_input",
            "value": values["sales_account_code"],
        },
        ids.SHIPPING_ACCOUNT_CODE: {
            "type": "plain_text_input",
            "value": values["shipping_account_code"],
        },
        ids.ERRORS_CHANNEL: {
            "type": "conversations_select",
            "selected_conversation": values["errors_channel"],
        },
        ids.SUMMARY_CHANNEL: {
            "type": "conversations_select",
            "selected_conversation": values["summary_channel"],
        },
    }
    return {field.block: {field.action: value} for field, value in state.items()}


# "DE domestic 19", "DE:domestic 19%", "de domestic: 5,5 %": country, scheme, percent.
_VAT_RATE_LINE = re.compile(r"([A-Za-z]+)\s*[:\s]\s*([A-Za-z_]+)\s*:?\s*([^\s%]+)\s*%?")


def _vat_rate_lines(text: str) -> dict[str, str]:
    """The own VAT rates field as {"DE:domestic": "19"}; whether each is a real country,
    scheme and rate is the service's to judge. A line it cannot read is refused, naming it."""
    rates: dict[str, str] = {}
    lines = _field_lines(
        text, ids.VAT_RATES, _VAT_RATE_LINE, "country, scheme and percent, e.g. DE domestic 19"
    )
    for number, (country, scheme, percent) in lines:
        key = own_rate_key(country, scheme)
        if key in rates:
            raise InvalidInput(
                {ids.VAT_RATES.block: f"Line {number}: {country} {scheme} is set twice."}
            )
        rates[key] = percent
    return rates


_CURRENCY_ACCOUNT_LINE = re.compile(r"([A-Za-z]{3})\s*[:=\s]\s*(\S+)")
_LINE_ACCOUNT_LINE = re.compile(r"([A-Za-z_]+)\s*[:=\s]\s*(\S+)(?:\s+(\S+))?")


def _currency_account_lines(text: str, field: ids.Field) -> dict[str, str]:
    """An accounts-per-currency field as {"EUR": "091"}; whether each is a real currency and
    code is the service's to judge. A line it cannot read is refused, naming it."""
    accounts: dict[str, str] = {}
    lines = _field_lines(
        text, field, _CURRENCY_ACCOUNT_LINE, "the currency and the account code, e.g. EUR 091"
    )
    for number, (written, code) in lines:
        currency = written.upper()
        if currency in accounts:
            raise InvalidInput({field.block: f"Line {number}: {currency} is set twice."})
        accounts[currency] = code
    return accounts


def _line_account_lines(text: str) -> dict[str, LineAccountChoice]:
    """The fee accounts field as {"referral": LineAccountChoice("6100", "INPUT2")}; whether
    each kind, code and tax type is real is the service's to judge."""
    choices: dict[str, LineAccountChoice] = {}
    lines = _field_lines(
        text,
        ids.LINE_ACCOUNTS,
        _LINE_ACCOUNT_LINE,
        "the kind, the account code and maybe a tax type, e.g. referral 6100 INPUT2",
    )
    for number, (written, code, tax_type) in lines:
        kind = written.lower()
        if kind in choices:
            raise InvalidInput({ids.LINE_ACCOUNTS.block: f"Line {number}: {kind} is set twice."})
        choices[kind] = LineAccountChoice(code, tax_type)
    return choices


def _field_lines(
    text: str, field: ids.Field, pattern: re.Pattern[str], what: str
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """A multiline field's non-blank lines, numbered, as `pattern`'s groups; the first line it
    cannot read is refused on the field, saying `what` to write."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = pattern.fullmatch(line.strip())
        if match is None:
            raise InvalidInput({field.block: f"Line {number} ({line.strip()[:40]}): write {what}."})
        yield number, match.groups()


def parse_settings_submission(
    values: Mapping[str, Any],
    *,
    current_overrides: Mapping[str, str] | None = None,
    current_vat_rates: Mapping[str, str] | None = None,
    current_payout_accounts: Mapping[str, str] | None = None,
    current_clearing_accounts: Mapping[str, str] | None = None,
    current_line_accounts: Mapping[str, LineAccountChoice] | None = None,
    current_contact_policy: ContactPolicy = ContactPolicy.BUYERS,
) -> SettingsValues:
    """The settings modal's values. `tax_overrides` is complete: the rows shown as chosen
    (Automatic drops an override), the new row if filled in, and the integration's
    `current_overrides` for keys the modal had no room to show. `vat_rates` is the field's
    lines, or `current_vat_rates` from a modal opened before it had the field."""
    setup = parse_setup_submission(values)
    shown: dict[str, str | None] = {}
    for block_id, actions_state in values.items():
        if block_id.startswith(ids.TAX_BLOCK_PREFIX):
            option = (actions_state.get(ids.TAX_TYPE_ACTION) or {}).get("selected_option")
            chosen = option.get("value") if option else None
            shown[block_id.removeprefix(ids.TAX_BLOCK_PREFIX)] = (
                None if chosen in (None, ids.AUTOMATIC_TAX_TYPE) else chosen
            )
    overrides = {
        key: tax_type for key, tax_type in (current_overrides or {}).items() if key not in shown
    }
    overrides |= {key: tax_type for key, tax_type in shown.items() if tax_type}
    new_key, new_type = _text(values, ids.NEW_TAX_KEY), _selected(values, ids.NEW_TAX_TYPE)
    if new_key or new_type:
        if not new_key:
            raise InvalidInput({ids.NEW_TAX_KEY.block: "Write the tax key this type is for."})
        try:
            key = str(TaxKey.parse(new_key))
        except ValueError as error:
            raise InvalidInput({ids.NEW_TAX_KEY.block: str(error)}) from None
        if not new_type:
            raise InvalidInput({ids.NEW_TAX_TYPE.block: f"Choose the Xero tax type for {key}."})
        overrides[key] = new_type
    vat_rates = (
        _vat_rate_lines(_text(values, ids.VAT_RATES))
        if ids.VAT_RATES.block in values
        else dict(current_vat_rates or {})
    )
    # A field a modal opened before it existed lacks keeps what is set.
    payout_accounts = (
        _currency_account_lines(_text(values, ids.PAYOUT_ACCOUNTS), ids.PAYOUT_ACCOUNTS)
        if ids.PAYOUT_ACCOUNTS.block in values
        else dict(current_payout_accounts or {})
    )
    clearing_accounts = (
        _currency_account_lines(_text(values, ids.CLEARING_ACCOUNTS), ids.CLEARING_ACCOUNTS)
        if ids.CLEARING_ACCOUNTS.block in values
        else dict(current_clearing_accounts or {})
    )
    line_accounts = (
        _line_account_lines(_text(values, ids.LINE_ACCOUNTS))
        if ids.LINE_ACCOUNTS.block in values
        else dict(current_line_accounts or {})
    )
    policy = _selected(values, ids.CONTACT_POLICY)
    return {
        **setup,
        "contact_policy": ContactPolicy(policy) if policy else current_contact_policy,
        "tax_overrides": overrides,
        "vat_rates": vat_rates,
        "payout_accounts": payout_accounts,
        "clearing_accounts": clearing_accounts,
        "line_accounts": line_accounts,
    }
