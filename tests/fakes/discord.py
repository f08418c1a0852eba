"""A loopback Discord for tests: a strict fake of the REST API, gateway payload builders, a harness.

Three layers, each usable alone:

* `FakeDiscordREST`: an aiohttp server on 127.0.0.1 that answers the REST calls a bot makes
  (login, application info, gateway URL, interaction callbacks, webhook follow-ups, channel
  messages, reactions, command sync) the way Discord does, checks the bot token, and records
  every call. Unknown routes answer 404 and land in `unknown_calls`, so a test can fail on them.
* Payload builders (`user_payload`, `guild_payload`, `message_payload`, ...): plain dicts shaped
  like the gateway's, fed to discord.py's own parsers (`ConnectionState.parse_*`), so the bot sees
  real `discord.Guild`, `discord.Member`, `discord.Message` and `discord.Interaction` objects.
* `DiscordHarness`: seeds a guild into a logged-in bot and dispatches interactions through the
  bot's real `CommandTree` and views, then returns what the bot answered, as recorded by the fake.

Why a real server rather than patched methods: discord.py builds every URL from
`discord.http.Route.BASE`, so pointing that at the fake exercises the bot's real HTTP path,
including the payloads discord.py serialises (allowed mentions, flags, components).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import discord
import pytest
from aiohttp import web
from discord import app_commands
from discord.ext import commands
from discord.http import Route

__all__ = [
    "BOT_TOKEN",
    "DiscordHarness",
    "FakeDiscordREST",
    "InteractionLog",
    "RecordedCall",
    "Reply",
    "SeededGuild",
    "channel_payload",
    "guild_payload",
    "member_payload",
    "message_payload",
    "next_snowflake",
    "role_payload",
    "seed_guild_payload",
    "use_discord_api_base",
    "user_payload",
    "voice_state_payload",
]

BOT_TOKEN = "fake-bot-token.MTIzNDU2Nzg5MDEyMzQ1Njc4.test"

# Interaction callback types (Discord's InteractionResponseType).
CALLBACK_MESSAGE = 4
CALLBACK_DEFERRED_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_AUTOCOMPLETE = 8
CALLBACK_MODAL = 9

EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Application flags Discord reports for the privileged intents (limited = under 100 guilds).
_FLAG_PRESENCE = (1 << 12) | (1 << 13)
_FLAG_MEMBERS = (1 << 14) | (1 << 15)
_FLAG_MESSAGE_CONTENT = (1 << 18) | (1 << 19)
_FLAG_COMMAND_BADGE = 1 << 23
# Gateway intents that need the flags above.
_INTENT_MEMBERS = 1 << 1
_INTENT_PRESENCES = 1 << 8
_INTENT_MESSAGE_CONTENT = 1 << 15

_snowflakes = itertools.count(discord.utils.time_snowflake(discord.utils.utcnow()))


def next_snowflake() -> int:
    """A fresh, realistic (time-based, 18-19 digit) snowflake, unique within the test run."""
    return next(_snowflakes)


def _now_iso() -> str:
    return discord.utils.utcnow().isoformat()


def _json(payload: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", as Discord sends it: discord.py compares the header verbatim.
    return web.Response(
        body=json.dumps(payload).encode(), status=status, content_type="application/json"
    )


def _error(status: int, message: str, code: int) -> web.Response:
    return _json({"message": message, "code": code}, status)


# --------------------------------------------------------------------------------------------
# Payload builders: the shapes the gateway sends, fed to discord.py's own parsers.
# --------------------------------------------------------------------------------------------


def user_payload(
    user_id: int | None = None,
    name: str = "user",
    *,
    bot: bool = False,
    global_name: str | None = None,
) -> dict[str, Any]:
    return {
        "id": str(user_id or next_snowflake()),
        "username": name,
        "global_name": global_name if global_name is not None else (None if bot else name.title()),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
    }


def role_payload(
    role_id: int,
    name: str,
    *,
    permissions: discord.Permissions | int = 0,
    position: int = 0,
    managed: bool = False,
    bot_id: int | None = None,
) -> dict[str, Any]:
    value = permissions.value if isinstance(permissions, discord.Permissions) else permissions
    payload: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(value),
        "managed": managed,
        "mentionable": False,
        "flags": 0,
    }
    if bot_id is not None:
        payload["tags"] = {"bot_id": str(bot_id)}
    return payload


def member_payload(
    user: dict[str, Any],
    *,
    roles: list[int] = (),  # type: ignore[assignment]
    nick: str | None = None,
    deaf: bool = False,
    mute: bool = False,
    permissions: int | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "user": user,
        "nick": nick,
        "avatar": None,
        "banner": None,
        "roles": [str(r) for r in roles],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "premium_since": None,
        "deaf": deaf,
        "mute": mute,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def overwrite_payload(
    target_id: int,
    *,
    role: bool = True,
    allow: discord.Permissions | int = 0,
    deny: discord.Permissions | int = 0,
) -> dict[str, Any]:
    allow_v = allow.value if isinstance(allow, discord.Permissions) else allow
    deny_v = deny.value if isinstance(deny, discord.Permissions) else deny
    return {
        "id": str(target_id),
        "type": 0 if role else 1,
        "allow": str(allow_v),
        "deny": str(deny_v),
    }


def channel_payload(
    channel_id: int,
    name: str,
    *,
    guild_id: int,
    kind: str = "text",
    parent_id: int | None = None,
    position: int = 0,
    user_limit: int = 0,
    overwrites: list[dict[str, Any]] | None = None,
    owner_id: int | None = None,
) -> dict[str, Any]:
    """A guild channel; kind is text, voice, stage, category or thread (public thread)."""
    types = {"text": 0, "voice": 2, "category": 4, "thread": 11, "stage": 13}
    payload: dict[str, Any] = {
        "id": str(channel_id),
        "type": types[kind],
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": overwrites or [],
        "parent_id": str(parent_id) if parent_id else None,
        "nsfw": False,
        "flags": 0,
    }
    if kind == "text":
        payload.update(topic=None, last_message_id=None, rate_limit_per_user=0)
    elif kind in ("voice", "stage"):
        payload.update(
            bitrate=64000,
            user_limit=user_limit,
            rtc_region=None,
            video_quality_mode=1,
            last_message_id=None,
            rate_limit_per_user=0,
        )
    elif kind == "thread":
        payload.update(
            owner_id=str(owner_id or 0),
            last_message_id=None,
            rate_limit_per_user=0,
            message_count=0,
            member_count=1,
            total_message_sent=0,
            thread_metadata={
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        )
        payload.pop("permission_overwrites")
    return payload


def voice_state_payload(
    guild_id: int,
    member: dict[str, Any],
    channel_id: int | None,
    *,
    self_mute: bool = False,
    self_deaf: bool = False,
    suppress: bool = False,
    request_to_speak: bool = False,
    session_id: str | None = None,
) -> dict[str, Any]:
    return {
        "guild_id": str(guild_id),
        "channel_id": str(channel_id) if channel_id else None,
        "user_id": member["user"]["id"],
        "member": member,
        "session_id": session_id or secrets.token_hex(16),
        "deaf": member.get("deaf", False),
        "mute": member.get("mute", False),
        "self_deaf": self_deaf,
        "self_mute": self_mute,
        "self_stream": False,
        "self_video": False,
        "suppress": suppress,
        "request_to_speak_timestamp": _now_iso() if request_to_speak else None,
    }


def guild_payload(
    guild_id: int,
    name: str,
    *,
    owner_id: int,
    roles: list[dict[str, Any]],
    channels: list[dict[str, Any]],
    threads: list[dict[str, Any]] = (),  # type: ignore[assignment]
    members: list[dict[str, Any]],
    voice_states: list[dict[str, Any]] = (),  # type: ignore[assignment]
    afk_channel_id: int | None = None,
    member_count: int | None = None,
) -> dict[str, Any]:
    """A GUILD_CREATE payload. member_count defaults to len(members) so discord.py never chunks."""
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(owner_id),
        "afk_channel_id": str(afk_channel_id) if afk_channel_id else None,
        "afk_timeout": 300,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "features": [],
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "application_id": None,
        "widget_enabled": False,
        "widget_channel_id": None,
        "premium_progress_bar_enabled": False,
        "roles": roles,
        "emojis": [],
        "stickers": [],
        "soundboard_sounds": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "large": False,
        "unavailable": False,
        "member_count": member_count if member_count is not None else len(members),
        "members": members,
        "channels": channels,
        "threads": list(threads),
        "voice_states": [
            {k: v for k, v in vs.items() if k not in ("guild_id", "member")} for vs in voice_states
        ],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "embedded_activities": [],
        "incidents_data": None,
    }


def message_payload(
    *,
    channel_id: int,
    author: dict[str, Any],
    content: str = "",
    message_id: int | None = None,
    guild_id: int | None = None,
    member: dict[str, Any] | None = None,
    embeds: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
    flags: int = 0,
    message_type: int = 0,
    webhook_id: int | None = None,
    application_id: int | None = None,
    mentions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A message object as REST returns it; with guild_id and member, as MESSAGE_CREATE sends it."""
    payload: dict[str, Any] = {
        "id": str(message_id or next_snowflake()),
        "type": message_type,
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": _now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "mention_channels": [],
        "attachments": [],
        "embeds": embeds or [],
        "reactions": [],
        "pinned": False,
        "flags": flags,
        "components": components or [],
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
    if member is not None:
        payload["member"] = {k: v for k, v in member.items() if k != "user"}
    if webhook_id is not None:
        payload["webhook_id"] = str(webhook_id)
    if application_id is not None:
        payload["application_id"] = str(application_id)
    return payload


# --------------------------------------------------------------------------------------------
# The REST fake.
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedCall:
    """One HTTP request the fake received, and what it answered."""

    method: str
    path: str  # relative to /api/v10, e.g. "/channels/123/messages"
    query: dict[str, str]
    json: Any
    authorization: str | None
    route: str | None  # the route template that matched, None for unknown routes
    status: int = 0
    response: Any = None


@dataclass
class Reply:
    """Something the bot did to answer one interaction, as Discord received it."""

    kind: (
        str  # callback | followup | edit_original | delete_original | edit_message | delete_message
    )
    type: int | None  # the callback type (4, 5, 6, 7, 8, 9) for kind == "callback", else None
    data: dict[str, Any]  # the JSON the bot sent (the callback's "data"; the whole body otherwise)
    message_id: int | None = None
    message: dict[str, Any] | None = None  # the message Discord created or edited, if any
    files: list[str] = field(default_factory=list)

    @property
    def content(self) -> str | None:
        return self.data.get("content")

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.data.get("embeds") or []

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.data.get("components") or []

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        return self.data.get("allowed_mentions")

    @property
    def pings_nobody(self) -> bool:
        """True when allowed_mentions forbids every ping (what AllowedMentions.none() sends).

        An absent allowed_mentions means Discord parses every mention in the content.
        """
        am = self.allowed_mentions
        return (
            am is not None
            and not am.get("parse")
            and not am.get("users")
            and not am.get("roles")
            and not am.get("replied_user", False)
        )

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        return self.data.get("choices") if self.type == CALLBACK_AUTOCOMPLETE else None

    @property
    def deferred(self) -> bool:
        return self.type in (CALLBACK_DEFERRED_MESSAGE, CALLBACK_DEFERRED_UPDATE)

    def text(self) -> str:
        """Content plus embed titles and descriptions: what a user reads, for loose assertions."""
        parts = [self.content or ""]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields", [])]
        return "\n".join(p for p in parts if p)


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int | None
    guild_id: int | None
    message_id: int | None = None  # the component's message, for type 3
    user: dict[str, Any] | None = None
    callback_type: int | None = None
    original_id: int | None = None
    replies: list[Reply] = field(default_factory=list)
    message_ids: set[int] = field(default_factory=set)


class FakeDiscordREST:
    """Discord's REST API on loopback, strict about tokens and interaction state.

    Knobs (plain attributes, change them any time):
      token: the bot token it accepts.
      message_content_intent / members_intent / presence_intent: whether the application has the
        privileged intent enabled in the developer portal (reported in the application flags, and
        enforced by the gateway in "identify" mode with close code 4014).
      gateway: "refuse" (default; the ws URL rejects the upgrade with 503) or "identify" (a minimal
        gateway: HELLO, IDENTIFY checks, READY, heartbeat ACKs).
      shards: the recommended shard count from /gateway/bot.
      strict_channels: channel routes 404 for channels not registered (seeding registers them).
    """

    def __init__(
        self,
        *,
        token: str = BOT_TOKEN,
        application_id: int | None = None,
        bot_name: str = "TTS Bot",
        owner_id: int | None = None,
    ) -> None:
        self.token = token
        self.application_id = application_id or next_snowflake()
        self.bot_user = user_payload(self.application_id, bot_name, bot=True)
        self.owner = user_payload(owner_id or next_snowflake(), "owner")
        self.message_content_intent = True
        self.members_intent = False
        self.presence_intent = False
        self.gateway = "refuse"
        self.shards = 1
        self.strict_channels = True

        self.calls: list[RecordedCall] = []
        self.interactions: dict[str, _Interaction] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}  # id -> {"guild_id", "type"}
        self.reactions: list[dict[str, Any]] = []
        self.voice_state_edits: list[dict[str, Any]] = []
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.gateway_sessions: list[dict[str, Any]] = []
        self.gateway_guilds: list[dict[str, Any]] = []  # GUILD_CREATE payloads sent after READY
        self._failures: list[tuple[str, re.Pattern[str], int, dict[str, Any], list[int]]] = []

        self._runner: web.AppRunner | None = None
        self.port: int = 0

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeDiscordREST:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway-ws", self._gateway_ws)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._dispatch)
        app.router.add_route("*", "/{tail:.*}", self._unknown_outside_api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscordREST:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What DISCORD_API_BASE / Route.BASE should be set to."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway-ws"

    # ---- knobs and queries -------------------------------------------------------------------

    @property
    def application_flags(self) -> int:
        flags = _FLAG_COMMAND_BADGE
        if self.message_content_intent:
            flags |= _FLAG_MESSAGE_CONTENT
        if self.members_intent:
            flags |= _FLAG_MEMBERS
        if self.presence_intent:
            flags |= _FLAG_PRESENCE
        return flags

    def fail(
        self,
        method: str,
        path_regex: str,
        *,
        status: int,
        code: int = 0,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` requests matching `path_regex` fail with Discord's error shape.

        e.g. fail("POST", r"/channels/\\d+/messages", status=403, code=50013,
        message="Missing Permissions").
        """
        body = {"message": message or f"{status}: injected failure", "code": code}
        self._failures.append((method.upper(), re.compile(path_regex), status, body, [times]))

    @property
    def unknown_calls(self) -> list[RecordedCall]:
        return [c for c in self.calls if c.route is None]

    def calls_to(self, method: str, path_regex: str) -> list[RecordedCall]:
        pattern = re.compile(path_regex)
        return [c for c in self.calls if c.method == method.upper() and pattern.fullmatch(c.path)]

    def replies(self, interaction_token: str) -> list[Reply]:
        return self.interactions[interaction_token].replies

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Messages the bot posted in a channel with its token (not interaction replies)."""
        return [
            m
            for m in self.messages.values()
            if int(m["channel_id"]) == channel_id
            and "webhook_id" not in m
            and m["author"]["id"] == self.bot_user["id"]
        ]

    def register_channel(self, channel_id: int, *, guild_id: int | None, channel_type: int) -> None:
        self.channels[channel_id] = {"guild_id": guild_id, "type": channel_type}

    def register_interaction(
        self,
        interaction_id: int,
        token: str,
        *,
        interaction_type: int,
        channel_id: int | None,
        guild_id: int | None,
        message_id: int | None = None,
        user: dict[str, Any] | None = None,
    ) -> None:
        """Tell the fake an interaction exists, so its callback and follow-ups are accepted."""
        self.interactions[token] = _Interaction(
            interaction_id, token, interaction_type, channel_id, guild_id, message_id, user
        )

    def store_message(self, payload: dict[str, Any]) -> None:
        self.messages[int(payload["id"])] = payload

    # ---- request plumbing ------------------------------------------------------------------

    _ROUTES: ClassVar[list[tuple[str, str, str, bool]]] = [
        # method, template, handler name, needs bot auth
        ("GET", "/users/@me", "_get_me", True),
        ("GET", "/oauth2/applications/@me", "_get_application", True),
        ("GET", "/applications/@me", "_get_application", True),
        ("GET", "/gateway", "_get_gateway", False),
        ("GET", "/gateway/bot", "_get_gateway_bot", True),
        ("POST", "/auth/logout", "_no_content", True),
        ("POST", "/interactions/{iid}/{token}/callback", "_interaction_callback", False),
        ("POST", "/webhooks/{app_id}/{token}", "_followup", False),
        ("GET", "/webhooks/{app_id}/{token}/messages/{mid}", "_webhook_get", False),
        ("PATCH", "/webhooks/{app_id}/{token}/messages/{mid}", "_webhook_edit", False),
        ("DELETE", "/webhooks/{app_id}/{token}/messages/{mid}", "_webhook_delete", False),
        ("POST", "/channels/{cid}/messages", "_channel_send", True),
        ("GET", "/channels/{cid}/messages/{mid}", "_channel_get_message", True),
        ("PATCH", "/channels/{cid}/messages/{mid}", "_channel_edit_message", True),
        ("DELETE", "/channels/{cid}/messages/{mid}", "_channel_delete_message", True),
        ("PUT", "/channels/{cid}/messages/{mid}/reactions/{emoji}/@me", "_reaction", True),
        ("DELETE", "/channels/{cid}/messages/{mid}/reactions/{emoji}/@me", "_reaction", True),
        ("POST", "/channels/{cid}/typing", "_typing", True),
        ("GET", "/applications/{app_id}/commands", "_get_commands", True),
        ("PUT", "/applications/{app_id}/commands", "_put_commands", True),
        ("GET", "/applications/{app_id}/guilds/{gid}/commands", "_get_commands", True),
        ("PUT", "/applications/{app_id}/guilds/{gid}/commands", "_put_commands", True),
        ("PATCH", "/guilds/{gid}/voice-states/@me", "_voice_state_edit", True),
        ("PATCH", "/guilds/{gid}/voice-states/{uid}", "_voice_state_edit", True),
    ]

    @staticmethod
    def _compile(template: str) -> re.Pattern[str]:
        escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        return re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", escaped) + "$")

    def _match(self, method: str, path: str) -> tuple[str, str, bool, dict[str, str]] | None:
        for r_method, template, handler, auth in self._ROUTES:
            if r_method != method:
                continue
            m = self._compile(template).match(path)
            if m:
                return template, handler, auth, m.groupdict()
        return None

    async def _read_body(self, request: web.Request) -> tuple[Any, list[str]]:
        if not request.body_exists:
            return None, []
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            files: list[str] = []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    files.append(part.filename or part.name or "")  # type: ignore[union-attr]
                    await part.read()  # type: ignore[union-attr]
            return payload, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw.decode(errors="replace"), []

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await self._read_body(request)
        match = self._match(request.method, path)
        call = RecordedCall(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            authorization=request.headers.get("Authorization"),
            route=match[0] if match else None,
        )
        self.calls.append(call)
        if match is None:
            response: web.Response = _error(
                404, f"404: Not Found (fake Discord has no {request.method} {path})", 0
            )
        else:
            _, handler, auth, params = match
            response = self._injected_failure(request.method, path) or (
                _error(401, "401: Unauthorized", 0)
                if auth and call.authorization != f"Bot {self.token}"
                else await getattr(self, handler)(request, params, body, files)
            )
        call.status = response.status
        if response.body is not None and response.content_type == "application/json":
            call.response = json.loads(response.body)  # type: ignore[arg-type]
        return response

    def _injected_failure(self, method: str, path: str) -> web.Response | None:
        for f_method, pattern, status, body, left in self._failures:
            if f_method == method and left[0] > 0 and pattern.fullmatch(path):
                left[0] -= 1
                return _json(body, status)
        return None

    async def _unknown_outside_api(self, request: web.Request) -> web.Response:
        self.calls.append(
            RecordedCall(
                request.method,
                request.path,
                dict(request.query),
                None,
                request.headers.get("Authorization"),
                None,
                404,
            )
        )
        return _error(404, "404: Not Found (outside /api/v10)", 0)

    # ---- login, application, gateway -------------------------------------------------------

    async def _get_me(self, *_: Any) -> web.Response:
        return _json(
            {
                **self.bot_user,
                "verified": True,
                "mfa_enabled": False,
                "locale": "en-US",
                "email": None,
            }
        )

    async def _get_application(self, *_: Any) -> web.Response:
        return _json(
            {
                "id": str(self.application_id),
                "name": self.bot_user["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": secrets.token_hex(32),
                "owner": self.owner,
                "team": None,
                "flags": self.application_flags,
                "bot": self.bot_user,
                "tags": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(self.gateway_guilds),
                "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
                "integration_types_config": {"0": {}},
            }
        )

    async def _get_gateway(self, *_: Any) -> web.Response:
        return _json({"url": self.gateway_url})

    async def _get_gateway_bot(self, *_: Any) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": self.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _no_content(self, *_: Any) -> web.Response:
        return web.Response(status=204)

    async def _gateway_ws(self, request: web.Request) -> web.StreamResponse:
        session: dict[str, Any] = {
            "query": dict(request.query),
            "identify": None,
            "closed_with": None,
        }
        self.gateway_sessions.append(session)
        if self.gateway != "identify":
            return web.Response(status=503, text="fake Discord: the gateway is not served in tests")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        seq = 0
        async for msg in ws:
            try:
                data = json.loads(msg.data)
            except (TypeError, ValueError):
                continue
            op = data.get("op")
            if op == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif op == 6:  # resume: refuse, the client will identify again
                await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
            elif op == 2:
                d = data["d"]
                session["identify"] = {k: v for k, v in d.items() if k != "token"}
                intents = int(d.get("intents", 0))
                denied = (
                    (intents & _INTENT_MESSAGE_CONTENT and not self.message_content_intent)
                    or (intents & _INTENT_MEMBERS and not self.members_intent)
                    or (intents & _INTENT_PRESENCES and not self.presence_intent)
                )
                if d.get("token") != self.token:
                    session["closed_with"] = 4004
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                if denied:
                    session["closed_with"] = 4014
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                seq += 1
                ready = {
                    "v": 10,
                    "user": {**self.bot_user, "verified": True, "mfa_enabled": False},
                    "guilds": [{"id": g["id"], "unavailable": True} for g in self.gateway_guilds],
                    "session_id": secrets.token_hex(16),
                    "resume_gateway_url": self.gateway_url,
                    "private_channels": [],
                    "application": {
                        "id": str(self.application_id),
                        "flags": self.application_flags,
                    },
                }
                if d.get("shard"):
                    ready["shard"] = d["shard"]
                await ws.send_json({"op": 0, "t": "READY", "s": seq, "d": ready})
                for guild in self.gateway_guilds:
                    seq += 1
                    await ws.send_json({"op": 0, "t": "GUILD_CREATE", "s": seq, "d": guild})
        return ws

    # ---- interactions ----------------------------------------------------------------------

    def _bot_message(
        self,
        channel_id: int | None,
        body: dict[str, Any],
        *,
        flags: int,
        message_type: int = 0,
        interaction: _Interaction | None = None,
    ) -> dict[str, Any]:
        msg = message_payload(
            channel_id=channel_id or 0,
            author=self.bot_user,
            content=body.get("content") or "",
            embeds=body.get("embeds"),
            components=body.get("components"),
            flags=flags,
            message_type=message_type,
            webhook_id=self.application_id if interaction else None,
            application_id=self.application_id if interaction else None,
        )
        if interaction is not None:
            msg["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.user or self.owner,
                "authorizing_integration_owners": {},
            }
            interaction.message_ids.add(int(msg["id"]))
        self.store_message(msg)
        return msg

    @staticmethod
    def _message_body_error(body: dict[str, Any]) -> web.Response | None:
        if len(body.get("content") or "") > 2000:
            return _json(
                {
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {
                        "content": {
                            "_errors": [
                                {
                                    "code": "BASE_TYPE_MAX_LENGTH",
                                    "message": "Must be 2000 or fewer in length.",
                                }
                            ]
                        }
                    },
                },
                400,
            )
        if not (
            body.get("content") or body.get("embeds") or body.get("components") or body.get("poll")
        ):
            return _error(400, "Cannot send an empty message", 50006)
        return None

    async def _interaction_callback(
        self, request: web.Request, params: dict[str, str], body: Any, files: list[str]
    ) -> web.Response:
        inter = self.interactions.get(params["token"])
        if inter is None or str(inter.id) != params["iid"]:
            return _error(404, "Unknown interaction", 10062)
        if inter.callback_type is not None:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        ctype = int(body.get("type", 0))
        data = body.get("data") or {}
        allowed = {
            2: {4, 5, 9},
            3: {4, 5, 6, 7, 9},
            4: {8},
            5: {4, 5, 6, 7},
        }.get(inter.type, set())
        if ctype not in allowed:
            return _error(
                400,
                f"Interaction callback type {ctype} is invalid for interaction type {inter.type}",
                50035,
            )
        if ctype in (CALLBACK_MESSAGE, CALLBACK_UPDATE_MESSAGE):
            # A new message may not be empty; an update may carry only flags or components.
            error = self._message_body_error(data) if ctype == CALLBACK_MESSAGE else None
            if error is not None:
                return error
        if ctype == CALLBACK_AUTOCOMPLETE and len(data.get("choices", [])) > 25:
            return _error(400, "Invalid Form Body (choices: must be 25 or fewer in length)", 50035)

        inter.callback_type = ctype
        flags = int(data.get("flags") or 0)
        reply = Reply("callback", ctype, data, files=files)
        interaction_info: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        resource: dict[str, Any] = {"type": ctype}
        if ctype in (CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE):
            msg_flags = (flags & EPHEMERAL) | (LOADING if ctype == CALLBACK_DEFERRED_MESSAGE else 0)
            msg = self._bot_message(
                inter.channel_id, data, flags=msg_flags, message_type=20, interaction=inter
            )
            inter.original_id = int(msg["id"])
            reply.message_id, reply.message = inter.original_id, msg
            resource["message"] = msg
            interaction_info.update(
                response_message_id=msg["id"],
                response_message_loading=ctype == CALLBACK_DEFERRED_MESSAGE,
                response_message_ephemeral=bool(flags & EPHEMERAL),
            )
        elif ctype == CALLBACK_UPDATE_MESSAGE and inter.message_id in self.messages:
            msg = self.messages[inter.message_id]
            self._apply_edit(msg, data)
            reply.message_id, reply.message = inter.message_id, msg
            resource["message"] = msg
            interaction_info["response_message_id"] = msg["id"]
        inter.replies.append(reply)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        return _json({"interaction": interaction_info, "resource": resource})

    def _webhook_interaction(self, params: dict[str, str]) -> _Interaction | web.Response:
        inter = self.interactions.get(params["token"])
        if params["app_id"] != str(self.application_id) or inter is None:
            return _error(404, "Unknown Webhook", 10015)
        if inter.callback_type is None:
            # Discord only accepts follow-ups once the interaction has been answered.
            return _error(404, "Unknown Webhook", 10015)
        return inter

    def _resolve_webhook_message(self, inter: _Interaction, mid: str) -> dict[str, Any] | None:
        message_id = inter.original_id if mid == "@original" else int(mid)
        if message_id is None or message_id not in inter.message_ids:
            return None
        return self.messages.get(message_id)

    @staticmethod
    def _apply_edit(msg: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("content", "embeds", "components"):
            if key in body:
                msg[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        msg["flags"] = int(msg.get("flags", 0)) & ~LOADING
        msg["edited_timestamp"] = _now_iso()

    async def _followup(
        self, request: web.Request, params: dict[str, str], body: Any, files: list[str]
    ) -> web.Response:
        inter = self._webhook_interaction(params)
        if isinstance(inter, web.Response):
            return inter
        body = body or {}
        error = self._message_body_error(body) if not files else None
        if error is not None:
            return error
        original = self.messages.get(inter.original_id or 0)
        if (
            inter.callback_type == CALLBACK_DEFERRED_MESSAGE
            and original
            and original["flags"] & LOADING
        ):
            # Discord turns the first follow-up after a "thinking" defer into the original response,
            # keeping the defer's ephemerality.
            self._apply_edit(original, body)
            msg = original
        else:
            msg = self._bot_message(
                inter.channel_id,
                body,
                flags=int(body.get("flags") or 0) & EPHEMERAL,
                interaction=inter,
            )
        inter.replies.append(Reply("followup", None, body, int(msg["id"]), msg, files))
        if request.query.get("wait") in ("1", "true", "True"):
            return _json(msg)
        return web.Response(status=204)

    async def _webhook_get(
        self, request: web.Request, params: dict[str, str], *_: Any
    ) -> web.Response:
        inter = self._webhook_interaction(params)
        if isinstance(inter, web.Response):
            return inter
        msg = self._resolve_webhook_message(inter, params["mid"])
        return _json(msg) if msg else _error(404, "Unknown Message", 10008)

    async def _webhook_edit(
        self, request: web.Request, params: dict[str, str], body: Any, files: list[str]
    ) -> web.Response:
        inter = self._webhook_interaction(params)
        if isinstance(inter, web.Response):
            return inter
        msg = self._resolve_webhook_message(inter, params["mid"])
        if msg is None:
            return _error(404, "Unknown Message", 10008)
        body = body or {}
        self._apply_edit(msg, body)
        kind = "edit_original" if params["mid"] == "@original" else "edit_message"
        inter.replies.append(Reply(kind, None, body, int(msg["id"]), msg, files))
        return _json(msg)

    async def _webhook_delete(
        self, request: web.Request, params: dict[str, str], *_: Any
    ) -> web.Response:
        inter = self._webhook_interaction(params)
        if isinstance(inter, web.Response):
            return inter
        msg = self._resolve_webhook_message(inter, params["mid"])
        if msg is None:
            return _error(404, "Unknown Message", 10008)
        self.messages.pop(int(msg["id"]), None)
        inter.message_ids.discard(int(msg["id"]))
        kind = "delete_original" if params["mid"] == "@original" else "delete_message"
        inter.replies.append(Reply(kind, None, {}, int(msg["id"]), msg))
        return web.Response(status=204)

    # ---- channels --------------------------------------------------------------------------

    def _check_channel(self, cid: str) -> web.Response | None:
        if self.strict_channels and int(cid) not in self.channels:
            return _error(404, "Unknown Channel", 10003)
        return None

    def _channel_message(self, cid: str, mid: str) -> dict[str, Any] | web.Response:
        error = self._check_channel(cid)
        if error is not None:
            return error
        msg = self.messages.get(int(mid))
        if msg is None or msg["channel_id"] != cid:
            return _error(404, "Unknown Message", 10008)
        return msg

    async def _channel_send(
        self, request: web.Request, params: dict[str, str], body: Any, files: list[str]
    ) -> web.Response:
        error = self._check_channel(params["cid"])
        if error is None and not files:
            error = self._message_body_error(body or {})
        if error is not None:
            return error
        body = body or {}
        msg = self._bot_message(int(params["cid"]), body, flags=int(body.get("flags") or 0))
        msg["allowed_mentions"] = body.get(
            "allowed_mentions"
        )  # kept for assertions; not in Discord's
        if body.get("message_reference"):
            msg["message_reference"] = body["message_reference"]
            msg["type"] = 19
        return _json(msg)

    async def _channel_get_message(
        self, request: web.Request, params: dict[str, str], *_: Any
    ) -> web.Response:
        msg = self._channel_message(params["cid"], params["mid"])
        return msg if isinstance(msg, web.Response) else _json(msg)

    async def _channel_edit_message(
        self, request: web.Request, params: dict[str, str], body: Any, *_: Any
    ) -> web.Response:
        msg = self._channel_message(params["cid"], params["mid"])
        if isinstance(msg, web.Response):
            return msg
        self._apply_edit(msg, body or {})
        return _json(msg)

    async def _channel_delete_message(
        self, request: web.Request, params: dict[str, str], *_: Any
    ) -> web.Response:
        msg = self._channel_message(params["cid"], params["mid"])
        if isinstance(msg, web.Response):
            return msg
        self.messages.pop(int(params["mid"]), None)
        return web.Response(status=204)

    async def _reaction(
        self, request: web.Request, params: dict[str, str], *_: Any
    ) -> web.Response:
        msg = self._channel_message(params["cid"], params["mid"])
        if isinstance(msg, web.Response):
            return msg
        self.reactions.append(
            {
                "action": "add" if request.method == "PUT" else "remove",
                "channel_id": int(params["cid"]),
                "message_id": int(params["mid"]),
                "emoji": params["emoji"],
            }
        )
        return web.Response(status=204)

    async def _typing(self, request: web.Request, params: dict[str, str], *_: Any) -> web.Response:
        return self._check_channel(params["cid"]) or web.Response(status=204)

    async def _voice_state_edit(
        self, request: web.Request, params: dict[str, str], body: Any, *_: Any
    ) -> web.Response:
        self.voice_state_edits.append(
            {"guild_id": int(params["gid"]), "user": params.get("uid", "@me"), **(body or {})}
        )
        return web.Response(status=204)

    # ---- commands --------------------------------------------------------------------------

    def _command_list(self, params: dict[str, str]) -> list[dict[str, Any]]:
        if "gid" in params:
            return self.guild_commands.setdefault(int(params["gid"]), [])
        return self.global_commands

    async def _get_commands(
        self, request: web.Request, params: dict[str, str], *_: Any
    ) -> web.Response:
        if params["app_id"] != str(self.application_id):
            return _error(403, "Missing Access", 50001)
        return _json(self._command_list(params))

    async def _put_commands(
        self, request: web.Request, params: dict[str, str], body: Any, *_: Any
    ) -> web.Response:
        if params["app_id"] != str(self.application_id):
            return _error(403, "Missing Access", 50001)
        if not isinstance(body, list) or len(body) > 100:
            return _error(400, "Invalid Form Body", 50035)
        names = [(c.get("name"), c.get("type", 1)) for c in body]
        if len(names) != len(set(names)):
            return _error(400, "Invalid Form Body (APPLICATION_COMMANDS_DUPLICATE_NAME)", 50035)
        current = {(c["name"], c["type"]): c for c in self._command_list(params)}
        stored = []
        for cmd in body:
            ctype = cmd.get("type", 1)
            old = current.get((cmd["name"], ctype))
            stored.append(
                {
                    "id": old["id"] if old else str(next_snowflake()),
                    "application_id": str(self.application_id),
                    "version": str(next_snowflake()),
                    "type": ctype,
                    "description": "",
                    "options": [],
                    "default_member_permissions": None,
                    "dm_permission": True,
                    "nsfw": False,
                    "integration_types": [0],
                    "contexts": None,
                    **cmd,
                    **({"guild_id": params["gid"]} if "gid" in params else {}),
                }
            )
        if "gid" in params:
            self.guild_commands[int(params["gid"])] = stored
        else:
            self.global_commands = stored
        return _json(stored)


@contextlib.contextmanager
def use_discord_api_base(api_base: str) -> Iterator[str]:
    """Point discord.py's REST (and webhook follow-ups) at `api_base`, restoring it afterwards."""
    previous = Route.BASE
    Route.BASE = api_base
    try:
        yield api_base
    finally:
        Route.BASE = previous


# --------------------------------------------------------------------------------------------
# The seeded guild.
# --------------------------------------------------------------------------------------------

EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    read_message_history=True,
    embed_links=True,
    add_reactions=True,
    connect=True,
    speak=True,
    use_voice_activation=True,
    request_to_speak=True,
    use_application_commands=True,
)
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, connect=True, speak=True
)


@dataclass
class SeededGuild:
    """Ids and payloads of a guild put into a bot's cache; objects are looked up fresh each time.

    Channels: category, general (text), lounge and quiet (voice), stage, afk (the AFK channel),
    thread (a public thread in general). Roles: everyone, admin (Manage Server), bot (the bot's
    managed role). Members: me (the bot), owner (admin role), alice and bob (no extra roles).
    """

    client: discord.Client
    id: int
    channel_ids: dict[str, int]
    role_ids: dict[str, int]
    members: dict[str, dict[str, Any]]  # key -> member payload (with "user")

    @property
    def guild(self) -> discord.Guild:
        guild = self.client.get_guild(self.id)
        assert guild is not None, "the seeded guild is no longer in the bot's cache"
        return guild

    def channel(self, key: str) -> Any:
        channel = self.guild.get_channel_or_thread(self.channel_ids[key])
        assert channel is not None, f"channel {key!r} is not in the cache"
        return channel

    def role(self, key: str) -> discord.Role:
        role = self.guild.get_role(self.role_ids[key])
        assert role is not None
        return role

    def member_id(self, key: str) -> int:
        return int(self.members[key]["user"]["id"])

    def member(self, key: str) -> discord.Member:
        """The real Member: from the cache if discord.py kept it, else built from its payload.

        With the bot's intents (no members intent) discord.py caches only members in voice.
        """
        payload = self.members[key]
        cached = self.guild.get_member(int(payload["user"]["id"]))
        if cached is not None:
            return cached
        return discord.Member(data=payload, guild=self.guild, state=self.client._connection)

    general = property(lambda self: self.channel("general"))
    lounge = property(lambda self: self.channel("lounge"))
    quiet = property(lambda self: self.channel("quiet"))
    stage = property(lambda self: self.channel("stage"))
    afk = property(lambda self: self.channel("afk"))
    thread = property(lambda self: self.channel("thread"))
    me = property(lambda self: self.member("me"))
    owner = property(lambda self: self.member("owner"))
    alice = property(lambda self: self.member("alice"))
    bob = property(lambda self: self.member("bob"))


def seed_guild_payload(
    bot_user: dict[str, Any], *, name: str, voice: dict[str, str]
) -> tuple[dict[str, Any], dict[str, int], dict[str, int], dict[str, dict[str, Any]]]:
    gid = next_snowflake()
    role_ids = {"everyone": gid, "admin": next_snowflake(), "bot": next_snowflake()}
    roles = [
        role_payload(gid, "@everyone", permissions=EVERYONE_PERMISSIONS, position=0),
        role_payload(
            role_ids["admin"],
            "Admin",
            permissions=discord.Permissions(manage_guild=True, move_members=True, mute_members=True)
            | EVERYONE_PERMISSIONS,
            position=1,
        ),
        role_payload(
            role_ids["bot"],
            bot_user["username"],
            permissions=BOT_PERMISSIONS,
            position=2,
            managed=True,
            bot_id=int(bot_user["id"]),
        ),
    ]
    users = {
        "me": bot_user,
        "owner": user_payload(None, "owner"),
        "alice": user_payload(None, "alice"),
        "bob": user_payload(None, "bob"),
    }
    member_roles = {"me": [role_ids["bot"]], "owner": [role_ids["admin"]], "alice": [], "bob": []}
    members = {k: member_payload(u, roles=member_roles[k]) for k, u in users.items()}
    ch = {
        k: next_snowflake()
        for k in ("category", "general", "lounge", "quiet", "stage", "afk", "thread")
    }
    channels = [
        channel_payload(ch["category"], "General", guild_id=gid, kind="category"),
        channel_payload(
            ch["general"], "general", guild_id=gid, parent_id=ch["category"], position=0
        ),
        channel_payload(
            ch["lounge"], "Lounge", guild_id=gid, kind="voice", parent_id=ch["category"], position=1
        ),
        channel_payload(
            ch["quiet"], "Quiet", guild_id=gid, kind="voice", parent_id=ch["category"], position=2
        ),
        channel_payload(
            ch["stage"], "Stage", guild_id=gid, kind="stage", parent_id=ch["category"], position=3
        ),
        channel_payload(ch["afk"], "AFK", guild_id=gid, kind="voice", position=4),
    ]
    threads = [
        channel_payload(
            ch["thread"],
            "thread",
            guild_id=gid,
            kind="thread",
            parent_id=ch["general"],
            owner_id=int(users["owner"]["id"]),
        )
    ]
    voice_states = [voice_state_payload(gid, members[m], ch[c]) for m, c in voice.items()]
    payload = guild_payload(
        gid,
        name,
        owner_id=int(users["owner"]["id"]),
        roles=roles,
        channels=channels,
        threads=threads,
        members=list(members.values()),
        voice_states=voice_states,
        afk_channel_id=ch["afk"],
    )
    return payload, ch, role_ids, members


# --------------------------------------------------------------------------------------------
# The harness.
# --------------------------------------------------------------------------------------------


@dataclass
class InteractionLog:
    """One dispatched interaction and what the bot answered (a live view of the fake's record)."""

    id: int
    token: str
    payload: dict[str, Any]
    _rest: FakeDiscordREST

    @property
    def replies(self) -> list[Reply]:
        return self._rest.replies(self.token)

    @property
    def callback(self) -> Reply | None:
        return next((r for r in self.replies if r.kind == "callback"), None)

    @property
    def followups(self) -> list[Reply]:
        return [r for r in self.replies if r.kind == "followup"]

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        return self.callback.choices if self.callback else None

    @property
    def last(self) -> Reply:
        assert self.replies, "the bot did not answer this interaction"
        return self.replies[-1]

    def __len__(self) -> int:
        return len(self.replies)

    def __getitem__(self, index: int) -> Reply:
        return self.replies[index]

    def __iter__(self) -> Iterator[Reply]:
        return iter(list(self.replies))


MemberLike = discord.abc.Snowflake | str | int


class DiscordHarness:
    """Drive a logged-in bot with gateway events and interactions, read what it sent to the fake."""

    def __init__(self, bot: discord.Client, rest: FakeDiscordREST, *, timeout: float = 5.0) -> None:
        self.bot = bot
        self.rest = rest
        self.timeout = timeout
        self.seeded: SeededGuild | None = None
        self._members: dict[int, dict[str, Any]] = {}  # user id -> member payload, per guild below
        self._member_guild: dict[int, int] = {}

    @property
    def state(self) -> Any:
        return self.bot._connection

    @property
    def guild(self) -> SeededGuild:
        assert self.seeded is not None, "call harness.seed_guild() first"
        return self.seeded

    # ---- dispatch plumbing -----------------------------------------------------------------

    async def dispatch(
        self, event: str, payload: dict[str, Any], *, time_limit: float | None = None
    ) -> None:
        """Feed a gateway event to discord.py's parser and wait for the tasks it spawned.

        The parser schedules listeners, the CommandTree invoker and view callbacks as tasks; those
        created by this very call are awaited (with a timeout) and their exceptions re-raised, so
        the test sees a crash in the handler. Tasks they start in turn are not awaited: use
        `wait_for_replies` for answers sent from the background.
        """
        parser = self.state.parsers[event]
        before = asyncio.all_tasks()
        parser(payload)
        spawned = asyncio.all_tasks() - before
        if spawned:
            done, pending = await asyncio.wait(spawned, timeout=time_limit or self.timeout)
            if pending:
                names = ", ".join(t.get_name() for t in pending)
                raise AssertionError(
                    f"{event} handling still running after {time_limit or self.timeout}s: {names}"
                )
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        await self.settle()

    async def settle(self, rounds: int = 3) -> None:
        """Give already-scheduled callbacks a few loop iterations to run."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def wait_for_replies(
        self, log: InteractionLog, count: int, *, time_limit: float | None = None
    ) -> list[Reply]:
        """Poll until the interaction has at least `count` replies (for background follow-ups)."""
        deadline = asyncio.get_running_loop().time() + (time_limit or self.timeout)
        while len(log.replies) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} replies, got {log.replies!r}")
            await asyncio.sleep(0.01)
        return log.replies

    # ---- guild seeding and membership ------------------------------------------------------

    async def seed_guild(
        self, *, name: str = "Test Guild", voice: dict[str, str] | None = None
    ) -> SeededGuild:
        """GUILD_CREATE a guild (see SeededGuild) into the bot.

        `voice` maps member keys to channel keys, e.g. {"alice": "lounge"}.
        """
        assert self.state.user is not None, "log the bot in first (the harness needs its user)"
        bot_user = {**self.rest.bot_user, "id": str(self.state.user.id)}
        payload, ch, roles, members = seed_guild_payload(bot_user, name=name, voice=voice or {})
        self.add_guild_payload(payload)
        self.seeded = SeededGuild(self.bot, int(payload["id"]), ch, roles, members)
        await self.dispatch("GUILD_CREATE", payload)
        return self.seeded

    def add_guild_payload(self, payload: dict[str, Any]) -> None:
        """Register a guild's channels and members with the fake and the harness (not the bot)."""
        gid = int(payload["id"])
        for channel in [*payload["channels"], *payload.get("threads", [])]:
            self.rest.register_channel(
                int(channel["id"]), guild_id=gid, channel_type=channel["type"]
            )
        for member in payload["members"]:
            self._members[int(member["user"]["id"])] = member
            self._member_guild[int(member["user"]["id"])] = gid
        if payload not in self.rest.gateway_guilds:
            self.rest.gateway_guilds.append(payload)

    async def add_member(
        self,
        name: str,
        *,
        roles: list[discord.abc.Snowflake] = (),
        bot: bool = False,  # type: ignore[assignment]
        guild: discord.abc.Snowflake | None = None,
    ) -> discord.Member:
        """GUILD_MEMBER_ADD a new member; returns the real Member."""
        guild_obj = self._guild(guild)
        payload = member_payload(user_payload(None, name, bot=bot), roles=[r.id for r in roles])
        self._members[int(payload["user"]["id"])] = payload
        self._member_guild[int(payload["user"]["id"])] = guild_obj.id
        await self.dispatch("GUILD_MEMBER_ADD", {**payload, "guild_id": str(guild_obj.id)})
        if self.seeded is not None and guild_obj.id == self.seeded.id:
            self.seeded.members[name] = payload
        return self.member(payload["user"]["id"])

    async def add_channel(
        self,
        name: str,
        *,
        kind: str = "voice",
        user_limit: int = 0,
        overwrites: list[dict[str, Any]] | None = None,
        guild: discord.abc.Snowflake | None = None,
    ) -> Any:
        """CHANNEL_CREATE a channel (kind: text, voice, stage, category); returns the real channel.

        `overwrites` are `overwrite_payload(...)` dicts, e.g. deny Connect to the bot's role.
        """
        guild_obj = self._guild(guild)
        cid = next_snowflake()
        payload = channel_payload(
            cid,
            name,
            guild_id=guild_obj.id,
            kind=kind,
            user_limit=user_limit,
            overwrites=overwrites,
            position=len(guild_obj.channels),
        )
        self.rest.register_channel(cid, guild_id=guild_obj.id, channel_type=payload["type"])
        await self.dispatch("CHANNEL_CREATE", payload)
        if self.seeded is not None and guild_obj.id == self.seeded.id:
            self.seeded.channel_ids[name] = cid
        return guild_obj.get_channel(cid)

    def _guild(self, guild: discord.abc.Snowflake | None) -> discord.Guild:
        gid = guild.id if guild is not None else self.guild.id
        found = self.bot.get_guild(gid)
        assert found is not None, f"guild {gid} is not in the bot's cache"
        return found

    def _member_payload(self, who: MemberLike) -> dict[str, Any]:
        if isinstance(who, str) and not who.isdigit():
            return self.guild.members[who]
        user_id = int(who) if isinstance(who, str | int) else who.id
        if user_id == getattr(self.state.user, "id", None) and user_id not in self._members:
            return self.guild.members["me"]
        return self._members[user_id]

    def member(self, who: MemberLike) -> discord.Member:
        """The real Member for a key ("alice"), an id or an object, cached or built from payload."""
        payload = self._member_payload(who)
        user_id = int(payload["user"]["id"])
        guild = self._guild(discord.Object(self._member_guild.get(user_id, self.guild.id)))
        return guild.get_member(user_id) or discord.Member(
            data=payload, guild=guild, state=self.state
        )

    # ---- voice -----------------------------------------------------------------------------

    async def voice_update(
        self, who: MemberLike, channel: discord.abc.Snowflake | None, **flags: Any
    ) -> discord.Member:
        """Dispatch VOICE_STATE_UPDATE: join or move to `channel`, or leave with None.

        `flags` are voice_state_payload's: self_mute, self_deaf, suppress, request_to_speak.
        """
        payload = self._member_payload(who)
        gid = self._member_guild.get(int(payload["user"]["id"]), self.guild.id)
        event = voice_state_payload(gid, payload, channel.id if channel else None, **flags)
        await self.dispatch("VOICE_STATE_UPDATE", event)
        return self.member(who)

    async def voice_join(
        self, who: MemberLike, channel: discord.abc.Snowflake, **flags: Any
    ) -> discord.Member:
        return await self.voice_update(who, channel, **flags)

    async def voice_move(
        self, who: MemberLike, channel: discord.abc.Snowflake, **flags: Any
    ) -> discord.Member:
        return await self.voice_update(who, channel, **flags)

    async def voice_leave(self, who: MemberLike) -> discord.Member:
        return await self.voice_update(who, None)

    # ---- messages --------------------------------------------------------------------------

    async def message_create(
        self,
        content: str,
        *,
        author: MemberLike = "alice",
        channel: discord.abc.Snowflake | None = None,
        **extra: Any,
    ) -> discord.Message:
        """Dispatch MESSAGE_CREATE (on_message fires); the fake also stores the message."""
        payload = self._stored_message(content, author, channel, extra)
        await self.dispatch("MESSAGE_CREATE", payload)
        message = self.state._get_message(int(payload["id"]))
        if message is None:  # max_messages=None disables the cache
            chan, _ = self.state._get_guild_channel(payload)
            message = discord.Message(state=self.state, channel=chan, data=payload)
        return message

    def _stored_message(
        self,
        content: str,
        author: MemberLike,
        channel: discord.abc.Snowflake | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload from `author` in `channel` (#general), stored in the fake."""
        member = self._member_payload(author)
        channel_id = channel.id if channel else self.guild.channel_ids["general"]
        gid = self.rest.channels.get(channel_id, {}).get("guild_id") or self.guild.id
        payload = message_payload(
            channel_id=channel_id,
            author=member["user"],
            content=content,
            guild_id=gid,
            member=member,
            **extra,
        )
        self.rest.store_message(payload)
        return payload

    def feed_message_create(
        self,
        content: str,
        *,
        author: MemberLike = "alice",
        channel: discord.abc.Snowflake | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """MESSAGE_CREATE handed to discord.py's parser; its handlers are not waited for.

        For load benchmarks: `message_create` finds the tasks it spawned with
        `asyncio.all_tasks()`, O(tasks) per message, which with a thousand messages in flight
        is the harness loading the very loop being measured. Count completions in the handler
        instead. The fake stores the message as `message_create` does; returns the payload.
        """
        payload = self._stored_message(content, author, channel, extra)
        self.state.parsers["MESSAGE_CREATE"](payload)
        return payload

    async def message_edit(self, message: discord.abc.Snowflake, content: str) -> None:
        """Dispatch MESSAGE_UPDATE with new content (on_raw_message_edit / on_message_edit fire)."""
        stored = self.rest.messages.get(message.id)
        assert stored is not None, "edit a message made with message_create"
        stored.update(content=content, edited_timestamp=_now_iso())
        await self.dispatch("MESSAGE_UPDATE", dict(stored))

    async def message_delete(
        self, message: discord.abc.Snowflake, *, channel: discord.abc.Snowflake | None = None
    ) -> None:
        """Dispatch MESSAGE_DELETE (on_raw_message_delete fires; on_message_delete if cached)."""
        stored = self.rest.messages.pop(message.id, None)
        channel_id = (
            channel.id
            if channel
            else int(stored["channel_id"])
            if stored
            else self.guild.channel_ids["general"]
        )
        gid = self.rest.channels.get(channel_id, {}).get("guild_id")
        payload = {"id": str(message.id), "channel_id": str(channel_id)}
        if gid:
            payload["guild_id"] = str(gid)
        await self.dispatch("MESSAGE_DELETE", payload)

    # ---- interactions ----------------------------------------------------------------------

    def _tree(self) -> app_commands.CommandTree:
        tree = self.state._command_tree
        assert tree is not None, "the bot has no CommandTree"
        return tree

    def find_command(
        self, qualified_name: str, guild: discord.abc.Snowflake | None = None
    ) -> app_commands.Command:
        """Resolve "speak" or "voice set" the way Discord would see it (guild commands first)."""
        root_name, *rest = qualified_name.split()
        tree = self._tree()
        cmd = None
        if guild is not None:
            cmd = tree.get_command(root_name, guild=guild)
        cmd = cmd or tree.get_command(root_name)
        assert cmd is not None, f"no /{root_name} in the tree (guild={getattr(guild, 'id', None)})"
        for part in rest:
            assert isinstance(cmd, app_commands.Group), f"/{cmd.qualified_name} has no subcommands"
            cmd = cmd.get_command(part)
            assert cmd is not None, f"no /{qualified_name}"
        assert isinstance(cmd, app_commands.Command), f"/{qualified_name} is a group, not a command"
        return cmd

    def _option(
        self,
        param: app_commands.Parameter,
        value: Any,
        resolved: dict[str, Any],
        guild: discord.Guild,
    ) -> dict[str, Any]:
        t = param.type
        T = discord.AppCommandOptionType
        option: dict[str, Any] = {"name": param.display_name, "type": t.value}
        if (
            t in (T.user, T.mentionable)
            and isinstance(value, discord.abc.User | str)
            and not isinstance(value, discord.Role)
        ):
            member = self._member_payload(
                value if not isinstance(value, discord.abc.User) else value.id
            )
            uid = member["user"]["id"]
            resolved.setdefault("users", {})[uid] = member["user"]
            perms = guild.get_channel(self.guild.channel_ids["general"])
            resolved.setdefault("members", {})[uid] = {
                **{k: v for k, v in member.items() if k != "user"},
                "permissions": str(perms.permissions_for(self.member(uid)).value) if perms else "0",
            }
            option["value"] = uid
        elif t in (T.role, T.mentionable) and isinstance(value, discord.Role):
            resolved.setdefault("roles", {})[str(value.id)] = role_payload(
                value.id, value.name, permissions=value.permissions, position=value.position
            )
            option["value"] = str(value.id)
        elif t == T.channel:
            resolved.setdefault("channels", {})[str(value.id)] = self._resolved_channel(value)
            option["value"] = str(value.id)
        elif t == T.attachment:
            aid = next_snowflake()
            filename = str(value)
            resolved.setdefault("attachments", {})[str(aid)] = {
                "id": str(aid),
                "filename": filename,
                "size": 1,
                "url": f"{self.rest.base_url}/{filename}",
                "proxy_url": f"{self.rest.base_url}/{filename}",
                "content_type": "application/octet-stream",
            }
            option["value"] = str(aid)
        else:
            if isinstance(value, app_commands.Choice):
                value = value.value
            option["value"] = value
        return option

    def _resolved_channel(self, channel: Any) -> dict[str, Any]:
        bot_member = self.member(self.state.user.id)
        payload: dict[str, Any] = {
            "id": str(channel.id),
            "name": channel.name,
            "type": channel.type.value,
            "permissions": str(channel.permissions_for(bot_member).value),
        }
        if getattr(channel, "parent_id", None):
            payload["parent_id"] = str(channel.parent_id)
        if isinstance(channel, discord.Thread):
            payload["thread_metadata"] = {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            }
        return payload

    def _command_data(
        self,
        command: app_commands.Command,
        options: dict[str, Any],
        guild: discord.Guild,
        focused: str | None = None,
    ) -> dict[str, Any]:
        by_name = {p.name: p for p in command.parameters} | {
            p.display_name: p for p in command.parameters
        }
        resolved: dict[str, Any] = {}
        leaf: list[dict[str, Any]] = []
        for key, value in options.items():
            if key not in by_name:
                raise AssertionError(f"/{command.qualified_name} has no option {key!r}")
            param = by_name[key]
            if key == focused or param.name == focused:
                leaf.append(
                    {
                        "name": param.display_name,
                        "type": param.type.value,
                        "value": str(value),
                        "focused": True,
                    }
                )
            else:
                leaf.append(self._option(param, value, resolved, guild))
        if focused is not None and not any(o.get("focused") for o in leaf):
            param = by_name[focused]
            leaf.append(
                {"name": param.display_name, "type": param.type.value, "value": "", "focused": True}
            )
        data: dict[str, Any] = {"options": leaf}
        node: app_commands.Command | app_commands.Group = command
        while node.parent is not None:
            data = {
                "name": node.name,
                "type": 1 if isinstance(node, app_commands.Command) else 2,
                **data,
            }
            data = {"options": [data]}
            node = node.parent
        root_guild = self._command_guild(node, guild)
        data.update(id=str(self._command_id(node.name, root_guild)), name=node.name, type=1)
        if resolved:
            data["resolved"] = resolved
        if root_guild is not None:
            data["guild_id"] = str(root_guild)
        return data

    def _command_guild(self, root: Any, guild: discord.Guild) -> int | None:
        tree = self._tree()
        if (
            tree.get_command(root.name, guild=guild) is root
            and tree.get_command(root.name) is not root
        ):
            return guild.id
        return None

    def _command_id(self, name: str, guild_id: int | None) -> int:
        synced = (
            self.rest.guild_commands.get(guild_id, []) if guild_id else self.rest.global_commands
        )
        for cmd in synced:
            if cmd["name"] == name and cmd.get("type", 1) == 1:
                return int(cmd["id"])
        return next_snowflake()

    def _base_interaction(
        self,
        itype: int,
        *,
        user: MemberLike,
        channel: discord.abc.Snowflake | None,
        guild: discord.abc.Snowflake | None,
        locale: str = "en-US",
    ) -> tuple[dict[str, Any], discord.Guild]:
        guild_obj = self._guild(guild)
        channel_obj = (
            guild_obj.get_channel_or_thread(channel.id)
            if channel
            else guild_obj.get_channel(self.guild.channel_ids["general"])
        )
        assert channel_obj is not None, "the interaction's channel is not in the guild"
        member_data = self._member_payload(user)
        member_obj = self.member(member_data["user"]["id"])
        me = guild_obj.me or self.member(self.state.user.id)
        raw_channel: dict[str, Any] = {
            "id": str(channel_obj.id),
            "type": channel_obj.type.value,
            "name": channel_obj.name,
            "guild_id": str(guild_obj.id),
            "flags": 0,
            "permissions": str(channel_obj.permissions_for(member_obj).value),
        }
        if getattr(channel_obj, "parent_id", None):
            raw_channel["parent_id"] = str(channel_obj.parent_id)  # type: ignore[union-attr]
        iid = next_snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload = {
            "id": str(iid),
            "application_id": str(self.state.application_id or self.rest.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "guild_id": str(guild_obj.id),
            "guild": {"id": str(guild_obj.id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "channel_id": str(channel_obj.id),
            "channel": raw_channel,
            "member": {
                **member_data,
                "permissions": str(channel_obj.permissions_for(member_obj).value),
            },
            "app_permissions": str(channel_obj.permissions_for(me).value),
            "locale": locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_obj.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        return payload, guild_obj

    async def _send_interaction(
        self,
        payload: dict[str, Any],
        *,
        message_id: int | None = None,
        time_limit: float | None = None,
    ) -> InteractionLog:
        self.rest.register_interaction(
            int(payload["id"]),
            payload["token"],
            interaction_type=payload["type"],
            channel_id=int(payload["channel_id"]),
            guild_id=int(payload["guild_id"]),
            message_id=message_id,
            user=payload["member"]["user"],
        )
        log = InteractionLog(int(payload["id"]), payload["token"], payload, self.rest)
        await self.dispatch("INTERACTION_CREATE", payload, time_limit=time_limit)
        return log

    async def invoke(
        self,
        command: str,
        *,
        user: MemberLike = "alice",
        channel: discord.abc.Snowflake | None = None,
        guild: discord.abc.Snowflake | None = None,
        locale: str = "en-US",
        time_limit: float | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> InteractionLog:
        """Run `/command` (e.g. "speak", "voice set") through the bot's CommandTree.

        Options are keyword arguments by parameter name, or `options={...}` for options whose
        names collide with this method's (`user`, `channel`, `guild`, `locale`). Members, roles
        and channels may be the real objects (they go into `resolved` as Discord does). Returns
        once the tree has finished handling it, with every reply recorded so far.
        """
        payload, guild_obj = self._base_interaction(
            2, user=user, channel=channel, guild=guild, locale=locale
        )
        cmd = self.find_command(command, guild_obj)
        payload["data"] = self._command_data(cmd, {**kwargs, **(options or {})}, guild_obj)
        return await self._send_interaction(payload, time_limit=time_limit)

    async def invoke_raw(
        self,
        data: dict[str, Any],
        *,
        user: MemberLike = "alice",
        channel: discord.abc.Snowflake | None = None,
        guild: discord.abc.Snowflake | None = None,
        time_limit: float | None = None,
    ) -> InteractionLog:
        """Dispatch an application command with hand-written `data` (for malformed payloads)."""
        payload, _ = self._base_interaction(2, user=user, channel=channel, guild=guild)
        payload["data"] = data
        return await self._send_interaction(payload, time_limit=time_limit)

    async def autocomplete(
        self,
        command: str,
        focused: str,
        value: str = "",
        *,
        user: MemberLike = "alice",
        channel: discord.abc.Snowflake | None = None,
        guild: discord.abc.Snowflake | None = None,
        locale: str = "en-US",
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> InteractionLog:
        """Ask for completions of option `focused`, typed so far as `value`; see `.choices`.

        Other options already filled in go in as keyword arguments or `options={...}`.
        """
        payload, guild_obj = self._base_interaction(
            4, user=user, channel=channel, guild=guild, locale=locale
        )
        cmd = self.find_command(command, guild_obj)
        filled = {**kwargs, **(options or {}), focused: value}
        payload["data"] = self._command_data(cmd, filled, guild_obj, focused=focused)
        return await self._send_interaction(payload)

    def _component_message(self, message: Any) -> dict[str, Any]:
        if isinstance(message, InteractionLog):
            message = message.last
        if isinstance(message, Reply):
            message = message.message_id
        message_id = message if isinstance(message, int) else message.id
        stored = self.rest.messages.get(message_id)
        assert stored is not None, f"message {message_id} is not in the fake's store"
        return stored

    async def component(
        self,
        message: Any,
        custom_id: str,
        component_type: int,
        *,
        values: list[str] | None = None,
        user: MemberLike = "alice",
        time_limit: float | None = None,
        resolved: dict[str, Any] | None = None,
    ) -> InteractionLog:
        """Dispatch a component interaction on a message the bot sent.

        `message` is a Message, a message id, a Reply or an InteractionLog (its last reply).
        """
        stored = self._component_message(message)
        channel = discord.Object(int(stored["channel_id"]))
        gid = self.rest.channels.get(channel.id, {}).get("guild_id") or self.guild.id
        payload, _ = self._base_interaction(
            3, user=user, channel=channel, guild=discord.Object(gid)
        )
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        if resolved:
            data["resolved"] = resolved
        payload["data"] = data
        payload["message"] = stored
        return await self._send_interaction(
            payload, message_id=int(stored["id"]), time_limit=time_limit
        )

    async def click(
        self,
        message: Any,
        custom_id: str,
        *,
        user: MemberLike = "alice",
        time_limit: float | None = None,
    ) -> InteractionLog:
        """Press the button `custom_id` on `message`."""
        return await self.component(message, custom_id, 2, user=user, time_limit=time_limit)

    async def select(
        self,
        message: Any,
        custom_id: str,
        values: list[str],
        *,
        user: MemberLike = "alice",
        component_type: int = 3,
        time_limit: float | None = None,
    ) -> InteractionLog:
        """Choose `values` in the select `custom_id` (component_type 5-8: entity selects)."""
        return await self.component(
            message, custom_id, component_type, values=values, user=user, time_limit=time_limit
        )

    async def submit_modal(
        self,
        custom_id: str,
        values: dict[str, str],
        *,
        user: MemberLike = "alice",
        channel: discord.abc.Snowflake | None = None,
        time_limit: float | None = None,
    ) -> InteractionLog:
        """Submit the modal `custom_id` with text inputs {input custom_id: value}."""
        payload, _ = self._base_interaction(5, user=user, channel=channel, guild=None)
        payload["data"] = {
            "custom_id": custom_id,
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in values.items()
            ],
        }
        return await self._send_interaction(payload, time_limit=time_limit)


async def login_bot(
    bot: discord.Client, rest: FakeDiscordREST, *, token: str | None = None
) -> None:
    """Log `bot` in against the fake (Route.BASE must point at it); runs the bot's setup_hook."""
    await bot.login(token or rest.token)


# --------------------------------------------------------------------------------------------
# pytest fixtures.
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def discord_rest() -> AsyncIterator[FakeDiscordREST]:
    """The running REST fake (not yet wired to discord.py; see discord_api_base)."""
    async with FakeDiscordREST() as rest:
        yield rest


@pytest.fixture
def discord_api_base(discord_rest: FakeDiscordREST) -> Iterator[str]:
    """Route.BASE points at the fake for the test and is restored afterwards; yields the URL."""
    with use_discord_api_base(discord_rest.api_base) as base:
        yield base


HarnessFactory = Callable[..., Awaitable[DiscordHarness]]


@pytest.fixture
async def discord_harness_factory(
    discord_rest: FakeDiscordREST, discord_api_base: str
) -> AsyncIterator[HarnessFactory]:
    """Build harnesses around bots logged in against the fake, each with a seeded guild.

    `await factory(bot=None, *, seed=True, voice=None, login=True)`: with no bot, a plain
    `commands.Bot` (default intents plus message content and voice states, no prefix commands).
    Logging in runs the bot's real setup_hook. Every bot is closed at teardown.
    """
    made: list[discord.Client] = []

    async def factory(
        bot: discord.Client | None = None,
        *,
        seed: bool = True,
        voice: dict[str, str] | None = None,
        login: bool = True,
    ) -> DiscordHarness:
        if bot is None:
            intents = discord.Intents.default()
            intents.message_content = True
            bot = commands.Bot(
                command_prefix=commands.when_mentioned, intents=intents, help_command=None
            )
        made.append(bot)
        harness = DiscordHarness(bot, discord_rest)
        if login:
            await login_bot(bot, discord_rest)
            if seed:
                await harness.seed_guild(voice=voice)
        return harness

    yield factory
    for bot in made:
        if not bot.is_closed():
            await bot.close()


@pytest.fixture
async def discord_harness(discord_harness_factory: HarnessFactory) -> DiscordHarness:
    """A default commands.Bot, logged in against the fake, with one seeded guild."""
    return await discord_harness_factory()


@pytest.fixture
async def discord_bot(discord_harness: DiscordHarness) -> commands.Bot:
    """The bot of `discord_harness` (add cogs with `await discord_bot.add_cog(...)`)."""
    return discord_harness.bot  # type: ignore[return-value]
