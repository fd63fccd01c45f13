"""`/amazon <command>` without the integration's name: through the real Bolt app, signed."""

from __future__ import annotations

import json
from datetime import date

import pytest

from bot.container import Container
from handlers.blocks.commands import COMMANDS
from handlers.errors import UNEXPECTED
from sandbox.slack_driver import TEAM, SlackDriver
from services.integrations import IntegrationSpec
from services.marketplaces import Region
from tests.test_slack_app import wait_for

NAMED = [command.name for command in COMMANDS if command.arguments.startswith("NAME")]


def test_every_command_that_takes_a_name_is_covered() -> None:
    assert set(NAMED) == {"settings", "stop", "activate", "refresh", "sync", "status", "logs"}


@pytest.mark.parametrize("text", [*NAMED, "sync 2026-01", "STATUS   "])
def test_a_command_without_a_name_says_what_to_type_and_which_names_exist(
    slack: SlackDriver, container: Container, text: str
) -> None:
    for name in ("Acme EU", "Acme UK"):
        spec = IntegrationSpec(name, Region.EU, ("A1PA6795UKMFR9",), date(2026, 1, 1))
        container.integrations.create(spec, actor="U0ADMIN", workspace_id=TEAM)
    action = text.split()[0].lower()

    assert slack.command(text, key="asked").status_code == 200
    [answer] = wait_for(lambda: slack.slack.responses("asked"))

    shown = json.dumps(answer)
    assert answer["response_type"] == "ephemeral"
    assert UNEXPECTED.split(";")[0] not in shown
    assert f"/amazon {action} NAME" in shown
    assert "Acme EU" in shown and "Acme UK" in shown


def test_without_a_name_and_no_integrations_it_says_how_to_set_one_up(slack: SlackDriver) -> None:
    slack.command("status", key="empty")
    [answer] = wait_for(lambda: slack.slack.responses("empty"))
    shown = json.dumps(answer)
    assert "/amazon status NAME" in shown and "/amazon setup" in shown
