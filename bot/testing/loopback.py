"""A discord.py ``VoiceClient`` that is connected to nothing and records what it sends.

Everything on the send path is the real discord.py 2.7.1 code: ``VoiceClient.play()``, the
``AudioPlayer`` thread and its pacing, the Opus ``Encoder`` built from the ``play()`` keywords,
the RTP header, sequence and timestamp arithmetic, and the transport encryption
(``_get_voice_packet`` with the negotiated mode and a secret key this module chose). Only the
last step, ``VoiceConnectionState.send_packet`` (a UDP ``sendall``), is replaced: the packet is
stamped with ``time.perf_counter()`` and stored. The recorded packets are decrypted with the key
held here, which proves the bytes that would have gone on the wire are right, and decoded back
to PCM with discord.py's own ``opus.Decoder``.

What stands in for Discord, and why:

* the main gateway: a voice-state request (op 4) is recorded in ``gateway_requests`` and answered
  at once with the ``VOICE_STATE_UPDATE`` / ``VOICE_SERVER_UPDATE`` payloads Discord would send,
  which go through discord.py's real handlers;
* the voice websocket: ``LoopbackVoiceWebSocket`` records SPEAKING updates and the close; the
  HELLO / READY / SESSION_DESCRIPTION exchange is reduced to setting what it would set (SSRC,
  mode, secret key, DAVE protocol version);
* no UDP socket is made, so there is no IP discovery and nothing to receive.

DAVE (end-to-end encryption) is not negotiated: the session description carries
``dave_protocol_version = 0``, so ``dave_session`` stays ``None`` and ``_get_voice_packet`` passes
the Opus frame straight to transport encryption, exactly as discord.py does with a voice server
that does not offer DAVE. A real DAVE session needs Discord's voice server as the MLS external
sender (proposals, commit, welcome); faking one would test the fake, not discord.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import discord
import nacl.secret
from discord import opus
from discord.enums import SpeakingState
from discord.player import OPUS_SILENCE, AudioPlayer, AudioSource
from discord.user import ClientUser
from discord.utils import MISSING
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

__all__ = (
    "DEFAULT_MODE",
    "GatewayVoiceRequest",
    "LoopbackConnectionState",
    "LoopbackVoiceClient",
    "LoopbackVoiceWebSocket",
    "PlayCall",
    "RtpBreak",
    "SentPacket",
    "decrypt_voice_packet",
)

_log = logging.getLogger(__name__)

DEFAULT_MODE = "aead_xchacha20_poly1305_rtpsize"
RTP_HEADER_SIZE = 12
SAMPLES_PER_FRAME = opus.Encoder.SAMPLES_PER_FRAME  # RTP timestamp step: 960 at 48 kHz
OPUS_SILENCE_FRAME = OPUS_SILENCE  # b"\xf8\xff\xfe", five of them end every play()
LOOPBACK_ENDPOINT = "loopback.invalid:443"

DEFAULT_GUILD_ID = 900_000_000_000_000_001
DEFAULT_CHANNEL_ID = 900_000_000_000_000_002
DEFAULT_USER_ID = 900_000_000_000_000_003

_POLL_INTERVAL = 0.01


def decrypt_voice_packet(packet: bytes, *, mode: str, secret_key: bytes) -> bytes:
    """The Opus payload of a voice packet, decrypted as a Discord voice server would.

    Raises ``nacl.exceptions.CryptoError`` if the packet does not authenticate.
    """
    header = packet[:RTP_HEADER_SIZE]
    body = packet[RTP_HEADER_SIZE:]
    if mode == "aead_xchacha20_poly1305_rtpsize":
        # 32-bit counter appended, zero-padded to 24 bytes; the RTP header is the AAD.
        nonce = body[-4:] + bytes(20)
        return nacl.secret.Aead(secret_key).decrypt(body[:-4], header, nonce)
    box = nacl.secret.SecretBox(secret_key)
    if mode == "xsalsa20_poly1305_lite":
        return box.decrypt(body[:-4], body[-4:] + bytes(20))
    if mode == "xsalsa20_poly1305_suffix":
        return box.decrypt(body[:-24], body[-24:])
    if mode == "xsalsa20_poly1305":
        return box.decrypt(body, header + bytes(12))
    raise ValueError(f"unknown voice encryption mode {mode!r}")


@dataclass(frozen=True, slots=True)
class SentPacket:
    """One voice packet as it left ``send_audio_packet``, with its payload decrypted."""

    index: int
    sent_at: float  # time.perf_counter() when send_packet was called
    version: int  # RTP version, 2
    payload_type: int  # 120 (0x78) for discord.py
    sequence: int
    timestamp: int
    ssrc: int
    opus: bytes  # decrypted payload (what the Opus encoder produced, or OPUS_SILENCE)
    raw: bytes  # the encrypted packet as it would have gone on the wire
    thread: threading.Thread  # the AudioPlayer thread that sent it (or whoever called)

    @property
    def is_silence(self) -> bool:
        return self.opus == OPUS_SILENCE


@dataclass(frozen=True, slots=True)
class RtpBreak:
    """A packet whose sequence, timestamp or SSRC does not follow from the previous one."""

    index: int
    expected_sequence: int
    sequence: int
    expected_timestamp: int
    timestamp: int
    expected_ssrc: int
    ssrc: int


@dataclass(frozen=True, slots=True)
class PlayCall:
    """One ``play()`` call: the source, the player thread it started and the encoder keywords."""

    source: AudioSource
    player: AudioPlayer
    after: Callable[[Exception | None], Any] | None
    application: str
    bitrate: int
    fec: bool
    expected_packet_loss: float
    bandwidth: str
    signal_type: str


@dataclass(frozen=True, slots=True)
class GatewayVoiceRequest:
    """An op 4 (voice state update) discord.py would have sent on the main gateway."""

    guild_id: int
    channel_id: int | None
    self_mute: bool
    self_deaf: bool


class LoopbackVoiceWebSocket:
    """Stands in for ``DiscordVoiceWebSocket``: only what the send path touches.

    Anything else raises ``AttributeError``, so code that needs more of the voice websocket
    fails loudly instead of silently working against a fake.
    """

    def __init__(self) -> None:
        self.speaking: list[SpeakingState] = []
        self.close_codes: list[int] = []
        self.latency: float = 0.0
        self.average_latency: float = 0.0

    async def speak(self, state: SpeakingState = SpeakingState.voice) -> None:
        self.speaking.append(state)

    async def close(self, code: int = 1000) -> None:
        self.close_codes.append(code)


class LoopbackConnectionState(VoiceConnectionState):
    """``VoiceConnectionState`` whose network edges are the loopback; the rest is inherited."""

    voice_client: LoopbackVoiceClient

    def send_packet(self, packet: bytes) -> None:
        self.voice_client._capture(packet)

    async def connect(
        self,
        *,
        reconnect: bool,
        timeout: float,  # noqa: ASYNC109 - discord.py's signature
        self_deaf: bool,
        self_mute: bool,
        resume: bool,
        wait: bool = True,
    ) -> None:
        vc = self.voice_client
        self.timeout = timeout
        self.reconnect = reconnect
        self.self_deaf = self_deaf
        self.self_mute = self_mute

        await self._voice_connect(self_deaf=self_deaf, self_mute=self_mute)
        self.state = ConnectionFlowState.set_guild_voice_state
        # Discord answers op 4 with both updates; discord.py's own handlers take them.
        await self.voice_state_update(vc._voice_state_payload(vc.channel.id))
        await self.voice_server_update(
            {
                "token": secrets.token_hex(8),
                "guild_id": str(vc.guild.id),
                "endpoint": LOOPBACK_ENDPOINT,
            }
        )
        # Voice websocket HELLO / READY / IP discovery / SESSION_DESCRIPTION, reduced to their
        # effects.
        self.ws = LoopbackVoiceWebSocket()  # type: ignore[assignment]
        self.state = ConnectionFlowState.websocket_connected
        self.ssrc = vc.loopback_ssrc
        self.ip, self.port = "127.0.0.1", 50_000
        self.state = ConnectionFlowState.got_ip_discovery
        self.mode = vc.loopback_mode  # type: ignore[assignment]
        self.secret_key = list(vc.loopback_secret_key)
        self.dave_protocol_version = 0  # DAVE not negotiated: dave_session stays None
        self.state = ConnectionFlowState.connected
        vc._cache_own_voice_state(vc.channel.id)
        _log.debug(
            "loopback voice connected: guild=%s channel=%s ssrc=%s mode=%s",
            vc.guild.id,
            vc.channel.id,
            self.ssrc,
            self.mode,
        )

    async def _voice_connect(self, *, self_deaf: bool = False, self_mute: bool = False) -> None:
        self.voice_client._record_gateway(self.voice_client.channel.id, self_mute, self_deaf)

    async def _voice_disconnect(self) -> None:
        vc = self.voice_client
        self.state = ConnectionFlowState.disconnected
        vc._record_gateway(None, False, False)
        self._expecting_disconnect = True
        self._disconnected.clear()
        # Discord confirms with a VOICE_STATE_UPDATE without a channel.
        await self.voice_state_update(vc._voice_state_payload(None))
        vc._cache_own_voice_state(None)

    async def _move_to(self, channel: discord.abc.Snowflake) -> None:
        vc = self.voice_client
        target = vc.guild.get_channel(channel.id)
        if not isinstance(target, discord.VoiceChannel | discord.StageChannel):
            raise discord.ClientException(
                f"loopback: {channel.id} is not a voice channel of guild {vc.guild.id}; "
                "add it with add_voice_channel() first"
            )
        vc._record_gateway(target.id, self.self_mute, self.self_deaf)
        self.state = ConnectionFlowState.set_guild_voice_state
        await self.voice_state_update(vc._voice_state_payload(target.id))
        # The new voice server handshake is instant on the loopback.
        self.state = ConnectionFlowState.connected
        vc._cache_own_voice_state(target.id)

    def _create_socket(self) -> None:
        # No UDP socket: nothing is sent on the network and nothing is received.
        pass

    def add_socket_listener(self, callback: Callable[[bytes], Any]) -> None:
        raise NotImplementedError("the loopback voice client has no receive side")


class LoopbackVoiceClient(discord.VoiceClient):
    """A connected-looking ``VoiceClient`` that records every packet it sends.

    Build one with ``await LoopbackVoiceClient.create()`` (its own not-logged-in ``discord.Client``,
    guild and voice channel, made from payloads), ``await LoopbackVoiceClient.create(channel=ch)``
    for a channel of an existing client, or ``await channel.connect(cls=LoopbackVoiceClient)``.
    Finish with ``await voice.close()`` (the ``loopback_voice`` fixture does it).

    ``speed`` > 1 makes the real ``AudioPlayer`` pace faster than real time (it divides the
    player's 20 ms frame delay); benchmarks must keep 1.0.
    """

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        self.loopback_mode: str = DEFAULT_MODE
        self.loopback_secret_key: bytes = secrets.token_bytes(32)
        self.loopback_ssrc: int = secrets.randbits(32)
        self.speed: float = 1.0
        self.wait_timeout: float = 10.0
        self.gateway_requests: list[GatewayVoiceRequest] = []
        self.plays: list[PlayCall] = []
        self.sender_playbacks: list[Any] = []  # bot.audio.sender.Playback, newest last
        self.owns_client: bool = False
        self._captures: list[tuple[float, bytes, threading.Thread]] = []
        self._decrypted: list[SentPacket] = []
        self._decrypt_lock = threading.Lock()
        self._changed = asyncio.Event()
        super().__init__(client, channel)

    def create_connection_state(self) -> VoiceConnectionState:
        return LoopbackConnectionState(self)

    # construction

    @classmethod
    async def create(
        cls,
        *,
        channel: discord.VoiceChannel | discord.StageChannel | None = None,
        guild_id: int = DEFAULT_GUILD_ID,
        channel_id: int = DEFAULT_CHANNEL_ID,
        user_id: int = DEFAULT_USER_ID,
        mode: str = DEFAULT_MODE,
        secret_key: bytes | None = None,
        ssrc: int | None = None,
        speed: float = 1.0,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> Self:
        """A connected loopback voice client, registered with its client like a real one.

        Without ``channel``, a ``discord.Client`` (not logged in, no gateway), its user, a guild
        and a voice channel are built from payloads by discord.py itself; ``close()`` closes
        that client. With ``channel``, its client must have an event loop (``async with
        client`` or ``login``); ``close()`` leaves that client alone.
        """
        if mode not in cls.supported_modes:
            raise ValueError(f"mode must be one of {cls.supported_modes}, not {mode!r}")
        if speed <= 0:
            raise ValueError("speed must be positive")
        owns_client = channel is None
        if channel is None:
            channel = await _build_loopback_channel(guild_id, channel_id, user_id)
        client = channel._state._get_client()
        if not isinstance(client.loop, asyncio.AbstractEventLoop) or _state_loop_missing(client):
            raise RuntimeError(
                "the channel's client has no event loop: use `async with client` or log it in"
            )
        key_id, _ = channel._get_voice_client_key()
        state = channel._state
        if state._get_voice_client(key_id):
            raise discord.ClientException("Already connected to a voice channel.")

        voice = cls(client, channel)
        voice.owns_client = owns_client
        voice.loopback_mode = mode
        if secret_key is not None:
            if len(secret_key) != 32:
                raise ValueError("secret_key must be 32 bytes")
            voice.loopback_secret_key = bytes(secret_key)
        if ssrc is not None:
            voice.loopback_ssrc = ssrc
        voice.speed = speed
        state._add_voice_client(key_id, voice)  # as abc.Connectable.connect does
        try:
            await voice.connect(
                reconnect=True, timeout=30.0, self_deaf=self_deaf, self_mute=self_mute
            )
        except BaseException:
            await voice.close()
            raise
        return voice

    def add_voice_channel(
        self, channel_id: int, *, name: str | None = None
    ) -> discord.VoiceChannel:
        """Add a voice channel to the guild cache, e.g. as a ``move_to()`` target."""
        return _add_voice_channel(self.guild, channel_id, name or f"loopback-{channel_id}")

    async def close(self) -> None:
        """Stop playback, disconnect, and wait until no thread of this client is left.

        Safe to call more than once and in any state. Raises ``TimeoutError`` if a thread
        would not end, so a leak shows up in the test that caused it.
        """
        self.stop()
        if self._connection.state is not ConnectionFlowState.disconnected:
            await self.disconnect(force=True)
        else:
            self._connection._socket_reader.stop()
            key_id, _ = self.channel._get_voice_client_key()
            if self._state._get_voice_client(key_id) is self:
                self.cleanup()
        await self._wait(
            lambda: not any(t.is_alive() for t in self.threads()),
            "player and socket-reader threads to end",
        )
        # Let the SPEAKING updates the player scheduled with run_coroutine_threadsafe run.
        for _ in range(3):
            await asyncio.sleep(0)
        if self.owns_client and not self.client.is_closed():
            await self.client.close()

    def threads(self) -> list[threading.Thread]:
        """Every thread discord.py started for this client (players and the socket reader)."""
        return [call.player for call in self.plays] + [self._connection._socket_reader]

    # playback (the real thing, recorded)

    def play(
        self,
        source: AudioSource,
        *,
        after: Callable[[Exception | None], Any] | None = None,
        application: opus.APPLICATION_CTL = "audio",
        bitrate: int = 128,
        fec: bool = True,
        expected_packet_loss: float = 0.15,
        bandwidth: opus.BAND_CTL = "full",
        signal_type: opus.SIGNAL_CTL = "auto",
    ) -> None:
        super().play(
            source,
            after=after,
            application=application,
            bitrate=bitrate,
            fec=fec,
            expected_packet_loss=expected_packet_loss,
            bandwidth=bandwidth,
            signal_type=signal_type,
        )
        player = self._player
        assert player is not None
        if self.speed != 1.0:
            # Read by the player thread at each frame; the first frame may still use 20 ms.
            player.DELAY = 0.0 if math.isinf(self.speed) else AudioPlayer.DELAY / self.speed
        self.plays.append(
            PlayCall(
                source=source,
                player=player,
                after=after,
                application=application,
                bitrate=bitrate,
                fec=fec,
                expected_packet_loss=expected_packet_loss,
                bandwidth=bandwidth,
                signal_type=signal_type,
            )
        )

    def on_sender_playback(self, playback: Any) -> None:
        """Called by ``bot.audio.sender.VoiceSender.play`` (the bot's own player) on this client."""
        self.sender_playbacks.append(playback)

    @property
    def packet_interval(self) -> float:
        """Seconds between packets for the bot's sender: 20 ms divided by ``speed``."""
        return 0.0 if math.isinf(self.speed) else AudioPlayer.DELAY / self.speed

    @property
    def playbacks(self) -> int:
        """How many playbacks were started: ``play()`` calls and the bot sender's."""
        return len(self.plays) + len(self.sender_playbacks)

    @property
    def player_running(self) -> bool:
        """True while a playback is on: a ``play()`` thread alive, or a sender playback not
        done (``after`` not yet called, source not yet cleaned up)."""
        return any(call.player.is_alive() for call in self.plays) or any(
            not playback.done for playback in self.sender_playbacks
        )

    # what was sent

    @property
    def packet_count(self) -> int:
        return len(self._captures)

    @property
    def packets(self) -> list[SentPacket]:
        """Every packet sent so far, parsed and decrypted (in send order)."""
        with self._decrypt_lock:
            return self._decrypt_new()

    def _decrypt_new(self) -> list[SentPacket]:
        captures = self._captures[len(self._decrypted) :]
        key = self.loopback_secret_key
        for sent_at, raw, thread in captures:
            version_byte, payload_type, sequence, timestamp, ssrc = struct.unpack_from(
                ">BBHII", raw
            )
            self._decrypted.append(
                SentPacket(
                    index=len(self._decrypted),
                    sent_at=sent_at,
                    version=version_byte >> 6,
                    payload_type=payload_type & 0x7F,
                    sequence=sequence,
                    timestamp=timestamp,
                    ssrc=ssrc,
                    opus=decrypt_voice_packet(raw, mode=self.mode, secret_key=key),
                    raw=raw,
                    thread=thread,
                )
            )
        return list(self._decrypted)

    def packets_of(self, call: PlayCall | int) -> list[SentPacket]:
        """The packets sent by one ``play()`` (a ``PlayCall`` or its index in ``plays``)."""
        player = (self.plays[call] if isinstance(call, int) else call).player
        return [p for p in self.packets if p.thread is player]

    def silence_packet_count(self, packets: Sequence[SentPacket] | None = None) -> int:
        """Packets whose payload is discord.py's Opus silence frame."""
        return sum(p.is_silence for p in self._select(packets))

    def audio_packets(self, packets: Sequence[SentPacket] | None = None) -> list[SentPacket]:
        """Packets that carry encoded audio (not the silence frame)."""
        return [p for p in self._select(packets) if not p.is_silence]

    def inter_packet_gaps(self, packets: Sequence[SentPacket] | None = None) -> list[float]:
        """Seconds between consecutive sends (for benchmarks; tests should not assert on them)."""
        times = [p.sent_at for p in self._select(packets)]
        return [b - a for a, b in itertools.pairwise(times)]

    def rtp_breaks(self, packets: Sequence[SentPacket] | None = None) -> list[RtpBreak]:
        """Packets that do not continue the previous one: sequence +1 (mod 2**16), timestamp
        +960 (mod 2**32) and the same SSRC.

        discord.py's own wrap of the timestamp (to 0, not modulo) would show up here; it takes
        over 24 hours of audio to reach it.
        """
        selected = self._select(packets)
        breaks = []
        for prev, cur in itertools.pairwise(selected):
            seq = (prev.sequence + 1) % 0x1_0000
            ts = (prev.timestamp + SAMPLES_PER_FRAME) % 0x1_0000_0000
            if (cur.sequence, cur.timestamp, cur.ssrc) != (seq, ts, prev.ssrc):
                breaks.append(
                    RtpBreak(cur.index, seq, cur.sequence, ts, cur.timestamp, prev.ssrc, cur.ssrc)
                )
        return breaks

    def assert_rtp_continuous(self, packets: Sequence[SentPacket] | None = None) -> None:
        breaks = self.rtp_breaks(packets)
        assert not breaks, f"RTP discontinuities: {breaks[:5]}"

    def decoded_frames(self, packets: Iterable[SentPacket] | None = None) -> list[bytes]:
        """PCM (48 kHz s16le stereo) of each packet, decoded in order by one ``opus.Decoder``."""
        decoder = opus.Decoder()
        return [decoder.decode(p.opus, fec=False) for p in self._select(packets)]

    def decode_pcm(self, packets: Iterable[SentPacket] | None = None) -> bytes:
        """All decoded PCM, as a listener would hear it (silence frames included)."""
        return b"".join(self.decoded_frames(packets))

    @property
    def speaking_states(self) -> list[SpeakingState]:
        """SPEAKING updates sent on the voice websocket, in order (applied on the event loop)."""
        ws = self._connection.ws
        return list(ws.speaking) if isinstance(ws, LoopbackVoiceWebSocket) else []

    def clear_packets(self) -> None:
        """Forget recorded packets (e.g. between benchmark rounds); RTP counters go on."""
        with self._decrypt_lock:
            self._captures = []
            self._decrypted = []

    # waiting (asyncio side; the player thread only ever calls loop.call_soon_threadsafe)

    # Each wait gives up after ``wait_timeout`` seconds with a TimeoutError that says what was
    # sent, so a broken test fails instead of hanging; wrap a call in ``asyncio.timeout()`` for a
    # shorter limit.

    async def wait_for_packets(self, count: int) -> None:
        await self._wait(lambda: self.packet_count >= count, f"{count} packets")

    async def wait_until_done(self) -> None:
        """Wait until every player thread has ended (``after`` called, source cleaned up)."""
        await self._wait(lambda: not self.player_running, "the player to finish")

    async def wait_until(self, predicate: Callable[[], bool], *, what: str = "condition") -> None:
        """Wait until ``predicate()`` holds; it is re-checked on each packet and every 10 ms."""
        await self._wait(predicate, what)

    async def _wait(self, predicate: Callable[[], bool], what: str) -> None:
        timeout = self.wait_timeout
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._changed.clear()
                    try:
                        async with asyncio.timeout(_POLL_INTERVAL):
                            await self._changed.wait()
                    except TimeoutError:
                        pass
        except TimeoutError:
            raise TimeoutError(
                f"loopback voice: timed out after {timeout}s waiting for {what} "
                f"({self.packet_count} packets sent, player running: {self.player_running})"
            ) from None

    # disconnects

    async def simulate_disconnect(self) -> None:
        """Discord removes the bot from the channel (kick, channel deleted, moved out).

        The ``VOICE_STATE_UPDATE`` without a channel goes through discord.py's main-gateway
        handler when the guild is in the client's cache (so ``on_voice_state_update`` is
        dispatched to the client's listeners), else straight to ``on_voice_state_update`` of
        this client. discord.py then disconnects: ``is_connected()`` turns false, the player is
        stopped (``after`` is called with no error, no trailing silence is sent since the
        connection is gone) and the client leaves ``client.voice_clients``.
        """
        if not self.is_connected():
            raise discord.ClientException("Not connected to voice.")
        _log.debug("loopback voice: simulating a disconnect by Discord, guild=%s", self.guild.id)
        payload = self._voice_state_payload(None)
        state = self._state
        if state.user is not None and state._get_guild(self.guild.id) is self.guild:
            state.parse_voice_state_update(payload)  # type: ignore[arg-type]
        else:
            await self.on_voice_state_update(payload)  # type: ignore[arg-type]
        await self._wait(
            lambda: (
                self._connection.state is ConnectionFlowState.disconnected
                and not self.player_running
            ),
            "the simulated disconnect to complete",
        )

    # internals

    def _select(self, packets: Iterable[SentPacket] | None) -> list[SentPacket]:
        return self.packets if packets is None else list(packets)

    def _capture(self, packet: bytes) -> None:
        # Runs on the player thread: append (atomic) and hand a wake-up to the loop.
        self._captures.append((time.perf_counter(), bytes(packet), threading.current_thread()))
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self._changed.set)

    def _record_gateway(self, channel_id: int | None, self_mute: bool, self_deaf: bool) -> None:
        self.gateway_requests.append(
            GatewayVoiceRequest(self.guild.id, channel_id, self_mute, self_deaf)
        )

    def _user_id(self) -> int:
        user = self._state.user
        return user.id if user is not None else 0

    def _voice_state_payload(self, channel_id: int | None) -> dict[str, Any]:
        connection = self._connection
        return {
            "guild_id": str(self.guild.id),
            "channel_id": None if channel_id is None else str(channel_id),
            "user_id": str(self._user_id()),
            "session_id": connection.session_id or secrets.token_hex(16),
            "deaf": False,
            "mute": False,
            "self_deaf": connection.self_deaf,
            "self_mute": connection.self_mute,
            "self_video": False,
            "self_stream": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }

    def _cache_own_voice_state(self, channel_id: int | None) -> None:
        # What the main gateway's VOICE_STATE_UPDATE does to the guild cache, so that
        # guild.me.voice follows the connection.
        user = self._state.user
        if user is None:
            return
        if channel_id is None:
            self.guild._voice_states.pop(user.id, None)
        else:
            payload = self._voice_state_payload(channel_id)
            self.guild._update_voice_state(payload, channel_id)  # type: ignore[arg-type]


def _state_loop_missing(client: discord.Client) -> bool:
    return client._connection.loop is MISSING


def _voice_channel_payload(channel_id: int, name: str, position: int = 0) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 2,
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "bitrate": 64_000,
        "user_limit": 0,
        "rtc_region": None,
        "nsfw": False,
        "parent_id": None,
    }


def _add_voice_channel(guild: discord.Guild, channel_id: int, name: str) -> discord.VoiceChannel:
    existing = guild.get_channel(channel_id)
    if isinstance(existing, discord.VoiceChannel):
        return existing
    channel = discord.VoiceChannel(
        state=guild._state,
        guild=guild,
        data=_voice_channel_payload(channel_id, name),  # type: ignore[arg-type]
    )
    guild._add_channel(channel)
    return channel


async def _build_loopback_channel(
    guild_id: int, channel_id: int, user_id: int
) -> discord.VoiceChannel:
    """A not-logged-in client with its user, one guild and one voice channel, from payloads."""
    client = discord.Client(intents=discord.Intents(guilds=True, voice_states=True))
    await client._async_setup_hook()  # binds the running loop, as login() or `async with` would
    state = client._connection
    user = {
        "id": str(user_id),
        "username": "loopback-bot",
        "discriminator": "0",
        "avatar": None,
        "global_name": None,
        "bot": True,
    }
    state.user = ClientUser(state=state, data=user)  # type: ignore[arg-type]
    guild = discord.Guild(
        data={  # type: ignore[arg-type]
            "id": str(guild_id),
            "name": "loopback",
            "roles": [],
            "channels": [_voice_channel_payload(channel_id, "loopback-voice")],
            "members": [
                {
                    "user": user,
                    "roles": [],
                    "joined_at": None,
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
        },
        state=state,
    )
    state._add_guild(guild)
    channel = guild.get_channel(channel_id)
    assert isinstance(channel, discord.VoiceChannel)
    return channel
