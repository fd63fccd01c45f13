"""Plays Slack's side (tests, demo, bench): signed requests to the bot's /slack/events.

Payload shapes follow ../shared/samples/slack/ (Slack's own SDK test bodies).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier

from sandbox.slack import SlackSandbox

TEAM = "T0SANDBOX"
_ids = itertools.count(1)


class SlackDriver:
    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        slack: SlackSandbox,
        slack_url: str,
        *,
        session: requests.Session | None = None,
    ):
        self.events_url = f"{bot_url}/slack/events"
        self.secret = signing_secret
        self.slack = slack
        self.slack_url = slack_url
        # A session keeps connections alive (the bench); by default each request is new.
        self._http: Any = session or requests

    def send(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        secret: str | None = None,
        signed: bool = True,
    ) -> requests.Response:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp}
        if signed:
            verifier = SignatureVerifier(secret or self.secret)
            signature = verifier.generate_signature(timestamp=stamp, body=body)
            assert signature is not None  # None is only for a missing timestamp
            headers["X-Slack-Signature"] = signature
        return self._post(body.encode(), headers)

    def _post(self, data: bytes, headers: dict[str, str]) -> requests.Response:
        response: requests.Response = self._http.post(
            self.events_url, data=data, headers=headers, timeout=10
        )
        return response

    def response_url(self, key: str) -> str:
        return self.slack_url + self.slack.response_url(key)

    def command(
        self, text: str, *, user: str = "U0ADMIN", channel: str = "C0FINANCE", key: str = "cmd"
    ) -> requests.Response:
        body = urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": TEAM,
                "team_domain": "sandbox",
                "channel_id": channel,
                "channel_name": "finance",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/amazon",
                "text": text,
                "api_app_id": "A0SANDBOX",
                "response_url": self.response_url(key),
                "trigger_id": f"{next(_ids)}.{next(_ids)}.trigger",
            }
        )
        return self.send(body)

    def interaction(self, payload: dict[str, Any]) -> requests.Response:
        return self.send(urlencode({"payload": json.dumps(payload)}))

    def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0ADMIN",
        channel: str | None = "C0FINANCE",
        message: dict[str, Any] | None = None,
        key: str = "click",
    ) -> requests.Response:
        """A button in a message in `channel` (with `message`: that message's), or with
        `channel=None` on the user's App Home, where Slack sends no channel or response_url."""
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
            "api_app_id": "A0SANDBOX",
            "token": "legacy-verification-token",
            "trigger_id": f"{next(_ids)}.{next(_ids)}.trigger",
            "team": {"id": TEAM, "domain": "sandbox"},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "actions",
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if channel is None:
            payload["container"] = {"type": "view", "view_id": "V0HOME"}
            payload["view"] = {"id": "V0HOME", "type": "home", "blocks": []}
            return self.interaction(payload)
        payload["channel"] = {"id": channel, "name": "finance"}
        payload["response_url"] = self.response_url(key)
        if message is not None:
            payload["container"] = {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel,
                "is_ephemeral": False,
            }
            payload["message"] = message
        return self.interaction(payload)

    def submit(
        self, view: dict[str, Any], values: dict[str, Any], *, user: str = "U0ADMIN"
    ) -> requests.Response:
        submitted = view | {"state": {"values": values}}
        return self.interaction(
            {
                "type": "view_submission",
                "team": {"id": TEAM, "domain": "sandbox"},
                "user": {"id": user, "username": user.lower(), "team_id": TEAM},
                "api_app_id": "A0SANDBOX",
                "token": "legacy-verification-token",
                "trigger_id": f"{next(_ids)}.{next(_ids)}.trigger",
                "view": submitted,
                "response_urls": [],
            }
        )
