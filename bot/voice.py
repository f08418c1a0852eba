"""Voice connections: who may make the bot join, when it leaves, one player per guild.

The rules, in one place:
- the caller must be in a voice channel; if the bot is already connected
  elsewhere in the guild, only that channel's members may queue (unless nobody
  listens there any more), and only they or members with Move Members may move
  it, stop it, skip or make it leave;
- the AFK channel is refused; a full channel is joined only with Move Members;
  a stage channel needs the bot to become a speaker;
- the bot leaves when no non-bot member is left (after a grace period) and when
  nothing has played for the idle timeout;
- moved by someone: it follows and keeps the queue; disconnected or kicked: the
  queue is cleared and everything is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import discord

from bot.audio.encoding import Encoding
from bot.errors import BotError
from bot.player import EncoderSettings, GuildPlayer

log = logging.getLogger(__name__)

VoiceChannel = discord.VoiceChannel | discord.StageChannel


class VoiceError(BotError):
    """A reason the bot cannot join or speak in a voice channel."""


class NotInVoiceError(VoiceError):
    def __init__(self) -> None:
        super().__init__("Join a voice channel first, then try again.")


class WrongChannelError(VoiceError):
    def __init__(self, channel: VoiceChannel) -> None:
        super().__init__(
            f"I am already speaking in {channel.mention}: join that channel to queue messages."
        )


class ControlledElsewhereError(VoiceError):
    def __init__(self, channel: VoiceChannel) -> None:
        super().__init__(
            f"I am speaking in {channel.mention} for the people there: join that channel to "
            "control me, or ask someone with the Move Members permission."
        )


class AFKChannelError(VoiceError):
    def __init__(self) -> None:
        super().__init__("I do not speak in the AFK channel.")


class MissingVoicePermissionsError(VoiceError):
    def __init__(self, channel: VoiceChannel, missing: list[str]) -> None:
        super().__init__(
            f"I need the {' and '.join(missing)} permission{'s' if len(missing) > 1 else ''} "
            f"in {channel.mention}."
        )


class ChannelFullError(VoiceError):
    def __init__(self, channel: VoiceChannel) -> None:
        super().__init__(
            f"{channel.mention} is full, and I lack the Move Members permission to join anyway."
        )


class StageSpeakerError(VoiceError):
    def __init__(self, channel: VoiceChannel) -> None:
        super().__init__(
            f"I could not become a speaker in the stage {channel.mention}: "
            "invite me to speak, or give me the Mute Members permission there."
        )


class ConnectFailedError(VoiceError):
    def __init__(self) -> None:
        super().__init__("Connecting to the voice channel failed; try again in a moment.")


class NotConnectedError(VoiceError):
    def __init__(self) -> None:
        super().__init__("I am not in a voice channel in this server.")


PlayerFactory = Callable[[int], GuildPlayer]


def _wake_player_thread(voice: discord.VoiceClient) -> None:
    """End a player thread that is waiting for a reconnect that will not come.

    discord.py 2.7's `AudioPlayer`, on finding the connection gone, waits up to the connect
    timeout for it to come back, and `stop()` does not wake that wait. The connection flips
    its event once when it disconnects; a thread that started waiting just after that flip
    would sit there for 30 s after a kick. Flipping it again (now, and a moment later) lets
    it see it was stopped. Guarded: on another discord.py this does nothing.
    """
    event = getattr(getattr(voice, "_connection", None), "_connected", None)
    if not isinstance(event, threading.Event):
        return

    def flip() -> None:
        if not voice.is_connected():
            event.set()
            event.clear()

    flip()
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().call_later(0.2, flip)


async def _played_out(player: GuildPlayer, within: float = 2.0) -> None:
    """Wait (bounded) until the player's last playback has ended and its `after` has run.

    The playback thread ends a moment after it is stopped, and hands its end back to the
    event loop; at shutdown the loop must still be there to take it.
    """
    deadline = time.monotonic() + within
    # The player has no event for it (it is set from the player thread's `after`): poll.
    while player.playing and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def _close(player: GuildPlayer) -> None:
    await player.aclose()
    await _played_out(player)


class VoiceService:
    """Joins, leaves and the guild players. The cogs call this; it never replies itself."""

    def __init__(
        self,
        *,
        voice_client_cls: type[discord.VoiceClient] = discord.VoiceClient,
        queue_limit: int = 20,
        encoder: EncoderSettings | None = None,
        encoding: Encoding | None = None,
        idle_timeout: float = 300.0,
        empty_grace: float = 20.0,
        connect_timeout: float = 30.0,
        sweep_interval: float = 5.0,
    ) -> None:
        self.voice_client_cls = voice_client_cls
        self.queue_limit = queue_limit
        self.encoder = encoder or EncoderSettings()
        self.encoding = encoding
        self.idle_timeout = idle_timeout
        self.empty_grace = empty_grace
        self.connect_timeout = connect_timeout
        self.sweep_interval = sweep_interval
        self.players: dict[int, GuildPlayer] = {}
        self._last_active: dict[int, float] = {}
        self._empty_since: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ players

    def player(self, guild_id: int) -> GuildPlayer:
        player = self.players.get(guild_id)
        if player is None:
            player = GuildPlayer(
                guild_id,
                queue_limit=self.queue_limit,
                encoder=self.encoder,
                encoding=self.encoding,
            )
            self.players[guild_id] = player
        return player

    def touch(self, guild_id: int) -> None:
        """Something was queued or played: the idle timer starts again."""
        self._last_active[guild_id] = time.monotonic()

    # ------------------------------------------------------------------ joining

    @staticmethod
    def caller_channel(member: discord.Member) -> VoiceChannel:
        if member.voice is None or member.voice.channel is None:
            raise NotInVoiceError()
        return member.voice.channel

    def check_can_join(self, channel: VoiceChannel) -> None:
        """Refuse, with the reason, a channel the bot must not or cannot join."""
        guild = channel.guild
        if guild.afk_channel is not None and channel.id == guild.afk_channel.id:
            raise AFKChannelError()
        perms = channel.permissions_for(guild.me)
        # Without View Channel Discord denies everything, and without Connect every voice
        # permission: name only the first one missing, the one to grant.
        missing: list[str] = []
        if not perms.view_channel:
            missing = ["View Channel"]
        elif not perms.connect:
            missing = ["Connect"]
        elif not perms.speak and not isinstance(channel, discord.StageChannel):
            missing = ["Speak"]
        if missing:
            raise MissingVoicePermissionsError(channel, missing)
        humans = [m for m in channel.members if m.id != guild.me.id]
        if channel.user_limit and len(humans) >= channel.user_limit and not perms.move_members:
            raise ChannelFullError(channel)

    @staticmethod
    def connected_channel(guild: discord.Guild) -> VoiceChannel | None:
        """The channel the bot is connected to in `guild`, if any."""
        voice = guild.voice_client
        if isinstance(voice, discord.VoiceClient) and voice.is_connected():
            return voice.channel
        return None

    def require_control(self, member: discord.Member) -> None:
        """Moving, stopping or skipping is for the bot's listeners (or moderators).

        Anyone may take the bot when nobody else is listening to it.
        """
        channel = self.connected_channel(member.guild)
        if channel is None:
            return
        here = member.voice.channel if member.voice is not None else None
        if here is not None and here.id == channel.id:
            return
        if channel.permissions_for(member).move_members:
            return
        if any(m.id != member.id for m in self._humans(channel)):
            raise ControlledElsewhereError(channel)

    async def join(self, channel: VoiceChannel) -> discord.VoiceClient:
        """Connect to `channel`, or move there if connected elsewhere in the guild."""
        guild = channel.guild
        lock = self._locks.setdefault(guild.id, asyncio.Lock())
        async with lock:
            current = guild.voice_client
            if isinstance(current, discord.VoiceClient) and current.is_connected():
                if current.channel.id == channel.id:
                    return current
                self.check_can_join(channel)
                await current.move_to(channel)
                voice = current
            else:
                self.check_can_join(channel)
                if current is not None:  # a half-dead connection: start over
                    with contextlib.suppress(Exception):
                        await current.disconnect(force=True)
                try:
                    voice = await channel.connect(
                        cls=self.voice_client_cls,
                        timeout=self.connect_timeout,
                        self_deaf=True,
                        reconnect=True,
                    )
                except (TimeoutError, discord.ClientException, discord.HTTPException) as exc:
                    log.warning("guild %s: voice connect failed: %r", guild.id, exc)
                    raise ConnectFailedError() from None
            if isinstance(channel, discord.StageChannel):
                await self._become_speaker(channel, voice)
            self.player(guild.id).attach(voice)
            self.touch(guild.id)
            self._empty_since.pop(guild.id, None)
            self._ensure_sweeper()
            log.info("guild %s: joined voice channel %s", guild.id, channel.id)
            return voice

    async def _become_speaker(
        self, channel: discord.StageChannel, voice: discord.VoiceClient
    ) -> None:
        me = channel.guild.me
        try:
            if channel.permissions_for(me).mute_members:
                await me.edit(suppress=False)
            else:
                await me.request_to_speak()
        except discord.HTTPException:
            with contextlib.suppress(Exception):
                await voice.disconnect(force=True)
            raise StageSpeakerError(channel) from None

    async def player_for_speech(self, member: discord.Member) -> GuildPlayer:
        """The guild's player, joining the caller's channel if the bot is not connected.

        Connected elsewhere, only that channel's members may queue; but a channel nobody
        listens in any more (the grace period before leaving) does not hold the bot back.
        """
        channel = self.caller_channel(member)
        voice = member.guild.voice_client
        if (
            isinstance(voice, discord.VoiceClient)
            and voice.is_connected()
            and voice.channel.id != channel.id
            and not self._humans(voice.channel)
        ):
            log.info("guild %s: nobody left in %s; following", member.guild.id, voice.channel.id)
            await self.join(channel)
            player = self.player(member.guild.id)
        elif isinstance(voice, discord.VoiceClient) and voice.is_connected():
            if voice.channel.id != channel.id:
                raise WrongChannelError(voice.channel)
            player = self.player(member.guild.id)
            if player.voice_client is not voice:
                player.attach(voice)
        else:
            await self.join(channel)
            player = self.player(member.guild.id)
        self.touch(member.guild.id)
        return player

    async def leave(self, guild: discord.Guild) -> bool:
        """Stop speaking and disconnect. False when the bot was not connected."""
        player = self.players.pop(guild.id, None)
        if player is not None:
            await player.aclose()
        self._last_active.pop(guild.id, None)
        self._empty_since.pop(guild.id, None)
        voice = guild.voice_client
        if voice is None:
            return player is not None and player.voice_client is not None
        await voice.disconnect(force=True)
        if player is not None:
            await _played_out(player)
        log.info("guild %s: left voice", guild.id)
        return True

    # ------------------------------------------------------------------ gateway events

    def on_voice_state_update(
        self,
        member: discord.Member,
        before: discord.VoiceState,
        after: discord.VoiceState,
    ) -> None:
        guild = member.guild
        if member.id == guild.me.id:
            if after.channel is None:
                # Disconnected or kicked: clear the queue and free everything.
                player = self.players.pop(guild.id, None)
                if player is not None:
                    voice = player.voice_client
                    player.detach()
                    if voice is not None:
                        voice.stop()
                        _wake_player_thread(voice)
                    self._background(_close(player), f"close player of guild {guild.id}")
                self._last_active.pop(guild.id, None)
                self._empty_since.pop(guild.id, None)
                log.info("guild %s: disconnected from voice", guild.id)
            elif before.channel is not None and before.channel.id != after.channel.id:
                log.info("guild %s: moved to %s; keeping the queue", guild.id, after.channel.id)
                self._empty_since.pop(guild.id, None)
            return
        voice = guild.voice_client
        if voice is None or not isinstance(voice.channel, discord.abc.GuildChannel):
            return
        if self._humans(voice.channel):
            self._empty_since.pop(guild.id, None)
        else:
            self._empty_since.setdefault(guild.id, time.monotonic())
            self._ensure_sweeper()

    def _background(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run `coro` without waiting, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _humans(channel: discord.abc.GuildChannel) -> list[discord.Member]:
        return [m for m in getattr(channel, "members", []) if not m.bot]

    # ------------------------------------------------------------------ leaving when idle

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="voice sweeper"
            )

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception:  # one bad guild must not stop the sweeps
                log.exception("voice sweep failed")

    async def sweep(self, now: float | None = None) -> list[int]:
        """Leave the guilds whose channel is empty past the grace or idle past the timeout."""
        now = time.monotonic() if now is None else now
        left: list[int] = []
        for guild_id, player in list(self.players.items()):
            voice = player.voice_client
            if voice is None or not voice.is_connected():
                continue
            empty_since = self._empty_since.get(guild_id)
            if empty_since is None and not self._humans(voice.channel):
                self._empty_since[guild_id] = empty_since = now
            idle_for = now - self._last_active.get(guild_id, now)
            if not player.idle:
                self._last_active[guild_id] = now
                idle_for = 0.0
            reason = None
            if empty_since is not None and now - empty_since >= self.empty_grace:
                reason = "nobody left in the channel"
            elif self.idle_timeout and idle_for >= self.idle_timeout:
                reason = f"idle for {self.idle_timeout:.0f} s"
            if reason is not None:
                log.info("guild %s: leaving voice: %s", guild_id, reason)
                await self.leave(voice.guild)
                left.append(guild_id)
        return left

    async def aclose(self) -> None:
        """Stop every player and leave every channel (bot shutdown)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for guild_id, player in list(self.players.items()):
            voice = player.voice_client
            await player.aclose()
            if voice is not None:
                with contextlib.suppress(Exception):
                    await voice.disconnect(force=True)
            await _played_out(player)
            self.players.pop(guild_id, None)
