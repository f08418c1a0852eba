"""The Discord fake and harness, proven against discord.py's real machinery with a tiny demo cog."""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import (
    CALLBACK_AUTOCOMPLETE,
    CALLBACK_DEFERRED_MESSAGE,
    CALLBACK_DEFERRED_UPDATE,
    CALLBACK_MESSAGE,
    CALLBACK_MODAL,
    CALLBACK_UPDATE_MESSAGE,
    DiscordHarness,
    FakeDiscordREST,
    seed_guild_payload,
    use_discord_api_base,
)
from tests.helpers import (
    MockBot,
    MockGuild,
    MockInteraction,
    MockMember,
    MockMessage,
    MockVoiceChannel,
    MockVoiceClient,
    MockVoiceState,
)

VOICES = ["Rachel", "Roger", "Sarah", "Laura"]


class DemoView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.clicked_by: list[int] = []
        self.chosen: list[str] = []

    @discord.ui.button(label="Again", custom_id="demo:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.clicked_by.append(interaction.user.id)
        await interaction.response.edit_message(content="clicked", view=None)

    @discord.ui.select(
        custom_id="demo:pick", options=[discord.SelectOption(label=v) for v in VOICES]
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        self.chosen = list(select.values)
        await interaction.response.defer()


class AskModal(discord.ui.Modal, title="Ask"):
    text = discord.ui.TextInput(label="Text", custom_id="ask:text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"got {self.text.value}", ephemeral=True)


class DemoCog(commands.Cog):
    voice = app_commands.Group(name="voice", description="Your voice")

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.views: list[DemoView] = []
        self.raw_deletes: list[int] = []
        self.messages: list[str] = []
        self.edits: list[str] = []

    @app_commands.command(description="Say something")
    @app_commands.describe(text="What to say", voice="Which voice")
    async def speak(
        self, interaction: discord.Interaction, text: str, voice: str | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        self.calls.append(("speak", (text, voice, interaction.user.id)))
        await interaction.followup.send(
            f"Queued <@{interaction.user.id}>: {text}",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @speak.autocomplete("voice")
    async def speak_voice(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=v, value=v.lower())
            for v in VOICES
            if v.lower().startswith(current.lower())
        ]

    @voice.command(name="set", description="Pick your voice")
    async def voice_set(
        self, interaction: discord.Interaction, name: str, speed: float = 1.0
    ) -> None:
        self.calls.append(("voice set", (name, speed)))
        await interaction.response.send_message(f"{name} at {speed}", ephemeral=True)

    @app_commands.command(description="Where is someone")
    async def whereis(self, interaction: discord.Interaction, member: discord.Member) -> None:
        channel = member.voice.channel.name if member.voice and member.voice.channel else "nowhere"
        await interaction.response.send_message(
            channel, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(description="Join a channel")
    async def join(self, interaction: discord.Interaction, channel: discord.VoiceChannel) -> None:
        self.calls.append(("join", channel))
        await interaction.response.send_message(f"joining {channel.mention}", ephemeral=True)

    @app_commands.command(description="Buttons")
    async def menu(self, interaction: discord.Interaction) -> None:
        view = DemoView()
        self.views.append(view)
        await interaction.response.send_message("Menu", view=view)

    @app_commands.command(description="A modal")
    async def ask(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(AskModal(custom_id="ask"))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        self.messages.append(message.content)
        if message.content == "react":
            await message.add_reaction("\N{THUMBS UP SIGN}")
            await message.channel.send("reacted", allowed_mentions=discord.AllowedMentions.none())

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.edits.append(payload.message.content)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.raw_deletes.append(payload.message_id)


@pytest.fixture
async def demo(discord_harness: DiscordHarness) -> tuple[DiscordHarness, DemoCog]:
    cog = DemoCog()
    await discord_harness.bot.add_cog(cog)  # type: ignore[attr-defined]
    return discord_harness, cog


async def test_login_succeeds_with_the_right_token(
    discord_rest: FakeDiscordREST, discord_api_base: str
) -> None:
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(discord_rest.token)
        assert client.user is not None and client.user.id == discord_rest.application_id
        assert client.application_id == discord_rest.application_id
        assert client.application_flags.gateway_message_content_limited
    finally:
        await client.close()
    assert discord_rest.calls[0].authorization == f"Bot {discord_rest.token}"


async def test_login_fails_with_401_for_a_wrong_token(
    discord_rest: FakeDiscordREST, discord_api_base: str
) -> None:
    client = discord.Client(intents=discord.Intents.none())
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    finally:
        await client.close()
    assert discord_rest.calls[-1].status == 401
    assert discord_rest.calls[-1].response == {"message": "401: Unauthorized", "code": 0}


async def test_application_flags_report_a_missing_message_content_intent(
    discord_rest: FakeDiscordREST, discord_api_base: str
) -> None:
    discord_rest.message_content_intent = False
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(discord_rest.token)
        flags = client.application_flags
        assert not (flags.gateway_message_content or flags.gateway_message_content_limited)
    finally:
        await client.close()


async def test_identify_gateway_closes_4014_for_a_disallowed_intent(
    discord_rest: FakeDiscordREST, discord_api_base: str
) -> None:
    discord_rest.gateway = "identify"
    discord_rest.message_content_intent = False
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.AutoShardedClient(intents=intents)
    try:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.start(discord_rest.token), timeout=10)
    finally:
        await client.close()
    assert discord_rest.gateway_sessions[-1]["closed_with"] == 4014
    assert discord_rest.gateway_sessions[-1]["identify"]["intents"] == intents.value


async def test_identify_gateway_reaches_ready_with_the_guilds(
    discord_rest: FakeDiscordREST, discord_api_base: str
) -> None:
    discord_rest.gateway = "identify"
    payload, channels, _, _ = seed_guild_payload(
        discord_rest.bot_user, name="G", voice={"alice": "lounge"}
    )
    discord_rest.gateway_guilds.append(payload)
    client = discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    client.event(on_ready)
    task = asyncio.create_task(client.start(discord_rest.token))
    try:
        await asyncio.wait_for(ready.wait(), timeout=5)
        lounge = client.get_channel(channels["lounge"])
        assert [m.name for m in lounge.members] == ["alice"]
    finally:
        await client.close()
        await task


async def test_route_base_is_restored() -> None:
    before = discord.http.Route.BASE
    with use_discord_api_base("http://127.0.0.1:9/api/v10"):
        assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:9/api/v10/users/@me"
    assert before == discord.http.Route.BASE


async def test_slash_command_defers_ephemerally_and_follows_up_without_pings(demo) -> None:
    harness, cog = demo
    log = await harness.invoke("speak", text="hello there", user="bob")

    assert cog.calls == [("speak", ("hello there", None, harness.guild.member_id("bob")))]
    callback, followup = log.replies
    assert callback.kind == "callback" and callback.type == CALLBACK_DEFERRED_MESSAGE
    assert callback.ephemeral and callback.deferred
    assert followup.kind == "followup" and followup.ephemeral
    assert followup.content == f"Queued <@{harness.guild.member_id('bob')}>: hello there"
    assert followup.allowed_mentions == {"parse": []} and followup.pings_nobody
    # The first follow-up after a thinking defer becomes the original response, as on Discord.
    assert followup.message_id == callback.message_id
    assert not harness.rest.unknown_calls


async def test_options_and_subcommand_groups_parse(demo) -> None:
    harness, cog = demo
    log = await harness.invoke("voice set", name="Rachel", speed=1.25)

    assert cog.calls == [("voice set", ("Rachel", 1.25))]
    assert log.callback.type == CALLBACK_MESSAGE
    assert log.callback.content == "Rachel at 1.25" and log.callback.ephemeral
    option = log.payload["data"]["options"][0]
    assert option["type"] == 1 and option["name"] == "set"


async def test_autocomplete_returns_choices(demo) -> None:
    harness, _ = demo
    log = await harness.autocomplete("speak", "voice", "r", text="hi")

    assert log.callback.type == CALLBACK_AUTOCOMPLETE
    assert log.choices == [
        {"name": "Rachel", "value": "rachel"},
        {"name": "Roger", "value": "roger"},
    ]


async def test_button_click_and_select_reach_the_view(demo) -> None:
    harness, cog = demo
    menu = await harness.invoke("menu", user="alice")
    assert menu.callback.components[0]["components"][0]["custom_id"] == "demo:again"

    picked = await harness.select(menu, "demo:pick", ["Sarah"], user="bob")
    assert cog.views[0].chosen == ["Sarah"]
    assert picked.callback.type == CALLBACK_DEFERRED_UPDATE

    clicked = await harness.click(menu, "demo:again", user="bob")
    assert cog.views[0].clicked_by == [harness.guild.member_id("bob")]
    assert clicked.callback.type == CALLBACK_UPDATE_MESSAGE
    assert harness.rest.messages[menu.callback.message_id]["content"] == "clicked"


async def test_voice_states_from_guild_create_and_updates(discord_harness_factory) -> None:
    harness = await discord_harness_factory(voice={"alice": "lounge"})
    seeded = harness.guild
    assert seeded.alice.voice is not None and seeded.alice.voice.channel == seeded.lounge
    assert seeded.guild.afk_channel == seeded.afk

    events: list[tuple[str | None, str | None]] = []

    async def on_voice_state_update(member, before, after) -> None:
        events.append((getattr(before.channel, "name", None), getattr(after.channel, "name", None)))

    harness.bot.add_listener(on_voice_state_update)
    bob = await harness.voice_join("bob", seeded.quiet)
    assert bob.voice.channel == seeded.quiet
    await harness.voice_move("bob", seeded.stage, suppress=True)
    assert seeded.bob.voice.channel == seeded.stage and seeded.bob.voice.suppress
    await harness.voice_leave("bob")
    assert seeded.bob.voice is None
    assert events == [(None, "Quiet"), ("Quiet", "Stage"), ("Stage", None)]
    assert {m.name for m in seeded.lounge.members} == {"alice"}


async def test_interaction_member_sees_its_voice_channel(demo) -> None:
    harness, _ = demo
    await harness.voice_join("alice", harness.guild.lounge)
    log = await harness.invoke("whereis", member=harness.guild.alice, user="bob")
    assert log.callback.content == "Lounge"
    assert "members" in log.payload["data"]["resolved"]


async def test_channel_options_resolve_to_the_cached_channel(demo) -> None:
    harness, cog = demo
    # `channel=` is the channel the command is used in; options with that name go in `options`.
    log = await harness.invoke("join", options={"channel": harness.guild.quiet})
    assert cog.calls == [("join", harness.guild.quiet)]
    assert log.callback.content == f"joining <#{harness.guild.quiet.id}>"


async def test_messages_dispatch_and_raw_edit_delete_events(demo) -> None:
    harness, cog = demo
    message = await harness.message_create("react", author="alice")
    assert (
        message.author.id == harness.guild.member_id("alice")
        and message.guild == harness.guild.guild
    )
    assert cog.messages == ["react"]
    assert harness.rest.reactions == [
        {
            "action": "add",
            "channel_id": message.channel.id,
            "message_id": message.id,
            "emoji": "\N{THUMBS UP SIGN}",
        }
    ]
    [sent] = harness.rest.channel_messages(harness.guild.general.id)
    assert sent["content"] == "reacted" and sent["allowed_mentions"] == {"parse": []}

    await harness.message_edit(message, "edited")
    assert cog.edits == ["edited"]
    await harness.message_delete(message)
    assert cog.raw_deletes == [message.id]


async def test_command_sync_is_recorded(demo) -> None:
    harness, _ = demo
    synced = await harness.bot.tree.sync(guild=harness.guild.guild)  # type: ignore[attr-defined]
    assert synced == []  # the demo commands are global
    synced = await harness.bot.tree.sync()  # type: ignore[attr-defined]
    assert {c.name for c in synced} == {"speak", "voice", "whereis", "join", "menu", "ask"}
    [put] = harness.rest.calls_to("PUT", r"/applications/\d+/commands")
    assert {c["name"] for c in put.json} == {"speak", "voice", "whereis", "join", "menu", "ask"}
    # Invocations now carry the synced command id, as Discord's would.
    log = await harness.invoke("menu")
    menu_id = next(c["id"] for c in harness.rest.global_commands if c["name"] == "menu")
    assert log.payload["data"]["id"] == menu_id


async def test_unknown_routes_are_recorded(discord_harness: DiscordHarness) -> None:
    bot = discord_harness.bot
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}/bans", guild_id=1))
    [unknown] = discord_harness.rest.unknown_calls
    assert unknown.path == "/guilds/1/bans" and unknown.status == 404


async def test_interaction_state_is_strict(demo) -> None:
    harness, _ = demo
    log = await harness.invoke("voice set", name="Roger")
    # A second answer to the same interaction is refused, as on Discord.
    interaction = discord.Interaction(data=log.payload, state=harness.state)
    with pytest.raises(discord.HTTPException) as excinfo:
        await interaction.response.send_message("again")
    assert excinfo.value.code == 40060
    # So is a follow-up to an interaction Discord never sent.
    stranger = discord.Interaction(data={**log.payload, "token": "unknown"}, state=harness.state)
    with pytest.raises(discord.NotFound):
        await stranger.followup.send("hi")


async def test_injected_failures(demo) -> None:
    harness, _ = demo
    harness.rest.fail(
        "POST", r"/channels/\d+/messages", status=403, code=50013, message="Missing Permissions"
    )
    with pytest.raises(discord.Forbidden):
        await harness.guild.general.send("hi")
    await harness.guild.general.send("hi")  # only once


def test_locked_mocks_refuse_attributes_the_real_objects_lack() -> None:
    lounge = MockVoiceChannel(name="Lounge")
    member = MockMember(name="alice", voice=MockVoiceState(channel=lounge))
    assert isinstance(member, discord.Member) and member.voice.channel.name == "Lounge"
    mocks = [
        member,
        MockGuild(),
        lounge,
        MockMessage(),
        MockInteraction(),
        MockBot(),
        MockVoiceClient(),
    ]
    for mock in mocks:
        with pytest.raises(AttributeError):
            _ = mock.not_a_discord_attribute
        with pytest.raises(AttributeError):
            mock.not_a_discord_attribute = 1
    assert MockMember().voice is None


async def test_locked_mocks_await_coroutine_methods() -> None:
    interaction = MockInteraction()
    await interaction.response.send_message("hi", ephemeral=True)
    interaction.response.send_message.assert_awaited_once_with("hi", ephemeral=True)
    await interaction.followup.send("later")
    member = MockMember()
    await member.move_to(None)
    member.move_to.assert_awaited_once_with(None)
    voice_client = MockVoiceClient()
    assert voice_client.is_connected() and voice_client.guild is voice_client.channel.guild
    await voice_client.disconnect(force=True)
    voice_client.disconnect.assert_awaited_once()


async def test_modal_is_shown_and_submitted(demo) -> None:
    harness, _ = demo
    shown = await harness.invoke("ask", user="bob")
    assert shown.callback.type == CALLBACK_MODAL and shown.callback.data["custom_id"] == "ask"

    submitted = await harness.submit_modal("ask", {"ask:text": "hello"}, user="bob")
    assert submitted.callback.content == "got hello" and submitted.callback.ephemeral
    metadata = submitted.callback.message["interaction_metadata"]
    assert metadata["user"]["id"] == str(harness.guild.member_id("bob"))
