"""The Slack sandbox, driven through slack_sdk's real WebClient over a loopback server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from sandbox.server import LoopbackServer
from sandbox.slack import SlackSandbox
from tests.conftest import SHARED

TOKEN = "xoxb-sandbox-token"
SAMPLE_VIEWS = SHARED / "samples" / "slack" / "python-slack-sdk-views"
TS = re.compile(r"^\d{10}\.\d{6}$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> SlackSandbox:
    return SlackSandbox(clock=clock)


@pytest.fixture
def server(sandbox: SlackSandbox) -> Iterator[LoopbackServer]:
    with LoopbackServer(sandbox.app) as server:
        yield server


@pytest.fixture
def client(server: LoopbackServer) -> WebClient:
    return WebClient(token=TOKEN, base_url=f"{server.url}/api/")


def slack_error(call: Callable[..., Any], **arguments: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call(**arguments)
    return caught.value


def error_code(call: Callable[..., Any], **arguments: Any) -> str:
    return str(slack_error(call, **arguments).response["error"])


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def modal(title: str = "Settings", blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "blocks": [section("Pick a store")] if blocks is None else blocks,
    }


HOME = {"type": "home", "blocks": [section("No stores connected yet")]}


def test_auth_test_says_who_the_bot_is(client: WebClient) -> None:
    assert client.auth_test().data == {
        "ok": True,
        "url": "https://sandbox-finance.slack.com/",
        "team": "Sandbox Finance",
        "user": "amazon-xero-bot",
        "team_id": "T0SANDBOX",
        "user_id": "U0BOT",
        "bot_id": "B0BOT",
        "is_enterprise_install": False,
    }


def test_a_wrong_or_missing_token_is_refused(server: LoopbackServer) -> None:
    api = f"{server.url}/api/"
    wrong = WebClient(token="xoxb-wrong", base_url=api)
    assert slack_error(wrong.auth_test).response.data == {"ok": False, "error": "invalid_auth"}
    assert slack_error(WebClient(base_url=api).auth_test).response["error"] == "not_authed"
    # Slack also takes the token as a form argument.
    assert requests.post(f"{api}auth.test", data={"token": TOKEN}, timeout=5).json()["ok"]


def test_post_message_answers_in_slacks_shape(client: WebClient, sandbox: SlackSandbox) -> None:
    first = client.chat_postMessage(channel="#errors", text="Sync failed", blocks=[section("x")])
    second = client.chat_postMessage(channel="C0ERRORS", text="Sync failed again")

    assert first["channel"] == "C0ERRORS"
    assert TS.match(first["ts"]) and second["ts"] > first["ts"]
    assert first["message"] == {
        "type": "message",
        "user": "U0BOT",
        "bot_id": "B0BOT",
        "app_id": "A0SANDBOX",
        "team": "T0SANDBOX",
        "ts": first["ts"],
        "text": "Sync failed",
        "blocks": [section("x")],
    }
    assert sandbox.messages("errors") == [first["message"], second["message"]]
    assert sandbox.calls[0] == (
        "chat.postMessage",
        {"channel": "#errors", "text": "Sync failed", "blocks": [section("x")]},
    )


def test_posting_where_the_bot_cannot(client: WebClient) -> None:
    post = client.chat_postMessage
    assert error_code(post, channel="#nope", text="hi") == "channel_not_found"
    assert error_code(post, channel="", text="hi") == "channel_not_found"
    # #random exists but nobody invited the bot.
    assert error_code(post, channel="#random", text="hi") == "not_in_channel"


def test_a_user_id_posts_to_the_bots_dm_with_them(client: WebClient, sandbox: SlackSandbox) -> None:
    posted = client.chat_postMessage(channel="U0ADMIN", text="Your sync finished")
    assert posted["channel"] == "D0ADMIN"
    assert [m["text"] for m in sandbox.messages("U0ADMIN")] == ["Your sync finished"]


def test_update_changes_the_message_in_place(client: WebClient, sandbox: SlackSandbox) -> None:
    posted = client.chat_postMessage(channel="#finance", text="Syncing…", blocks=[section("0%")])

    updated = client.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="Synced", blocks=[section("100%")]
    )
    assert (updated["channel"], updated["ts"], updated["text"]) == (
        "C0FINANCE",
        posted["ts"],
        "Synced",
    )
    [message] = sandbox.messages("#finance")
    assert message["ts"] == posted["ts"]
    assert (message["text"], message["blocks"]) == ("Synced", [section("100%")])
    assert message["edited"]["user"] == "U0BOT"

    # As on Slack, a text-only update keeps the blocks a reader sees.
    client.chat_update(channel="C0FINANCE", ts=posted["ts"], text="Done")
    [message] = sandbox.messages("#finance")
    assert (message["text"], message["blocks"]) == ("Done", [section("100%")])

    assert (
        error_code(client.chat_update, channel="C0FINANCE", ts="1.2", text="x")
        == "message_not_found"
    )


def test_thread_replies_keep_the_parent_ts(client: WebClient, sandbox: SlackSandbox) -> None:
    parent = client.chat_postMessage(channel="#errors", text="Sync failed for uk-store")
    reply = client.chat_postMessage(channel="#errors", text="Details", thread_ts=parent["ts"])
    # Replying to a reply lands in the same one-level thread.
    nested = client.chat_postMessage(channel="#errors", text="More", thread_ts=reply["ts"])

    assert reply["message"]["thread_ts"] == nested["message"]["thread_ts"] == parent["ts"]
    top, *replies = sandbox.messages("#errors")
    assert (top["thread_ts"], top["reply_count"], top["latest_reply"]) == (
        parent["ts"],
        2,
        nested["ts"],
    )
    assert [r["text"] for r in replies] == ["Details", "More"]

    post = client.chat_postMessage
    assert error_code(post, channel="#errors", text="x", thread_ts="1.000001") == "thread_not_found"
    assert error_code(post, channel="#errors", text="x", thread_ts="0") == "invalid_thread_ts"


def test_ephemeral_reaches_one_user_only(client: WebClient, sandbox: SlackSandbox) -> None:
    sent = client.chat_postEphemeral(channel="#finance", user="U0VIEWER", text="Admins only")

    assert sent.data == {"ok": True, "message_ts": sent["message_ts"]}
    assert TS.match(sent["message_ts"])
    [ephemeral] = sandbox.ephemerals("U0VIEWER")
    assert (ephemeral["channel"], ephemeral["text"]) == ("C0FINANCE", "Admins only")
    assert sandbox.ephemerals("U0ADMIN") == [] and sandbox.messages("#finance") == []

    assert (
        error_code(client.chat_postEphemeral, channel="#finance", user="U0NOBODY", text="x")
        == "user_not_in_channel"
    )


@pytest.mark.parametrize(("user", "admin"), [("U0ADMIN", True), ("U0VIEWER", False)])
def test_users_info_reports_admin_flags(client: WebClient, user: str, admin: bool) -> None:
    info = client.users_info(user=user)["user"]
    assert (info["id"], info["team_id"], info["is_admin"], info["is_owner"]) == (
        user,
        "T0SANDBOX",
        admin,
        False,
    )
    assert info["profile"]["real_name"] == info["real_name"]


def test_users_info_for_an_unknown_user(client: WebClient) -> None:
    assert error_code(client.users_info, user="U0NOBODY") == "user_not_found"


def test_custom_users_replace_the_defaults() -> None:
    sandbox = SlackSandbox(users={"U0OWNER": {"name": "olga", "is_admin": True, "is_owner": True}})
    with LoopbackServer(sandbox.app) as server:
        client = WebClient(token=TOKEN, base_url=f"{server.url}/api/")
        assert client.users_info(user="U0OWNER")["user"]["is_owner"] is True
        assert error_code(client.users_info, user="U0ADMIN") == "user_not_found"


def test_views_open_exchanges_a_trigger_once(client: WebClient, sandbox: SlackSandbox) -> None:
    opened = client.views_open(trigger_id="12345.98765.abcd", view=modal())

    view = opened["view"]
    assert view["id"].startswith("V") and view["root_view_id"] == view["id"]
    assert (view["team_id"], view["type"], view["title"]["text"]) == (
        "T0SANDBOX",
        "modal",
        "Settings",
    )
    assert view["blocks"] == modal()["blocks"] and view["hash"]
    assert sandbox.views == {view["id"]: view}

    opening = client.views_open
    assert (
        error_code(opening, trigger_id="12345.98765.abcd", view=modal()) == "exchanged_trigger_id"
    )
    assert error_code(opening, trigger_id="not-a-trigger", view=modal()) == "invalid_trigger_id"
    assert error_code(opening, trigger_id="1.2.3", view=HOME) == "invalid_arguments"


def test_views_update_by_id_or_external_id_checks_the_hash(client: WebClient) -> None:
    view = client.views_open(trigger_id="1.1.a", view={**modal(), "external_id": "setup-1"})["view"]

    by_id = client.views_update(view_id=view["id"], hash=view["hash"], view=modal("Step 2"))["view"]
    assert (by_id["id"], by_id["title"]["text"], by_id["external_id"]) == (
        view["id"],
        "Step 2",
        "setup-1",
    )
    assert by_id["hash"] != view["hash"]

    stale = error_code(client.views_update, view_id=view["id"], hash=view["hash"], view=modal())
    assert stale == "hash_conflict"

    by_external = client.views_update(external_id="setup-1", view=modal("Step 3"))["view"]
    assert (by_external["id"], by_external["title"]["text"]) == (view["id"], "Step 3")

    assert error_code(client.views_update, view_id="V404", view=modal()) == "not_found"


def test_views_publish_keeps_one_home_per_user(client: WebClient, sandbox: SlackSandbox) -> None:
    first = client.views_publish(user_id="U0ADMIN", view=HOME)["view"]
    connected = {"type": "home", "blocks": [section("uk-store: connected")]}
    second = client.views_publish(user_id="U0ADMIN", view=connected, hash=first["hash"])["view"]

    assert first["type"] == "home" and second["id"] == first["id"]
    assert sandbox.home_view("U0ADMIN") == second
    assert sandbox.home_view("U0VIEWER") is None

    stale = error_code(client.views_publish, user_id="U0ADMIN", view=HOME, hash=first["hash"])
    assert stale == "hash_conflict"
    assert error_code(client.views_publish, user_id="U0NOBODY", view=HOME) == "invalid_arguments"


@pytest.mark.parametrize("sample", sorted(SAMPLE_VIEWS.glob("*.json")), ids=lambda p: p.stem)
def test_slacks_own_sample_views_are_accepted(client: WebClient, sample: Path) -> None:
    view = json.loads(sample.read_text())
    if view["type"] == "home":
        assert client.views_publish(user_id="U0ADMIN", view=view)["ok"]
    else:
        assert client.views_open(trigger_id=f"1.2.{sample.stem}", view=view)["ok"]


def _blocks(n: int) -> list[dict[str, Any]]:
    return [section(f"row {i}") for i in range(n)]


POST = {"channel": "#general", "text": "fallback"}
HEADER_151 = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
TWIN_IDS = [section("a", block_id="b"), section("c", block_id="b")]


@pytest.mark.parametrize(
    ("method", "arguments", "error"),
    [
        pytest.param(
            "chat_postMessage", {**POST, "blocks": _blocks(51)}, "invalid_blocks", id="51"
        ),
        pytest.param(
            "chat_postMessage", {**POST, "text": "x" * 40_001}, "msg_too_long", id="40001"
        ),
        pytest.param(
            "chat_postMessage",
            {"channel": "#general"},
            "no_text",
            id="no text",
            marks=pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing"),
        ),
        pytest.param(
            "chat_postMessage", {**POST, "blocks": [HEADER_151]}, "invalid_blocks", id="h"
        ),
        pytest.param(
            "chat_postMessage", {**POST, "blocks": TWIN_IDS}, "invalid_blocks", id="twins"
        ),
        pytest.param(
            "chat_postMessage", {**POST, "blocks": [section("")]}, "invalid_blocks", id="0"
        ),
        pytest.param(
            "chat_postEphemeral",
            {**POST, "user": "U0ADMIN", "blocks": _blocks(51)},
            "invalid_blocks",
            id="ephemeral 51",
        ),
        pytest.param(
            "views_open",
            {"trigger_id": "1.1.1", "view": modal(blocks=_blocks(101))},
            "invalid_arguments",
            id="modal 101",
        ),
        pytest.param(
            "views_open",
            {"trigger_id": "1.1.2", "view": modal("t" * 25)},
            "invalid_arguments",
            id="title 25",
        ),
        pytest.param(
            "views_publish",
            {"user_id": "U0ADMIN", "view": {"type": "home", "blocks": _blocks(101)}},
            "invalid_arguments",
            id="home 101",
        ),
    ],
)
def test_block_limits_surface_as_slack_api_errors(
    client: WebClient, method: str, arguments: dict[str, Any], error: str
) -> None:
    raised = slack_error(getattr(client, method), **arguments)
    assert raised.response["error"] == error
    if error in ("invalid_blocks", "invalid_arguments"):
        assert raised.response["response_metadata"]["messages"][0].startswith("[ERROR]")


def test_the_limits_themselves_are_allowed(client: WebClient) -> None:
    channel = POST["channel"]
    assert client.chat_postMessage(channel=channel, text=POST["text"], blocks=_blocks(50))["ok"]
    assert client.chat_postMessage(channel=channel, text="x" * 40_000)["ok"]
    assert client.views_open(trigger_id="1.1.1", view=modal("t" * 24, _blocks(100)))["ok"]


def test_form_encoded_calls_send_blocks_as_a_json_string(
    client: WebClient, sandbox: SlackSandbox
) -> None:
    posted = client.api_call(
        "chat.postMessage",
        data={"channel": "general", "text": "hi", "blocks": json.dumps([section("hi")])},
    )
    assert (
        sandbox.messages("#general")[0]["blocks"] == [section("hi")] == posted["message"]["blocks"]
    )

    garbled = {"channel": "general", "blocks": "[{"}
    assert error_code(client.api_call, api_method="chat.postMessage", data=garbled) == (
        "invalid_blocks_format"
    )


def test_users_info_takes_get_query_arguments(server: LoopbackServer) -> None:
    answer = requests.get(
        f"{server.url}/api/users.info",
        params={"user": "U0ADMIN"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert answer.json()["user"]["is_admin"] is True


def test_posting_faster_than_slack_allows_answers_429(client: WebClient, clock: FakeClock) -> None:
    for i in range(5):  # the burst
        client.chat_postMessage(channel="#finance", text=f"order {i}")
    # Another channel has its own allowance.
    client.chat_postMessage(channel="#errors", text="unaffected")

    limited = slack_error(client.chat_postMessage, channel="#finance", text="one more")
    assert limited.response.status_code == 429
    assert limited.response.data == {"ok": False, "error": "ratelimited"}
    assert limited.response.headers["Retry-After"] == "1"

    clock.advance(1.0)
    assert client.chat_postMessage(channel="#finance", text="one more")["ok"]


def test_slack_sdks_retry_handler_waits_and_succeeds(
    server: LoopbackServer, sandbox: SlackSandbox, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)  # the sandbox's time passes; the test's does not

    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=sleep))
    client = WebClient(
        token=TOKEN,
        base_url=f"{server.url}/api/",
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    for i in range(6):
        client.chat_postMessage(channel="#finance", text=f"order {i}")

    assert len(waits) == 1 and waits[0] >= 1
    assert [m["text"] for m in sandbox.messages("#finance")] == [f"order {i}" for i in range(6)]
    assert [method for method, _ in sandbox.calls].count("chat.postMessage") == 7


def test_the_rate_limit_can_be_switched_off() -> None:
    sandbox = SlackSandbox(post_rate=None)
    with LoopbackServer(sandbox.app) as server:
        client = WebClient(token=TOKEN, base_url=f"{server.url}/api/")
        for i in range(20):
            client.chat_postMessage(channel="#finance", text=f"order {i}")
    assert len(sandbox.messages("#finance")) == 20


def test_scripted_faults_answer_first(client: WebClient, sandbox: SlackSandbox) -> None:
    sandbox.faults.add(
        "/api/chat.postMessage", 503, body={"ok": False, "error": "service_unavailable"}
    )

    failed = slack_error(client.chat_postMessage, channel="#errors", text="x")
    assert failed.response.status_code == 503
    assert client.chat_postMessage(channel="#errors", text="x")["ok"]


def test_unknown_methods_are_refused(client: WebClient) -> None:
    assert error_code(client.api_call, api_method="conversations.info") == "unknown_method"


def test_transcript_reads_like_the_workspace(client: WebClient, sandbox: SlackSandbox) -> None:
    parent = client.chat_postMessage(channel="#errors", text="Sync failed for uk-store")
    client.chat_postMessage(
        channel="#errors", text="Xero said: 429\nRetrying", thread_ts=parent["ts"]
    )
    client.chat_postEphemeral(channel="#finance", user="U0VIEWER", text="Admins only")
    progress = client.chat_postMessage(
        channel="#finance",
        text="fallback",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "uk-store, 2024-05"}},
            section("Posting 12 invoices…"),
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Logs"}, "value": "l"}
                ],
            },
        ],
    )
    client.chat_update(
        channel="C0FINANCE", ts=progress["ts"], text="Done", blocks=[section("Posted 12")]
    )

    assert sandbox.transcript() == [
        "#errors  bot: Sync failed for uk-store",
        "    ↳ bot: Xero said: 429",
        "           Retrying",
        "#finance  bot (only @victor sees this): Admins only",
        "#finance  bot: Posted 12 (edited)",
    ]
