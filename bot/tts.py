"""Speaking for someone: from (member, text, voice) to an item on the guild's player.

Every utterance goes through `SpeechService.speak`, whether it comes from
`/speak` or from a message read aloud: text checks, voice and settings
resolution, quota reservation, and the queue. The cogs only render its result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import aiohttp
import discord

from bot.audio.frames import FrameBuffer
from bot.elevenlabs.models import VoiceSettings
from bot.errors import BotError
from bot.player import GuildPlayer, ItemResult, SpeechItem
from bot.speech import SpeechRequest, Synthesizer
from bot.text import MentionNames, clean_text
from bot.voice import VoiceService

log = logging.getLogger(__name__)


class EmptyTextError(BotError):
    def __init__(self) -> None:
        super().__init__("There is nothing to say: the text is empty once cleaned up.")


class TextTooLongError(BotError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"That text is {length:,} characters long; I speak at most {limit:,} at a time."
        )
        self.length = length
        self.limit = limit


@dataclass(frozen=True)
class VoiceChoice:
    """The voice and settings one utterance is spoken with, and how it was chosen."""

    voice_id: str
    model_id: str | None
    settings: VoiceSettings
    voice_name: str = ""
    notice: str | None = None  # e.g. "your voice no longer exists; used the server's"


class VoiceResolver(Protocol):
    async def resolve(self, guild_id: int, user_id: int, requested: str | None) -> VoiceChoice: ...


class Charge(Protocol):
    """A quota reservation wrapped around one synthesis (see bot.quota)."""

    def headers_received(self, character_cost: int | None, *, request_id: str | None) -> None: ...

    async def finish(self, outcome: Any = None) -> bool: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> Any: ...


ChargeFactory = Callable[[int, int, str, VoiceChoice], Awaitable[Charge | None]]


@dataclass(frozen=True)
class Queued:
    item: SpeechItem
    ahead: int
    choice: VoiceChoice

    async def result(self) -> ItemResult:
        return await self.item.wait()


class GuildNames(Mapping[int, str]):
    """A lazy id -> name view of a guild, for turning mentions into names."""

    def __init__(self, lookup: Callable[[int], Any], attr: str = "name") -> None:
        self._lookup = lookup
        self._attr = attr

    def __getitem__(self, key: int) -> str:
        found = self._lookup(key)
        if found is None:
            raise KeyError(key)
        return str(getattr(found, self._attr))

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


def mention_names(guild: discord.Guild) -> MentionNames:
    return MentionNames(
        users=GuildNames(guild.get_member, "display_name"),
        roles=GuildNames(guild.get_role),
        channels=GuildNames(guild.get_channel_or_thread),
    )


class SpeechService:
    def __init__(
        self,
        *,
        synthesizer: Synthesizer,
        voices: VoiceService,
        resolver: VoiceResolver,
        output_format: str,
        max_text_chars: int = 500,
        charge: ChargeFactory | None = None,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.http_session = http_session
        self.synthesizer = synthesizer
        self.voices = voices
        self.resolver = resolver
        self.output_format = output_format
        self.max_text_chars = max_text_chars
        self.charge = charge
        self._followups: set[asyncio.Task[Any]] = set()

    def prepare_text(self, text: str, guild: discord.Guild) -> str:
        """Mentions read as names, pings and markup gone; refused when empty or too long."""
        if len(text) > self.max_text_chars:
            raise TextTooLongError(len(text), self.max_text_chars)
        cleaned = clean_text(text, names=mention_names(guild))
        if not cleaned.strip():
            raise EmptyTextError()
        return cleaned

    async def speak(
        self,
        member: discord.Member,
        text: str,
        *,
        voice: str | None = None,
        origin: str = "speak",
        message_id: int | None = None,
        player: GuildPlayer | None = None,
        clean: bool = True,
    ) -> Queued:
        """Queue `text` in `member`'s voice channel, joining it if needed.

        Order matters: cheap refusals first (text, caller not in voice), then the voice
        and the quota reservation, and only then joining the channel, so a refused
        message never makes the bot join.
        """
        guild = member.guild
        spoken = self.prepare_text(text, guild) if clean else text
        if player is None:
            self.voices.caller_channel(member)
        choice = await self.resolver.resolve(guild.id, member.id, voice)
        request = SpeechRequest(
            text=spoken,
            voice_id=choice.voice_id,
            model_id=choice.model_id,
            settings=choice.settings,
            output_format=self.output_format,
        )
        charge = await self.charge(guild.id, member.id, spoken, choice) if self.charge else None
        item = SpeechItem(
            make_job=lambda frames: None,
            requester_id=member.id,
            origin=origin,
            text=spoken,
            voice_name=choice.voice_name,
            message_id=message_id,
        )
        item.make_job = self._job_factory(
            request, charge, label=f"g{guild.id}", item=item, guild_id=guild.id, user_id=member.id
        )
        try:
            if player is None:
                player = await self.voices.player_for_speech(member)
            ahead = player.enqueue(item)
        except BaseException:
            if charge is not None:
                await charge.finish()
            raise
        if charge is not None:
            self._watch(item, charge)
        self.voices.touch(guild.id)
        log.info(
            "guild %s: queued item %s from %s (%s, %d chars, voice %s), %d ahead",
            guild.id,
            item.id,
            member.id,
            origin,
            len(spoken),
            choice.voice_id,
            ahead,
        )
        return Queued(item=item, ahead=ahead, choice=choice)

    async def rejob(
        self, queued: Queued, text: str, *, guild_id: int, user_id: int
    ) -> Callable[[FrameBuffer], Any]:
        """A new job for a queued item whose text changed (an edited message).

        The voice chosen when it was queued stays; with quota on, the new text gets its own
        reservation (the old one is settled or released when the old job ends).
        """
        choice = queued.choice
        request = SpeechRequest(
            text=text,
            voice_id=choice.voice_id,
            model_id=choice.model_id,
            settings=choice.settings,
            output_format=self.output_format,
        )
        charge = await self.charge(guild_id, user_id, text, choice) if self.charge else None
        if charge is not None:
            self._watch(queued.item, charge)
        return self._job_factory(
            request,
            charge,
            label=f"g{guild_id}",
            item=queued.item,
            guild_id=guild_id,
            user_id=user_id,
        )

    async def preview(self, member: discord.Member, url: str, *, voice_name: str = "") -> Queued:
        """Play a voice's preview file in `member`'s channel: queued like speech, not charged."""
        session = self.http_session
        if session is None:
            raise BotError("Voice previews are not available right now.")
        player = await self.voices.player_for_speech(member)
        item = SpeechItem(
            make_job=lambda frames: self.synthesizer.url_job(session, url, frames=frames),
            requester_id=member.id,
            origin="preview",
            text=f"preview of {voice_name}" if voice_name else "voice preview",
            voice_name=voice_name,
        )
        ahead = player.enqueue(item)
        self.voices.touch(member.guild.id)
        choice = VoiceChoice(
            voice_id="", model_id=None, settings=VoiceSettings(), voice_name=voice_name
        )
        return Queued(item=item, ahead=ahead, choice=choice)

    def _job_factory(
        self,
        request: SpeechRequest,
        charge: Charge | None,
        *,
        label: str,
        item: SpeechItem,
        guild_id: int,
        user_id: int,
    ) -> Callable[[FrameBuffer], Any]:
        def make(frames: FrameBuffer) -> Any:
            job = SynthesisJob(
                self, request, frames, charge, item=item, guild_id=guild_id, user_id=user_id
            )
            job.label = label
            return job

        return make

    async def aclose(self, grace: float = 10.0) -> None:
        """Wait for the quota charges of finished items to be written (bot shutdown)."""
        pending = [task for task in self._followups if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()

    def _watch(self, item: SpeechItem, charge: Charge) -> None:
        """An item dropped before its job ran still holds a reservation: release it."""

        async def finish_when_done() -> None:
            await item.wait()
            await charge.finish()  # no-op when the job already settled or released it

        task = asyncio.get_running_loop().create_task(finish_when_done())
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)


class SynthesisJob:
    """One item's synthesis: inside its quota charge, with one retry in a fallback voice.

    A voice that vanished or that the plan cannot use is refused before any audio
    (404, 402, 403), so the frame buffer is still empty and the same item can be
    synthesised again in the voice the resolver falls back to. One charge covers both
    attempts: the refused one was never billed.
    """

    def __init__(
        self,
        service: SpeechService,
        request: SpeechRequest,
        frames: FrameBuffer,
        charge: Charge | None,
        *,
        item: SpeechItem,
        guild_id: int,
        user_id: int,
    ) -> None:
        self.service = service
        self.request = request
        self.frames = frames
        self.charge = charge
        self.item = item
        self.guild_id = guild_id
        self.user_id = user_id
        self.label = ""
        self.decode: Any = None

    def _decode_job(self, request: SpeechRequest) -> Any:
        charge = self.charge

        def on_headers(stream: Any) -> None:
            if charge is not None:
                charge.headers_received(stream.character_cost, request_id=stream.request_id)

        self.decode = self.service.synthesizer.job(
            request, frames=self.frames, on_headers=on_headers, label=self.label
        )
        return self.decode

    async def run(self) -> None:
        if self.charge is None:
            await self._run()
            return
        async with self.charge:
            await self._run()

    async def _run(self) -> None:
        from bot.preferences import is_voice_refusal

        try:
            await self._decode_job(self.request).run()
        except Exception as exc:
            fallback = getattr(self.service.resolver, "fallback", None)
            if fallback is None or not is_voice_refusal(exc) or self.frames.frames_written:
                raise
            choice = await fallback(self.guild_id, self.user_id, self.request.voice_id)
            if choice.voice_id == self.request.voice_id:
                raise
            log.info(
                "guild %s: voice %s refused (%s); retrying with %s",
                self.guild_id,
                self.request.voice_id,
                type(exc).__name__,
                choice.voice_id,
            )
            self.item.notice = choice.notice
            self.item.voice_name = choice.voice_name
            retry = replace(
                self.request,
                voice_id=choice.voice_id,
                model_id=choice.model_id,
                settings=choice.settings,
            )
            await self._decode_job(retry).run()

    def __getattr__(self, name: str) -> Any:
        decode = self.__dict__.get("decode")
        if decode is None:
            raise AttributeError(name)
        return getattr(decode, name)


class ChargedJob:
    """Any job with a `run()` inside a quota charge, settled or released by the charging rule."""

    def __init__(self, job: Any, charge: Charge) -> None:
        self.job = job
        self.charge = charge
        self.frames = job.frames

    async def run(self) -> None:
        async with self.charge:
            await self.job.run()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.job, name)
