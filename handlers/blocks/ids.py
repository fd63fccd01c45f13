"""Every callback_id, action_id and block_id the Block Kit builders use, in one place.

Listeners register on these names and read the values described here; the builders never use
a literal. Buttons about one integration carry its id (not its name: a name can change in
Settings while a message with the button stays in a channel).
"""

from __future__ import annotations

from typing import NamedTuple

# Views (callback_id). Their private_metadata is the integration id where there is one.
SETUP_CALLBACK = "setup"
SETTINGS_CALLBACK = "settings"
STOP_CALLBACK = "stop"
CONNECT_CALLBACK = "connect"  # the connect-links modal: no submit, only link buttons
NOTICE_CALLBACK = "notice"  # a modal that only tells what a click on App Home came to

# Buttons. Value: the integration id.
OPEN_SETTINGS = "open_settings"
STOP_INTEGRATION = "stop_integration"  # opens the stop confirmation
ACTIVATE_INTEGRATION = "activate_integration"
SYNC_NOW = "sync_now"
REFRESH_INTEGRATION = "refresh_integration"  # a fresh Amazon consent link
SEND_CONNECT_LINKS = "send_connect_links"  # fresh links for one not connected yet

# Buttons without a value.
OPEN_SETUP = "open_setup"

# Retry buttons.
RETRY_ITEM = "retry_item"  # value: the ledger item id
RETRY_ITEMS = "retry_items"  # value: "<run id>:<failure key>", see runs.retry_items_value
RETRY_ALL_FAILED = "retry_all_failed"  # value: the run id
RETRY_RUN = "retry_run"  # value: the run id
RETRY_SETTLEMENT = "retry_settlement"  # value: the settlement's row id (SettlementReport.row_id)

# A Xero consent for another organisation, held until an admin answers.
# Value: "<integration id>:<tenant id>", see authorization.xero_change_value.
CONFIRM_XERO_CHANGE = "confirm_xero_change"
CANCEL_XERO_CHANGE = "cancel_xero_change"

# Link buttons: Slack still sends block_actions for them, which the app must ack.
CONNECT_AMAZON = "connect_amazon"
CONNECT_XERO = "connect_xero"
OPEN_XERO = "open_xero"
OPEN_ERRORS = "open_errors"

# Paging buttons. Value: the page to show (0-based).
LIST_PAGE = "list_page"  # /amazon list, an ephemeral replaced through its response_url
HOME_PAGE = "home_page"  # App Home, published again


class Field(NamedTuple):
    """An input block and its element. The block id is the field's name in services'
    InvalidInput.errors, so a validation message lands on its field unchanged."""

    block: str
    action: str


NAME = Field("name", "name_input")
REGION = Field("region", "region_select")
MARKETPLACES = Field("marketplaces", "marketplaces_select")
START_DATE = Field("start_date", "start_date_picker")
INVOICE_STATUS = Field("invoice_status", "invoice_status_choice")
SALES_ACCOUNT_CODE = Field("sales_account_code", "sales_account_code_input")
SHIPPING_ACCOUNT_CODE = Field("shipping_account_code", "shipping_account_code_input")
ERRORS_CHANNEL = Field("errors_channel", "errors_channel_select")
SUMMARY_CHANNEL = Field("summary_channel", "summary_channel_select")
SETUP_FIELDS = (
    NAME,
    REGION,
    MARKETPLACES,
    START_DATE,
    INVOICE_STATUS,
    SALES_ACCOUNT_CODE,
    SHIPPING_ACCOUNT_CODE,
    ERRORS_CHANNEL,
    SUMMARY_CHANNEL,
)

# Settings only: one select per tax key, block id TAX_BLOCK_PREFIX + key ("tax:DE:19:domestic"),
# plus one optional row to map a key not seen yet.
TAX_BLOCK_PREFIX = "tax:"
TAX_TYPE_ACTION = "tax_type_select"
AUTOMATIC_TAX_TYPE = "auto"  # the select's "no override" choice; Xero's TaxTypes are upper case
NEW_TAX_KEY = Field("new_tax_key", "new_tax_key_input")
NEW_TAX_TYPE = Field("new_tax_type", "new_tax_type_select")
# Settings only: the seller's own VAT rates, one "DE domestic 19" a line.
VAT_RATES = Field("vat_rates", "vat_rates_input")
# Settings only: accounts per currency ("EUR 091") and per fee kind ("referral 6100 INPUT2").
PAYOUT_ACCOUNTS = Field("payout_accounts", "payout_accounts_input")
CONTACT_POLICY = Field("contact_policy", "contact_policy_choice")
CLEARING_ACCOUNTS = Field("clearing_accounts", "clearing_accounts_input")
LINE_ACCOUNTS = Field("line_accounts", "line_accounts_input")
