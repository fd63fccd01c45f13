"""The Bolt app over real HTTP: request signatures, and every listener through signed requests."""

from __future__ import annotations

import time

from tests.slack_helpers import SlackDriver


def test_only_requests_signed_by_slack_in_the_last_five_minutes_get_in(slack: SlackDriver) -> None:
    body = "token=x&team_id=T0SANDBOX&user_id=U0ADMIN&command=%2Famazon&text=help"
    assert slack.send(body, signed=False).status_code == 401
    assert slack.send(body, secret="not-the-signing-secret").status_code == 401
    assert slack.send(body, timestamp=int(time.time()) - 6 * 60).status_code == 401
    assert slack.command("help").status_code == 200
