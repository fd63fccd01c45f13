"""Slack's Web API on a loopback port: the methods the bot calls, answered in Slack's shapes.

`WebClient(token=..., base_url=f"{server.url}/api/")` talks to it unchanged. Besides answering,
it keeps what a workspace would show (channel messages, ephemerals, views) so tests and the demo
can read what the bot did. Errors are Slack's codes; block limits are checked as Slack checks them;
chat.postMessage is rate limited per channel (about one a second, with a short burst) and answers
429 with Retry-After when pushed harder. `faults` scripts any other failure.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request

from sandbox.faults import Faults
from services.http import Clock, TokenBucket

JSON = dict[str, Any]
Handler = Callable[[JSON], JSON]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT_CHARS = 40_000
MAX_VIEW_BYTES = 250_000
# Arguments Slack takes as JSON; form-encoded callers send them as JSON strings.
_JSON_ARGS = ("blocks", "attachments", "view")


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    # Whether the bot has been invited: posting anywhere else is not_in_channel.
    is_member: bool = True
    is_im: bool = False

    @property
    def label(self) -> str:
        return f"@{self.name}" if self.is_im else f"#{self.name}"


DEFAULT_CHANNELS = (
    Channel("C0GENERAL", "general"),
    Channel("C0FINANCE", "finance"),
    Channel("C0ERRORS", "errors"),
    Channel("C0RANDOM", "random", is_member=False),
)
DEFAULT_USERS: Mapping[str, Mapping[str, Any]] = {
    "U0ADMIN": {"name": "ada", "real_name": "Ada Admin", "is_admin": True, "is_owner": False},
    "U0VIEWER": {
        "name": "victor",
        "real_name": "Victor Viewer",
        "is_admin": False,
        "is_owner": False,
    },
}


class SlackError(Exception):
    """A Slack error answer: `{"ok": false, "error": code}` plus Slack's explanatory messages."""

    def __init__(
        self,
        error: str,
        *messages: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)
        self.status = status
        self.headers = dict(headers or {})


class _WouldWait(Exception):
    """Raised by the token bucket instead of sleeping: Slack refuses where a client would wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def _refuse(seconds: float) -> None:
    raise _WouldWait(seconds)


class SlackSandbox:
    def __init__(
        self,
        *,
        bot_token: str = "xoxb-sandbox-token",
        team_id: str = "T0SANDBOX",
        team: str = "Sandbox Finance",
        bot_user_id: str = "U0BOT",
        users: Mapping[str, Mapping[str, Any]] | None = None,
        channels: Iterable[Channel] = DEFAULT_CHANNELS,
        post_rate: float | None = 1.0,
        post_burst: int = 5,
        clock: Clock = time.monotonic,
    ) -> None:
        """`post_rate` is chat.postMessage's messages per second per channel (None: no limit)."""
        self.bot_token = bot_token
        self.team_id = team_id
        self.team = team
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id[1:]
        self.app_id = "A0SANDBOX"
        self.post_rate = post_rate
        self.post_burst = post_burst
        self._clock = clock
        self._users: dict[str, JSON] = {
            user_id: {"name": user_id.lower(), **info}
            for user_id, info in (DEFAULT_USERS if users is None else users).items()
        }
        self._users[bot_user_id] = {
            "name": "amazon-xero-bot",
            "real_name": "Amazon Xero Bot",
            "is_bot": True,
        }
        self._channels = {channel.id: channel for channel in channels}
        self._messages: dict[str, list[JSON]] = {}
        self._ephemerals: list[JSON] = []
        self._views: dict[str, JSON] = {}
        self._home_views: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._buckets: dict[str, TokenBucket] = {}
        self._calls: list[tuple[str, JSON]] = []
        self._seq = 0
        # Waitress serves requests on several threads; one lock keeps each call atomic.
        self._lock = threading.Lock()
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }
        self.app = Flask(__name__)
        self.faults = Faults()
        self.faults.install(self.app)
        self.app.add_url_rule("/api/<method>", "api", self._dispatch, methods=["GET", "POST"])
        # Stands in for hooks.slack.com: where a command's or a click's response_url points.
        self._responses: dict[str, list[JSON]] = {}
        self.app.add_url_rule(
            "/response_url/<key>", "response_url", self._response_url, methods=["POST"]
        )

    # What tests and the demo read.

    @property
    def calls(self) -> list[tuple[str, JSON]]:
        """Every call that reached the API, in order, as (method, arguments without the token)."""
        with self._lock:
            return copy.deepcopy(self._calls)

    def messages(self, channel: str) -> list[JSON]:
        """The channel's messages as they stand now (edits applied), replies included, by ts.

        `channel` is an id, a name (with or without '#') or a user id for the bot's DM with them;
        an unknown one is a KeyError, so a typo in a test fails loudly.
        """
        with self._lock:
            found = self._resolve(channel)
            if found is None:
                raise KeyError(channel)
            return copy.deepcopy(self._messages.get(found.id, []))

    def ephemerals(self, user: str) -> list[JSON]:
        with self._lock:
            return copy.deepcopy([e for e in self._ephemerals if e["user"] == user])

    def response_url(self, key: str) -> str:
        """A response_url for a request the test sends; `responses(key)` reads what came back."""
        return f"/response_url/{key}"

    def responses(self, key: str) -> list[JSON]:
        with self._lock:
            return copy.deepcopy(self._responses.get(key, []))

    def _response_url(self, key: str) -> Response:
        # Slack answers a response_url POST with plain "ok", not the Web API's JSON.
        body = request.get_json(silent=True) or {}
        with self._lock:
            self._responses.setdefault(key, []).append(body)
        return Response("ok", mimetype="text/plain")

    @property
    def views(self) -> dict[str, JSON]:
        """Views by id, as Slack last returned them."""
        with self._lock:
            return copy.deepcopy(self._views)

    def home_view(self, user: str) -> JSON | None:
        with self._lock:
            view_id = self._home_views.get(user)
            return None if view_id is None else copy.deepcopy(self._views[view_id])

    def transcript(self) -> list[str]:
        """The conversation as a reader would see it, oldest first, thread replies indented.

        Lines look like `#errors  bot: Sync failed`; an ephemeral names its only reader.
        """
        with self._lock:
            entries: list[tuple[str, list[str]]] = []
            for channel_id, messages in self._messages.items():
                label = self._channels[channel_id].label
                for message in messages:
                    if message.get("thread_ts", message["ts"]) != message["ts"]:
                        continue
                    lines = _lines(f"{label}  bot: ", message)
                    for reply in messages:
                        if reply.get("thread_ts") == message["ts"] and reply is not message:
                            lines += _lines("    ↳ bot: ", reply)
                    entries.append((message["ts"], lines))
            for ephemeral in self._ephemerals:
                label = self._channels[ephemeral["channel"]].label
                reader = self._users[ephemeral["user"]]["name"]
                entries.append(
                    (
                        ephemeral["ts"],
                        _lines(f"{label}  bot (only @{reader} sees this): ", ephemeral),
                    )
                )
        return [line for _, lines in sorted(entries, key=lambda e: e[0]) for line in lines]

    # Plumbing.

    def _dispatch(self, method: str) -> Response:
        args = _arguments()
        form_token = args.pop("token", None)
        token = _bearer(request.headers.get("Authorization")) or form_token
        with self._lock:
            self._calls.append((method, copy.deepcopy(args)))
            try:
                handler = self._methods.get(method)
                if handler is None:
                    raise SlackError("unknown_method", status=404)
                if not token:
                    raise SlackError("not_authed")
                if token != self.bot_token:
                    raise SlackError("invalid_auth")
                body: JSON = {"ok": True, **handler(args)}
                status, headers = 200, {}
            except SlackError as error:
                body = {"ok": False, "error": error.error}
                if error.messages:
                    body["response_metadata"] = {"messages": error.messages}
                status, headers = error.status, error.headers
        return Response(
            json.dumps(body), status=status, headers=headers, mimetype="application/json"
        )

    def _next_ts(self) -> str:
        self._seq += 1
        micros = self._seq * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve(self, ref: str) -> Channel | None:
        """A channel id, a name with or without '#', or a user id (the bot's DM with them)."""
        if ref in self._channels:
            return self._channels[ref]
        name = ref.removeprefix("#")
        for channel in self._channels.values():
            if not channel.is_im and channel.name == name:
                return channel
        if ref in self._users and ref != self.bot_user_id:
            im = Channel("D" + ref[1:], self._users[ref]["name"], is_im=True)
            return self._channels.setdefault(im.id, im)
        return None

    def _postable(self, args: JSON) -> Channel:
        channel = self._resolve(str(args.get("channel") or ""))
        if channel is None:
            raise SlackError("channel_not_found")
        if not channel.is_member:
            raise SlackError("not_in_channel")
        return channel

    def _throttle(self, channel: Channel) -> None:
        if self.post_rate is None:
            return
        bucket = self._buckets.get(channel.id)
        if bucket is None:
            bucket = TokenBucket(self.post_rate, self.post_burst, clock=self._clock, sleep=_refuse)
            self._buckets[channel.id] = bucket
        try:
            bucket.acquire()
        except _WouldWait as wait:
            retry_after = str(max(1, math.ceil(wait.seconds)))
            raise SlackError(
                "ratelimited", status=429, headers={"Retry-After": retry_after}
            ) from None

    def _lookup(self, channel: Channel, ts: str) -> JSON | None:
        return next((m for m in self._messages.get(channel.id, []) if m["ts"] == ts), None)

    def _save_view(self, view: JSON, view_id: str) -> JSON:
        """Store the view as Slack describes it (a new hash each time) and answer with it."""
        modal = view["type"] == "modal"
        self._views[view_id] = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view["type"],
            "title": view.get("title"),
            "submit": view.get("submit") if modal else None,
            "close": view.get("close") if modal else None,
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": self._next_ts(),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
        }
        return {"view": copy.deepcopy(self._views[view_id])}

    def _new_view_id(self) -> str:
        self._seq += 1
        return f"V0{self._seq:08d}"

    def _external_id_taken(self, external_id: object, but: str | None = None) -> bool:
        return bool(external_id) and any(
            v["external_id"] == external_id and v["id"] != but for v in self._views.values()
        )

    # Methods.

    def _auth_test(self, args: JSON) -> JSON:
        workspace = re.sub(r"[^a-z0-9]+", "-", self.team.lower()).strip("-")
        return {
            "url": f"https://{workspace}.slack.com/",
            "team": self.team,
            "user": self._users[self.bot_user_id]["name"],
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: JSON) -> JSON:
        channel = self._postable(args)
        self._throttle(channel)
        content = _content(args)
        messages = self._messages.setdefault(channel.id, [])
        thread_ts = args.get("thread_ts")
        parent = None
        if thread_ts:
            if not re.fullmatch(r"\d+\.\d+", str(thread_ts)):
                raise SlackError("invalid_thread_ts")
            parent = self._lookup(channel, str(thread_ts))
            if parent is None:
                raise SlackError("thread_not_found")
            # A reply to a reply joins the root's thread: Slack's threads are one level deep.
            parent = self._lookup(channel, parent.get("thread_ts") or parent["ts"]) or parent
        ts = self._next_ts()
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
            **content,
        }
        if parent is not None:
            message["thread_ts"] = parent["ts"]
            parent.update(
                thread_ts=parent["ts"],
                reply_count=parent.get("reply_count", 0) + 1,
                reply_users=[self.bot_user_id],
                latest_reply=ts,
            )
        messages.append(message)
        return {"channel": channel.id, "ts": ts, "message": copy.deepcopy(message)}

    def _update(self, args: JSON) -> JSON:
        channel = self._postable(args)
        if not args.get("ts"):
            raise SlackError("invalid_arguments", "[ERROR] missing required field: ts")
        message = self._lookup(channel, str(args["ts"]))
        if message is None:
            raise SlackError("message_not_found")
        # Blocks and attachments left out of the update are kept, as Slack keeps them: a
        # text-only edit of a blocks message changes nothing a reader sees.
        message.update(_content(args))
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel.id,
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _post_ephemeral(self, args: JSON) -> JSON:
        channel = self._postable(args)
        user = args.get("user")
        if user not in self._users or user == self.bot_user_id:
            raise SlackError("user_not_in_channel")
        ts = self._next_ts()
        ephemeral = {"type": "message", "channel": channel.id, "user": user, "ts": ts}
        ephemeral.update(_content(args))
        if args.get("thread_ts"):
            ephemeral["thread_ts"] = str(args["thread_ts"])
        self._ephemerals.append(ephemeral)
        return {"message_ts": ts}

    def _users_info(self, args: JSON) -> JSON:
        user_id = args.get("user")
        if user_id not in self._users:
            raise SlackError("user_not_found")
        info = self._users[user_id]
        user: JSON = {
            "id": user_id,
            "team_id": self.team_id,
            "deleted": False,
            "real_name": info.get("real_name", info["name"]),
            "tz": "Europe/London",
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": 1_700_000_000,
            **info,
        }
        user["profile"] = {
            "real_name": user["real_name"],
            "real_name_normalized": user["real_name"],
            "display_name": user["name"],
            "display_name_normalized": user["name"],
            "team": self.team_id,
        }
        return {"user": user}

    def _views_open(self, args: JSON) -> JSON:
        trigger = args.get("trigger_id") or args.get("interactivity_pointer")
        if not trigger:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: trigger_id")
        # Real triggers look like "12345.98765.abcd2358fdea" and expire after 3 s; being
        # single-use is the part a test can rely on.
        if "." not in str(trigger):
            raise SlackError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        view = _checked_view(args, ("modal",))
        if self._external_id_taken(view.get("external_id")):
            raise SlackError("duplicate_external_id")
        self._used_triggers.add(str(trigger))
        return self._save_view(view, self._new_view_id())

    def _views_update(self, args: JSON) -> JSON:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if bool(view_id) == bool(external_id):
            raise SlackError(
                "invalid_arguments", "[ERROR] exactly one of view_id or external_id is required"
            )
        current = (
            self._views.get(str(view_id))
            if view_id
            else next((v for v in self._views.values() if v["external_id"] == external_id), None)
        )
        if current is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view = _checked_view(args, (current["type"],))
        view.setdefault("external_id", current["external_id"])
        if self._external_id_taken(view["external_id"], but=current["id"]):
            raise SlackError("duplicate_external_id")
        return self._save_view(view, current["id"])

    def _views_publish(self, args: JSON) -> JSON:
        user_id = args.get("user_id")
        if user_id not in self._users or user_id == self.bot_user_id:
            raise SlackError("invalid_arguments", "invalid `user_id`")
        view = _checked_view(args, ("home",))
        # Each user has one Home tab: publishing again replaces it under the same view id.
        view_id = self._home_views.get(user_id)
        if view_id and args.get("hash") and args["hash"] != self._views[view_id]["hash"]:
            raise SlackError("hash_conflict")
        if self._external_id_taken(view.get("external_id"), but=view_id):
            raise SlackError("duplicate_external_id")
        view_id = view_id or self._new_view_id()
        self._home_views[user_id] = view_id
        return self._save_view(view, view_id)


# Request parsing.


def _arguments() -> JSON:
    """Query, form and JSON body merged, JSON-valued arguments decoded when sent as strings."""
    args: JSON = dict(request.args.items())
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            args.update(body)
    else:
        args.update(request.form.items())
    for key in _JSON_ARGS:
        if isinstance(args.get(key), str):
            # Undecodable stays a string: the method answers with its own invalid_* error.
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return None


def _content(args: JSON) -> JSON:
    """A message's text, blocks and attachments, checked as chat.postMessage checks them."""
    text = args.get("text")
    blocks = args.get("blocks")
    attachments = args.get("attachments")
    if blocks is not None and not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    if attachments is not None and not isinstance(attachments, list):
        raise SlackError("invalid_attachments")
    if not text and not blocks and not attachments:
        raise SlackError("no_text")
    if text and len(str(text)) > MAX_TEXT_CHARS:
        raise SlackError("msg_too_long")
    if blocks is not None:
        problems = _blocks_problems(blocks, MAX_MESSAGE_BLOCKS, "/blocks")
        if problems:
            raise SlackError("invalid_blocks", *problems)
    content: JSON = {"text": str(text or "")}
    if blocks is not None:
        content["blocks"] = blocks
    if attachments is not None:
        content["attachments"] = attachments
    return content


def _checked_view(args: JSON, types: tuple[str, ...]) -> JSON:
    view = args.get("view")
    if not isinstance(view, dict):
        raise SlackError("invalid_arguments", "[ERROR] missing required field: view")
    if len(json.dumps(view)) > MAX_VIEW_BYTES:
        raise SlackError("view_too_large")
    problems = _view_problems(view, types)
    if problems:
        raise SlackError("invalid_arguments", *problems)
    return copy.deepcopy(view)


# Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks), reported the way Slack
# reports them: "[ERROR] <what> [json-pointer:<where>]".

_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)


def _string(value: object, limit: int, at: str) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"[ERROR] must be more than 0 characters [json-pointer:{at}]"]
    if len(value) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{at}]"]
    return []


def _text(obj: object, limit: int, at: str) -> list[str]:
    """A text object's `text`: present, not empty, at most `limit` characters."""
    return _string(obj.get("text") if isinstance(obj, dict) else None, limit, f"{at}/text")


def _items(value: object, limit: int, at: str) -> list[str]:
    if not isinstance(value, list) or not value:
        return [f"[ERROR] must provide a non-empty array [json-pointer:{at}]"]
    if len(value) > limit:
        return [f"[ERROR] no more than {limit} items allowed [json-pointer:{at}]"]
    return []


def _element_problems(element: JSON, at: str) -> list[str]:
    problems = []
    if "action_id" in element:
        problems += _string(element["action_id"], 255, f"{at}/action_id")
    if element.get("type") == "button":
        problems += _text(element.get("text"), 75, f"{at}/text")
        if "value" in element:
            problems += _string(element["value"], 2000, f"{at}/value")
        if "url" in element:
            problems += _string(element["url"], 3000, f"{at}/url")
    if "options" in element:
        problems += _items(element["options"], 100, f"{at}/options")
        for i, option in enumerate(element["options"] or []):
            option = option if isinstance(option, dict) else {}
            problems += _text(option.get("text"), 75, f"{at}/options/{i}/text")
            problems += _string(option.get("value"), 150, f"{at}/options/{i}/value")
    return problems


def _block_problems(block: JSON, at: str) -> list[str]:
    kind = block["type"]
    problems = []
    if kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"[ERROR] must provide text or fields [json-pointer:{at}]")
        if "text" in block:
            problems += _text(block["text"], 3000, f"{at}/text")
        if "fields" in block:
            problems += _items(block["fields"], 10, f"{at}/fields")
            for i, field in enumerate(block["fields"] or []):
                problems += _text(field, 2000, f"{at}/fields/{i}")
        if isinstance(block.get("accessory"), dict):
            problems += _element_problems(block["accessory"], f"{at}/accessory")
    elif kind == "header":
        problems += _text(block.get("text"), 150, f"{at}/text")
    elif kind == "markdown":
        problems += _string(block.get("text"), 12_000, f"{at}/text")
    elif kind == "context":
        problems += _items(block.get("elements"), 10, f"{at}/elements")
    elif kind == "actions":
        problems += _items(block.get("elements"), 25, f"{at}/elements")
        for i, element in enumerate(block.get("elements") or []):
            if not isinstance(element, dict):
                problems.append(f"[ERROR] must be an object [json-pointer:{at}/elements/{i}]")
            else:
                problems += _element_problems(element, f"{at}/elements/{i}")
    elif kind == "input":
        problems += _text(block.get("label"), 2000, f"{at}/label")
        if not isinstance(block.get("element"), dict):
            problems.append(f"[ERROR] missing required field: element [json-pointer:{at}]")
        else:
            problems += _element_problems(block["element"], f"{at}/element")
    return problems


def _blocks_problems(blocks: object, limit: int, at: str) -> list[str]:
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{at}]"]
    problems = []
    if len(blocks) > limit:
        problems.append(f"[ERROR] no more than {limit} items allowed [json-pointer:{at}]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"{at}/{i}"
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            problems.append(f"[ERROR] unsupported type [json-pointer:{where}/type]")
            continue
        if "block_id" in block:
            block_id = block["block_id"]
            problems += _string(block_id, 255, f"{where}/block_id")
            if isinstance(block_id, str) and block_id in block_ids:
                problems.append(f"[ERROR] duplicate block_id [json-pointer:{where}/block_id]")
            elif isinstance(block_id, str):
                block_ids.add(block_id)
        problems += _block_problems(block, where)
    return problems


def _view_problems(view: JSON, types: tuple[str, ...]) -> list[str]:
    if view.get("type") not in types:
        return [f"[ERROR] must be one of {', '.join(types)} [json-pointer:/view/type]"]
    problems = []
    if view["type"] == "modal":
        problems += _text(view.get("title"), 24, "/view/title")
        for button in ("submit", "close"):
            if button in view:
                problems += _text(view[button], 24, f"/view/{button}")
        has_inputs = any(
            isinstance(block, dict) and block.get("type") == "input"
            for block in view.get("blocks") or []
        )
        if has_inputs and "submit" not in view:
            problems.append("[ERROR] input blocks need a submit button [json-pointer:/view]")
    for key, limit in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
        if len(str(view.get(key, ""))) > limit:
            problems.append(
                f"[ERROR] must be less than {limit + 1} characters [json-pointer:/view/{key}]"
            )
    problems += _blocks_problems(view.get("blocks", []), MAX_VIEW_BLOCKS, "/view/blocks")
    return problems


# Reading messages back as text.


def _lines(prefix: str, message: JSON) -> list[str]:
    shown = _render(message["blocks"]) if message.get("blocks") else message["text"]
    first, *rest = shown.splitlines() or [""]
    lines = [prefix + first, *(" " * len(prefix) + line for line in rest)]
    if "edited" in message:
        lines[-1] += " (edited)"
    return lines


def _label(element: JSON) -> str:
    text = element.get("text") or element.get("placeholder")
    return f"[{text['text']}]" if isinstance(text, dict) else f"[{element.get('type')}]"


def _render(blocks: list[JSON]) -> str:
    """What Slack shows for blocks, roughly: texts in order, buttons and selects as [labels]."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "divider":
            lines.append("---")
        elif kind in ("header", "section"):
            if isinstance(block.get("text"), dict):
                lines.append(block["text"]["text"])
            lines += [field["text"] for field in block.get("fields", [])]
            if isinstance(block.get("accessory"), dict):
                lines.append(_label(block["accessory"]))
        elif kind == "markdown":
            lines.append(block["text"])
        elif kind == "context":
            lines.append(" ".join(e["text"] for e in block["elements"] if "text" in e))
        elif kind == "actions":
            lines.append(" ".join(_label(e) for e in block["elements"]))
        elif kind == "input":
            lines.append(f"{block['label']['text']}: {_label(block['element'])}")
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
    return "\n".join(lines)
