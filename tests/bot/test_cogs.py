"""Every cog loads, no command name is taken twice, everything is described; /admin; settings."""

from __future__ import annotations

from collections import Counter
from typing import Any

import discord
import pytest
from discord import app_commands

from bot.app import TTSBot, build_intents, cog_modules
from bot.config import ConfigError, Settings, load_settings
from tests.fakes.discord import DiscordHarness, FakeDiscordREST
from tests.fakes.elevenlabs import FakeElevenLabs

from .conftest import BotFactory

DEV_GUILD = 424242424242424242


@pytest.fixture
async def loaded(tts_factory: BotFactory) -> DiscordHarness:
    """The bot with every cog loaded, and a developer server set so /admin is loaded too."""
    return await tts_factory(dev_guild_id=DEV_GUILD, owner_ids="1")


def walk(command: Any) -> list[Any]:
    """A command or group and everything under it."""
    found = [command]
    if isinstance(command, app_commands.Group):
        for child in command.commands:
            found += walk(child)
    return found


def test_cog_modules_lists_every_cog_and_no_helper() -> None:
    modules = cog_modules()
    assert {"cogs.speech", "cogs.voice_channel", "cogs.privacy", "cogs.admin"} <= set(modules)
    assert not any(name.rsplit(".", 1)[1].startswith("_") for name in modules)


async def test_every_cog_is_loaded(loaded: DiscordHarness) -> None:
    assert set(cog_modules()) <= set(loaded.bot.extensions)
    assert {"Speech", "VoiceChannel", "Privacy", "Admin"} <= set(loaded.bot.cogs)


async def test_no_command_name_is_taken_twice(loaded: DiscordHarness) -> None:
    tree = loaded.bot.tree
    global_names = [c.name for c in tree.get_commands()]
    dev_names = [c.name for c in tree.get_commands(guild=discord.Object(DEV_GUILD))]
    duplicates = [n for n, k in Counter(global_names).items() if k > 1]
    assert not duplicates, duplicates
    # In the developer server both lists show: a guild command may not shadow a global one.
    in_dev = Counter(global_names + dev_names)
    assert not [n for n, k in in_dev.items() if k > 1], in_dev
    for command in tree.get_commands():
        if isinstance(command, app_commands.Group):
            children = [c.name for c in command.commands]
            assert len(children) == len(set(children)), command.name


async def test_every_command_and_option_is_described(loaded: DiscordHarness) -> None:
    tree = loaded.bot.tree
    roots = [*tree.get_commands(), *tree.get_commands(guild=discord.Object(DEV_GUILD))]
    undescribed: list[str] = []
    for root in roots:
        for command in walk(root):
            if not command.description or command.description == "…":
                undescribed.append(f"/{command.qualified_name}")
            for param in getattr(command, "parameters", []):
                if not param.description or param.description == "…":
                    undescribed.append(f"/{command.qualified_name} {param.name}")
            assert len(command.description) <= 100, command.qualified_name
    assert not undescribed, undescribed


async def test_admin_is_only_in_the_developer_server(loaded: DiscordHarness) -> None:
    tree = loaded.bot.tree
    assert tree.get_command("admin") is None
    assert tree.get_command("admin", guild=discord.Object(DEV_GUILD)) is not None
    assert tree.get_command("admin", guild=discord.Object(loaded.guild.id)) is None


async def test_without_a_dev_guild_admin_exists_nowhere(tts: DiscordHarness) -> None:
    assert "Admin" not in tts.bot.cogs
    commands = [c.name for c in tts.bot.tree.walk_commands()]
    assert "admin" not in commands


async def admin_here(tts: DiscordHarness, owner: str = "owner") -> None:
    """Make the seeded guild the developer server (its id is only known once seeded)."""
    bot: TTSBot = tts.bot  # type: ignore[assignment]
    bot.settings = bot.settings.model_copy(
        update={"dev_guild_id": tts.guild.id, "owner_ids": [tts.guild.member_id(owner)]}
    )
    await bot.reload_extension("cogs.admin")


async def test_admin_sync_is_refused_for_everyone_else(
    tts: DiscordHarness, discord_rest: FakeDiscordREST
) -> None:
    await admin_here(tts)
    for user in ("alice", "bob"):
        reply = (await tts.invoke("admin sync", user=user)).last
        assert reply.ephemeral and reply.pings_nobody
        assert reply.content == "Only the bot's operators can use this."
    assert not discord_rest.calls_to("PUT", r".*/commands")


async def test_admin_sync_works_for_an_owner(
    tts: DiscordHarness, discord_rest: FakeDiscordREST
) -> None:
    await admin_here(tts)
    log = await tts.invoke("admin sync", user="owner")
    assert log.callback.deferred and log.callback.ephemeral
    reply = log.last
    assert reply.ephemeral and reply.pings_nobody
    count = len(tts.bot.tree.get_commands())
    assert reply.content == f"Synced {count} commands to every server."
    app = discord_rest.application_id
    (global_put,) = discord_rest.calls_to("PUT", rf"/applications/{app}/commands")
    assert "admin" not in [c["name"] for c in global_put.json]
    (dev_put,) = discord_rest.calls_to(
        "PUT", rf"/applications/{app}/guilds/{tts.guild.id}/commands"
    )
    assert [c["name"] for c in dev_put.json] == ["admin"]


async def test_admin_sync_here(tts: DiscordHarness, discord_rest: FakeDiscordREST) -> None:
    await admin_here(tts)
    reply = (await tts.invoke("admin sync", user="owner", scope="here")).last
    assert reply.content.endswith("commands to this server.")
    app = discord_rest.application_id
    assert not discord_rest.calls_to("PUT", rf"/applications/{app}/commands")
    (put,) = discord_rest.calls_to("PUT", rf"/applications/{app}/guilds/{tts.guild.id}/commands")
    names = [c["name"] for c in put.json]
    assert "admin" in names and "speak" in names and len(names) == len(set(names))


async def test_admin_sync_here_does_not_leak_into_later_syncs(
    tts: DiscordHarness, discord_rest: FakeDiscordREST
) -> None:
    await admin_here(tts)
    await tts.invoke("admin sync", user="owner", scope="here")
    await tts.invoke("admin sync", user="owner")
    app = discord_rest.application_id
    puts = discord_rest.calls_to("PUT", rf"/applications/{app}/guilds/{tts.guild.id}/commands")
    assert [c["name"] for c in puts[-1].json] == ["admin"]
    assert [c.name for c in tts.bot.tree.get_commands(guild=tts.guild.guild)] == ["admin"]


async def test_admin_sync_failure_is_one_clear_reply(
    tts: DiscordHarness, discord_rest: FakeDiscordREST
) -> None:
    await admin_here(tts)
    discord_rest.fail("PUT", r"/applications/\d+/commands", status=429, message="rate limited")
    discord_rest.fail("PUT", r"/applications/\d+/commands", status=500, times=10)
    reply = (await tts.invoke("admin sync", user="owner")).last
    assert reply.ephemeral and reply.pings_nobody
    assert reply.content.startswith("Discord refused the sync")


# ---------------------------------------------------------------- settings


def test_shard_ids_without_shard_count_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"SHARD_IDS.*SHARD_COUNT"):
        load_settings(None, shard_ids="0,1")


def test_the_bot_refuses_shard_ids_without_a_count_too() -> None:
    # Settings built without validation (as a library user could) still cannot start.
    settings = Settings.model_construct(
        **{**load_settings(None).model_dump(), "shard_ids": [0], "shard_count": None}
    )
    with pytest.raises(ConfigError, match=r"SHARD_IDS.*SHARD_COUNT"):
        TTSBot(settings)


def test_shards_are_passed_to_discord() -> None:
    bot = TTSBot(load_settings(None, shard_ids="1", shard_count=2))
    assert bot.shard_ids == [1] and bot.shard_count == 2


@pytest.mark.parametrize("read_messages", [True, False])
def test_intents_follow_read_messages(read_messages: bool) -> None:
    intents = build_intents(load_settings(None, read_messages=read_messages))
    assert intents.message_content is read_messages
    assert intents.guilds and intents.voice_states and intents.guild_messages
    assert not intents.members and not intents.presences  # never privileged beyond need
    assert TTSBot(load_settings(None, read_messages=read_messages)).intents == intents


async def test_admin_account_shows_the_plan_to_owners_only(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await admin_here(tts)
    refused = (await tts.invoke("admin account", user="alice")).last
    assert refused.ephemeral and refused.content == "Only the bot's operators can use this."
    log = await tts.invoke("admin account", user="owner")
    assert log.callback.deferred and log.callback.ephemeral
    reply = log.last
    assert reply.ephemeral and reply.pings_nobody
    fields = {f["name"]: f["value"] for f in reply.embeds[0]["fields"]}
    assert fields["Plan"] == fake_elevenlabs.tier
    assert f"of {fake_elevenlabs.character_limit:,}" in fields["Credits"]
    assert fields["Resets"].startswith("<t:")
