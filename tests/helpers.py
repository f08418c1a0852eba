"""Attribute-locked mocks of discord.py objects, for where a gateway payload is impractical.

In the style of python-discord/bot's tests/helpers.py: each mock is built with `spec_set` from the
real discord.py class, so reading or setting an attribute the real object lacks raises
AttributeError, `isinstance(mock, discord.Member)` holds, and coroutine methods (`send`,
`move_to`, `disconnect`, ...) are AsyncMocks to await and assert on. Prefer the real objects
from tests/fakes/discord.py (DiscordHarness) when the code under test talks to Discord; use these
for pure logic that only reads a few attributes.

Children of a mock (e.g. `member.guild_permissions` when not set) are plain MagicMocks, as in
python-discord's helpers; set the attributes a test depends on explicitly.
"""

from __future__ import annotations

import collections
import functools
import itertools
import unittest.mock
from collections.abc import Iterable
from typing import Any

import discord
from discord.ext import commands

__all__ = [
    "MockBot",
    "MockGuild",
    "MockInteraction",
    "MockInteractionResponse",
    "MockMember",
    "MockMessage",
    "MockRole",
    "MockStageChannel",
    "MockTextChannel",
    "MockThread",
    "MockUser",
    "MockVoiceChannel",
    "MockVoiceClient",
    "MockVoiceState",
    "MockWebhook",
]

_ids = itertools.count(1_000_000_000_000_000_000)


def _next_id() -> int:
    return next(_ids)


class HashableMixin(discord.mixins.EqualityComparable):
    """Hash and compare by id like discord.py's Hashable (without the bit shift, for small ids)."""

    def __hash__(self) -> int:
        return self.id  # type: ignore[attr-defined]


class CustomMockMixin:
    """Locks a mock to `spec_set` and makes children of coroutine attributes AsyncMocks.

    `spec_set` is the real class (or, for classes that set attributes in `__init__` rather than
    declaring slots, such as the bot, an instance). `additional_spec_asyncs` names methods that are
    not `async def` but return awaitables.
    """

    child_mock_type: type[unittest.mock.NonCallableMock] = unittest.mock.MagicMock
    spec_set: Any = None
    additional_spec_asyncs: Iterable[str] = ()

    def __init__(self, **kwargs: Any) -> None:
        name = kwargs.pop("name", None)  # `name` means something to Mock itself; set it afterwards
        spec_set = kwargs.pop("spec_set", None) or self._spec()
        super().__init__(spec_set=spec_set, **kwargs)  # type: ignore[call-arg]
        self._spec_asyncs.extend(self.additional_spec_asyncs)  # type: ignore[attr-defined]
        if name is not None:
            self.name = name

    @classmethod
    def _spec(cls) -> Any:
        return cls.spec_set

    def _get_child_mock(self, **kw: Any) -> unittest.mock.NonCallableMock:
        new_name = kw.get("_new_name")
        if new_name in self.__dict__["_spec_asyncs"]:
            return unittest.mock.AsyncMock(**kw)
        if (
            isinstance(self, unittest.mock.MagicMock)
            and new_name in unittest.mock._async_method_magics
        ):  # type: ignore[attr-defined]
            klass: type = unittest.mock.AsyncMock
        else:
            klass = self.child_mock_type
        if self._mock_sealed:  # type: ignore[attr-defined]
            attribute = "." + kw["name"] if "name" in kw else "()"
            raise AttributeError(self._extract_mock_name() + attribute)  # type: ignore[attr-defined]
        return klass(**kw)


def _defaults(kwargs: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    return dict(collections.ChainMap(kwargs, defaults))


class MockRole(CustomMockMixin, unittest.mock.Mock, HashableMixin):
    spec_set = discord.Role

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            **_defaults(
                kwargs,
                id=_next_id(),
                name="role",
                position=1,
                colour=discord.Colour.default(),
                permissions=discord.Permissions.none(),
                managed=False,
            )
        )
        if "mention" not in kwargs:
            self.mention = f"<@&{self.id}>"

    def __lt__(self, other: Any) -> bool:
        return self.position < other.position


class MockGuild(CustomMockMixin, unittest.mock.Mock, HashableMixin):
    spec_set = discord.Guild

    def __init__(self, roles: Iterable[MockRole] = (), **kwargs: Any) -> None:
        gid = kwargs.pop("id", None) or _next_id()
        super().__init__(
            **_defaults(
                kwargs, id=gid, name="guild", members=[], afk_channel=None, unavailable=False
            )
        )
        self.default_role = MockRole(name="@everyone", id=gid, position=0)
        self.roles = [self.default_role, *roles]


class MockUser(CustomMockMixin, unittest.mock.Mock, HashableMixin):
    spec_set = discord.User

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_defaults(kwargs, id=_next_id(), name="user", bot=False, system=False))
        if "display_name" not in kwargs:
            self.display_name = self.name
        if "mention" not in kwargs:
            self.mention = f"<@{self.id}>"


class MockMember(CustomMockMixin, unittest.mock.Mock, HashableMixin):
    """A guild member; `voice` is None (not in a voice channel) unless given."""

    spec_set = discord.Member

    def __init__(self, roles: Iterable[MockRole] = (), **kwargs: Any) -> None:
        super().__init__(
            **_defaults(
                kwargs,
                id=_next_id(),
                name="member",
                bot=False,
                system=False,
                nick=None,
                voice=None,
                guild_permissions=discord.Permissions.none(),
            )
        )
        if "guild" not in kwargs:
            self.guild = MockGuild()
        self.roles = [self.guild.default_role, *roles]
        if "display_name" not in kwargs:
            self.display_name = self.nick or self.name
        if "mention" not in kwargs:
            self.mention = f"<@{self.id}>"


_CHANNEL_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, connect=True, speak=True
)


class _ChannelMixin:
    kind: discord.ChannelType

    def _init_channel(self, kwargs: dict[str, Any]) -> None:
        if "guild" not in kwargs:
            self.guild = MockGuild()  # type: ignore[misc]
        if "mention" not in kwargs:
            self.mention = f"<#{self.id}>"  # type: ignore[attr-defined]
        if "permissions_for" not in kwargs:
            self.permissions_for.return_value = _CHANNEL_PERMISSIONS  # type: ignore[attr-defined]


class MockTextChannel(_ChannelMixin, CustomMockMixin, unittest.mock.Mock, HashableMixin):
    spec_set = discord.TextChannel

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            **_defaults(kwargs, id=_next_id(), name="general", type=discord.ChannelType.text)
        )
        self._init_channel(kwargs)


class MockThread(_ChannelMixin, CustomMockMixin, unittest.mock.Mock, HashableMixin):
    spec_set = discord.Thread

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            **_defaults(
                kwargs, id=_next_id(), name="thread", type=discord.ChannelType.public_thread
            )
        )
        self._init_channel(kwargs)


class MockVoiceChannel(_ChannelMixin, CustomMockMixin, unittest.mock.Mock, HashableMixin):
    """A voice channel; `permissions_for` grants view, send, embed, connect and speak by default."""

    spec_set = discord.VoiceChannel

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            **_defaults(
                kwargs,
                id=_next_id(),
                name="Lounge",
                type=discord.ChannelType.voice,
                members=[],
                user_limit=0,
                bitrate=64000,
            )
        )
        self._init_channel(kwargs)


class MockStageChannel(_ChannelMixin, CustomMockMixin, unittest.mock.Mock, HashableMixin):
    spec_set = discord.StageChannel

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            **_defaults(
                kwargs,
                id=_next_id(),
                name="Stage",
                type=discord.ChannelType.stage_voice,
                members=[],
                user_limit=0,
                bitrate=64000,
            )
        )
        self._init_channel(kwargs)


class MockVoiceState(CustomMockMixin, unittest.mock.Mock):
    spec_set = discord.VoiceState

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            **_defaults(
                kwargs,
                channel=None,
                deaf=False,
                mute=False,
                self_deaf=False,
                self_mute=False,
                self_stream=False,
                self_video=False,
                suppress=False,
                afk=False,
                requested_to_speak_at=None,
                session_id="session",
            )
        )


class MockMessage(CustomMockMixin, unittest.mock.MagicMock, HashableMixin):
    spec_set = discord.Message

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            **_defaults(
                kwargs,
                id=_next_id(),
                content="",
                attachments=[],
                embeds=[],
                mentions=[],
                webhook_id=None,
            )
        )
        if "channel" not in kwargs:
            self.channel = MockTextChannel()
        if "author" not in kwargs:
            self.author = MockMember(guild=self.channel.guild)
        if "guild" not in kwargs:
            self.guild = self.channel.guild


@functools.cache
def _voice_client_instance() -> discord.VoiceClient:
    # VoiceClient sets client and channel in __init__ (no slots): lock to an instance.
    return discord.VoiceClient(unittest.mock.MagicMock(), unittest.mock.MagicMock())


class MockVoiceClient(CustomMockMixin, unittest.mock.MagicMock):
    """A connected voice client; `play`/`stop` are sync, `disconnect`/`move_to` are AsyncMocks."""

    @classmethod
    def _spec(cls) -> Any:
        return cls.spec_set or _voice_client_instance()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if "channel" not in kwargs:
            self.channel = MockVoiceChannel()
        if "guild" not in kwargs:
            self.guild = self.channel.guild
        self.is_connected.return_value = True
        self.is_playing.return_value = False
        self.is_paused.return_value = False


class MockWebhook(CustomMockMixin, unittest.mock.MagicMock):
    """An interaction's `followup`: `send` is an AsyncMock."""

    spec_set = discord.Webhook


class MockInteractionResponse(CustomMockMixin, unittest.mock.MagicMock):
    """`interaction.response`: `send_message`, `defer`, `edit_message`... are AsyncMocks."""

    spec_set = discord.InteractionResponse

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.is_done.return_value = False


class MockInteraction(CustomMockMixin, unittest.mock.MagicMock):
    """A guild slash-command interaction; response, followup, user, guild, channel are locked."""

    spec_set = discord.Interaction

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_defaults(kwargs, id=_next_id(), locale=discord.Locale.american_english))
        if "channel" not in kwargs:
            self.channel = MockTextChannel(guild=kwargs.get("guild") or MockGuild())
        if "guild" not in kwargs:
            self.guild = self.channel.guild
        if "user" not in kwargs:
            self.user = MockMember(guild=self.guild)
        if "guild_id" not in kwargs:
            self.guild_id = self.guild.id if self.guild is not None else None
        if "channel_id" not in kwargs:
            self.channel_id = self.channel.id if self.channel is not None else None
        if "response" not in kwargs:
            self.response = MockInteractionResponse()
        if "followup" not in kwargs:
            self.followup = MockWebhook()
        if "client" not in kwargs:
            self.client = MockBot()


@functools.cache
def _bot_instance() -> commands.AutoShardedBot:
    # An instance, not the class: the bot's attributes (http, tree, loop...) are set in __init__.
    return commands.AutoShardedBot(
        command_prefix=commands.when_mentioned, intents=discord.Intents.none()
    )


class MockBot(CustomMockMixin, unittest.mock.MagicMock):
    """A bot locked to commands.AutoShardedBot; pass `spec_set=` an instance of the project's bot.

    `wait_for` is an AsyncMock; `loop.create_task` closes the coroutine so nothing warns about it
    never being awaited.
    """

    additional_spec_asyncs = ("wait_for",)

    @classmethod
    def _spec(cls) -> Any:
        return cls.spec_set or _bot_instance()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loop.create_task.side_effect = lambda coro, **_: coro.close()
