"""The App Home tab: a card per integration, with the buttons the viewer may use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block, ButtonElement

from handlers.blocks import ids
from handlers.blocks.common import (
    IntegrationOverview,
    Json,
    actions,
    button,
    card_text,
    context,
    divider,
    header,
    home,
    manage_buttons,
    page_bounds,
    pager,
    plural,
    section,
)

HOME_PAGE_SIZE = 25  # three blocks a card: 75 of a view's 100


def home_view(
    overviews: Sequence[IntegrationOverview], *, can_manage: bool, now: datetime, page: int = 0
) -> Json:
    """views.publish's view; HOME_PAGE buttons page through many integrations."""
    setup: ButtonElement | None = None
    if can_manage:
        setup = button("Set up an integration", ids.OPEN_SETUP, style="primary")
    total = len(overviews)
    intro = "Posts each month's Amazon transactions to Xero, exactly once."
    intro += f" {plural(total, 'integration')}." if total else " No integrations yet."
    blocks: list[Block] = [header("Amazon → Xero"), section(intro, accessory=setup)]
    if not can_manage:
        blocks.append(context("Only workspace admins can set up or change integrations."))
    page, start, end = page_bounds(total, page, HOME_PAGE_SIZE)
    for overview in overviews[start:end]:
        blocks += [divider(), section(card_text(overview, now))]
        if can_manage:
            blocks.append(actions(*manage_buttons(overview, now)))
    blocks += pager(ids.HOME_PAGE, total, page, HOME_PAGE_SIZE)
    return home(blocks)
