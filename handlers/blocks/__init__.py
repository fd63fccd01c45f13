"""Block Kit, built in one place: each message or view is a pure function of domain values.

Messages are `{"text": fallback, "blocks": [...]}`, ready for chat.postMessage, chat.update or
respond(**message); views are the dict views.open / views.update / views.publish take. Ids the
listeners match on are in `handlers.blocks.ids`. Nothing here reads the clock: time-dependent
builders take `now`.
"""

from handlers.blocks.authorization import (
    authorization_warning_message,
    connected_message,
    parse_xero_change_value,
    refresh_link_message,
    xero_change_answered_message,
    xero_change_message,
)
from handlers.blocks.commands import (
    COMMANDS,
    help_message,
    integration_list_message,
    logs_message,
    name_needed_message,
    nearest_command,
    notice_message,
    queued_retry_message,
    status_message,
    unknown_integration_message,
)
from handlers.blocks.common import IntegrationOverview
from handlers.blocks.home import home_view
from handlers.blocks.modals import (
    SettingsValues,
    SetupValues,
    connect_links_modal,
    errors_response,
    notice_modal,
    parse_settings_submission,
    parse_setup_submission,
    settings_modal,
    setup_form_values,
    setup_modal,
    stop_confirm_modal,
)
from handlers.blocks.runs import (
    budget_message,
    error_parent_message,
    error_thread_replies,
    failed_item_message,
    failure_group_message,
    failure_key,
    group_failures,
    parse_retry_items_value,
    progress_message,
    retry_items_value,
    run_failed_message,
    run_paused_message,
    summary_message,
    what_to_fix,
)
from handlers.blocks.settlements import reconciliation_message, settlement_message

__all__ = [
    "COMMANDS",
    "IntegrationOverview",
    "SettingsValues",
    "SetupValues",
    "authorization_warning_message",
    "budget_message",
    "connect_links_modal",
    "connected_message",
    "error_parent_message",
    "error_thread_replies",
    "errors_response",
    "failed_item_message",
    "failure_group_message",
    "failure_key",
    "group_failures",
    "help_message",
    "home_view",
    "integration_list_message",
    "logs_message",
    "name_needed_message",
    "nearest_command",
    "notice_message",
    "notice_modal",
    "parse_retry_items_value",
    "parse_settings_submission",
    "parse_setup_submission",
    "parse_xero_change_value",
    "progress_message",
    "queued_retry_message",
    "reconciliation_message",
    "refresh_link_message",
    "retry_items_value",
    "run_failed_message",
    "run_paused_message",
    "settings_modal",
    "settlement_message",
    "setup_form_values",
    "setup_modal",
    "status_message",
    "stop_confirm_modal",
    "summary_message",
    "unknown_integration_message",
    "what_to_fix",
    "xero_change_answered_message",
    "xero_change_message",
]
