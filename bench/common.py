"""What every measurement shares: statistics, the machine, CPU and memory meters, the event-loop
lag probe, loopback voice clients for many guilds, and the fake ElevenLabs in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
from discord.user import ClientUser
from pydantic import SecretStr

from bot.elevenlabs.client import ElevenLabsClient
from bot.player import EncoderSettings
from bot.speech import Synthesizer
from bot.testing import loopback
from bot.testing.loopback import LoopbackVoiceClient

ROOT = Path(__file__).resolve().parents[1]
VOICE = "21m00Tcm4TlvDq8ikWAM"  # Rachel, the bot's default voice
SHORT_TEXT = "Hello there! This is a short sentence, about as long as a chat message."
LONG_TEXT = " ".join(
    [
        "This is a long message, read aloud to keep one voice stream busy while the benchmark",
        "counts how many guilds can speak at the same time in one process. Each guild hears its",
        "own copy of this text, decoded from the upstream format, cut into twenty millisecond",
        "frames, encoded to Opus, encrypted and sent by the real discord.py player thread.",
        "The measurement only looks at when each packet left, and how much processor time and",
        "memory the process and its decoders used while every stream was playing together.",
        "It goes on a little longer so that the slowest guild to start is still speaking when",
        "the measurement window closes, which is what makes the figure honest.",
    ]
)
GAPLESS_TEXTS = [
    "One.",
    "Two, please.",
    "Three is here.",
    "Four more words.",
    "Five.",
    "Six, seven.",
    "Okay, eight.",
    "Nine is fine.",
    "Ten at last.",
    "Eleven now.",
    "Twelve!",
    "Thirteen, yes.",
    "Fourteen.",
    "Fifteen, go.",
    "Sixteen here.",
    "Seventeen.",
    "Eighteen, nearly.",
    "Nineteen.",
    "Twenty, done.",
    "Twenty one.",
]
TTFA_FORMATS = ("mp3_44100_128", "pcm_24000", "pcm_48000", "opus_48000_64")

# The bot's own encoder settings (bot.audio.opus.EncoderSettings defaults, which the bot's
# OPUS_* settings default to: mono, 64 kbit/s, complexity 5), a speech-tuned set (voip
# mode, wideband, 32 kbit/s, complexity 3) and what discord.py's player encodes with
# (stereo, libopus' default complexity 10).
DEFAULT_ENCODER = EncoderSettings()
SPEECH_ENCODER = EncoderSettings(application="voip", bitrate=32, bandwidth="wide", complexity=3)
DISCORD_PY_ENCODER = EncoderSettings(channels=2, complexity=10)


# ---------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def r1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def p50_p95(values: Sequence[float]) -> dict[str, float | None]:
    return {"p50": r1(percentile(values, 50)), "p95": r1(percentile(values, 95)), "n": len(values)}


# ---------------------------------------------------------------------------- the machine


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def _opus_version() -> str | None:
    with contextlib.suppress(Exception):
        if not discord.opus.is_loaded():
            discord.opus._load_default()
        return discord.opus._OpusStruct.get_opus_version()
    return None


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "discord_py": discord.__version__,
        "ffmpeg": _version([shutil.which("ffmpeg") or "ffmpeg", "-version"]),
        "opus": _opus_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


# ---------------------------------------------------------------------------- CPU and memory

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# Children that are not part of the bot (the fake ElevenLabs server): never counted.
EXCLUDED_PIDS: set[int] = set()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid and int(entry.name) not in EXCLUDED_PIDS:
                kids.append(int(entry.name))
    return kids


def _proc_cpu(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    return 0.0


def _pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def rss_kb() -> int:
    """This process's resident set size now."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_KB


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    own: float  # this process, user + system seconds
    children: float  # reaped children plus the live ones so far

    @classmethod
    def take(cls) -> CpuSnapshot:
        t = os.times()
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        live = sum(_proc_cpu(pid) for pid in _children(os.getpid()))
        return cls(
            time.perf_counter(),
            t.user + t.system,
            reaped.ru_utime + reaped.ru_stime + live,
        )

    def pct_since(self, earlier: CpuSnapshot) -> tuple[float, float]:
        """(own %, children %) of one core over the interval."""
        wall = self.at - earlier.at
        return (
            100 * (self.own - earlier.own) / wall,
            100 * (self.children - earlier.children) / wall,
        )


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by each thread of this process, by thread name.

    Numbered threads of one kind (``opus-encode_0``, ``opus-encode_1``) are summed under
    their common name; threads Python does not know (native ones) under ``other``.
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    found: dict[str, float] = {}
    for entry in os.scandir("/proc/self/task"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/self/task/{entry.name}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            name = names.get(int(entry.name), "other").rstrip("0123456789").rstrip("_-")
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return found


def thread_cpu_pct(before: dict[str, float], after: dict[str, float], wall: float) -> dict:
    """% of one core per thread kind over `wall` seconds, busiest first."""
    pct = {name: 100 * (after[name] - before.get(name, 0.0)) / wall for name in after}
    return {name: round(v, 1) for name, v in sorted(pct.items(), key=lambda kv: -kv[1]) if v}


def children_pss_kb() -> int:
    """Proportional set size of this process's live children (the ffmpeg decoders)."""
    return sum(_pss_kb(pid) for pid in _children(os.getpid()))


# ---------------------------------------------------------------------------- event-loop lag


class LoopLag:
    """How late the event loop wakes a 10 ms sleeper: the lag every callback suffers."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags_ms.append((time.perf_counter() - start - self.interval) * 1000)

    def start(self) -> None:
        self.lags_ms.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        return list(self.lags_ms)


# ---------------------------------------------------------------------------- voice clients


class BenchVoiceClient(LoopbackVoiceClient):
    """The loopback voice client without its per-packet wake-up of the event loop.

    `LoopbackVoiceClient._capture` calls `loop.call_soon_threadsafe` for every packet so that
    tests can await packets; at 150 streams that is 7,500 wake-ups a second that a real
    `sendto()` never costs. Here a packet is only stamped and stored; waits poll every 10 ms.
    """

    def _capture(self, packet: bytes) -> None:
        self._captures.append((time.perf_counter(), bytes(packet), threading.current_thread()))


class TimingVoiceClient(BenchVoiceClient):
    """Only stamps each packet's send time, in an array: no tuple per packet.

    At 200 streams the tuples `_capture` keeps are 10,000 new tracked objects a second,
    all long-lived: the garbage collector's full passes over them then stall every thread
    for 50-150 ms, which a real `sendto()` never causes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_at = array("d")

    def _capture(self, packet: bytes) -> None:
        self.sent_at.append(time.perf_counter())

    @property
    def packet_count(self) -> int:
        return len(self.sent_at)

    def clear_packets(self) -> None:
        self.sent_at = array("d")


class GuildFarm:
    """One not-logged-in `discord.Client` holding many guilds, each with a voice channel."""

    BASE_ID = 910_000_000_000_000_000

    def __init__(self) -> None:
        self.client: discord.Client | None = None
        self.count = 0

    async def _client(self) -> discord.Client:
        if self.client is None:
            client = discord.Client(intents=discord.Intents(guilds=True, voice_states=True))
            await client._async_setup_hook()
            state = client._connection
            self._user = {
                "id": str(loopback.DEFAULT_USER_ID),
                "username": "bench-bot",
                "discriminator": "0",
                "avatar": None,
                "global_name": None,
                "bot": True,
            }
            state.user = ClientUser(state=state, data=self._user)  # type: ignore[arg-type]
            self.client = client
        return self.client

    async def voice(self, cls: type[LoopbackVoiceClient] = BenchVoiceClient) -> Any:
        """A new guild and a loopback voice client connected to its voice channel."""
        client = await self._client()
        state = client._connection
        self.count += 1
        guild_id = self.BASE_ID + 2 * self.count
        channel_id = guild_id + 1
        guild = discord.Guild(
            data={  # type: ignore[arg-type]
                "id": str(guild_id),
                "name": f"bench-{self.count}",
                "roles": [],
                "channels": [loopback._voice_channel_payload(channel_id, "voice")],
                "members": [
                    {
                        "user": self._user,
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
        voice = await cls.create(channel=channel)  # type: ignore[arg-type]
        voice.wait_timeout = 60.0
        return voice

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


# ---------------------------------------------------------------------------- ElevenLabs


@contextlib.asynccontextmanager
async def elevenlabs_client(base_url: str, api_key: str) -> AsyncIterator[Synthesizer]:
    """A `Synthesizer` over the bot's own ElevenLabs client, with room for many streams."""
    async with aiohttp.ClientSession() as session:
        client = ElevenLabsClient(
            session, SecretStr(api_key), base_url=base_url, max_concurrency=1_000
        )
        yield Synthesizer(client)


_FAKE_SERVER = """
import asyncio, json, sys
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes import speech

async def main():
    knobs = json.loads(sys.argv[1])
    warm = knobs.pop("warm", [])
    for voice, text, fmt in warm:
        await speech.render_speech(voice, text, fmt)
    async with FakeElevenLabs(**knobs) as fake:
        print(json.dumps({"base_url": fake.base_url, "api_key": fake.api_key}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@contextlib.asynccontextmanager
async def fake_in_subprocess(**knobs: Any) -> AsyncIterator[dict[str, Any]]:
    """The fake ElevenLabs in a child process, so its CPU is not counted as the bot's.

    Yields {"base_url", "api_key", "pid"}; the child ends when its stdin closes.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _FAKE_SERVER,
        json.dumps(knobs),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError("the fake ElevenLabs process did not start")
        info = json.loads(line)
        info["pid"] = proc.pid
        EXCLUDED_PIDS.add(proc.pid)
        yield info
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        EXCLUDED_PIDS.discard(proc.pid)
