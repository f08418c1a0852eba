"""Test signals and a lag-tolerant comparison for 48 kHz s16le stereo PCM, with the stdlib only.

Opus is lossy and delays its output by the encoder look-ahead (312 samples for the ``audio`` and
``voip`` applications, less for ``lowdelay``), so decoded audio is compared with its source by
normalised cross-correlation after finding the best lag, never byte for byte.
"""

from __future__ import annotations

import itertools
import math
import operator
from array import array
from dataclasses import dataclass

SAMPLE_RATE = 48_000
CHANNELS = 2
SAMPLE_WIDTH = 2
FRAME_SAMPLES = 960  # one 20 ms Opus frame, per channel
FRAME_BYTES = FRAME_SAMPLES * CHANNELS * SAMPLE_WIDTH  # 3840, what AudioSource.read() returns


def _stereo(mono: array) -> bytes:
    out = array("h", bytes(len(mono) * CHANNELS * SAMPLE_WIDTH))
    out[0::2] = mono
    out[1::2] = mono
    return out.tobytes()


def sine(frequency: float, seconds: float, *, amplitude: float = 0.5) -> bytes:
    """A pure tone, same on both channels."""
    n = round(seconds * SAMPLE_RATE)
    peak = amplitude * 32767
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return _stereo(array("h", (round(peak * math.sin(step * i)) for i in range(n))))


def chirp(start_hz: float, end_hz: float, seconds: float, *, amplitude: float = 0.5) -> bytes:
    """A linear sweep: unlike a tone it correlates with itself at one lag only."""
    n = round(seconds * SAMPLE_RATE)
    peak = amplitude * 32767
    rate = (end_hz - start_hz) / seconds
    two_pi = 2 * math.pi
    samples = (
        round(peak * math.sin(two_pi * (start_hz * t + rate * t * t / 2)))
        for t in (i / SAMPLE_RATE for i in range(n))
    )
    return _stereo(array("h", samples))


def silence(seconds: float) -> bytes:
    return bytes(round(seconds * SAMPLE_RATE) * CHANNELS * SAMPLE_WIDTH)


def mono(pcm: bytes) -> array:
    """Left + right of s16le stereo PCM, as ints (no clipping); a partial sample is dropped."""
    usable = len(pcm) - len(pcm) % (CHANNELS * SAMPLE_WIDTH)
    samples = array("h", pcm[:usable])
    return array("i", map(operator.add, samples[0::2], samples[1::2]))


def rms(pcm: bytes) -> float:
    samples = array("h", pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH])
    if not samples:
        return 0.0
    return math.sqrt(sum(map(operator.mul, samples, samples)) / len(samples))


def _energy(x: array) -> int:
    return sum(map(operator.mul, x, x))


def _box_decimate(x: array, factor: int) -> array:
    """Sum of each run of ``factor`` samples: a crude low-pass, enough to find a coarse lag."""
    return array("q", (sum(x[i : i + factor]) for i in range(0, len(x) - factor + 1, factor)))


@dataclass(frozen=True, slots=True)
class Alignment:
    """Where ``reference`` sits in ``decoded``: ``decoded[lag + i] ~ reference[i]`` (in samples)."""

    lag: int
    correlation: float


def _best_lag(ref: array, dec: array, lags: range, window: int) -> tuple[int, float]:
    ref_energy: dict[int, int] = {}
    dec_energy = [0, *itertools.accumulate(map(operator.mul, dec, dec))]  # prefix sums
    best = (lags.start, -2.0)
    for lag in lags:
        overlap = min(len(ref), len(dec) - lag, window)
        if overlap <= 0:
            continue
        if overlap not in ref_energy:
            ref_energy[overlap] = _energy(ref[:overlap])
        segment = dec[lag : lag + overlap]
        energy = ref_energy[overlap] * (dec_energy[lag + overlap] - dec_energy[lag])
        score = (
            sum(map(operator.mul, ref[:overlap], segment)) / math.sqrt(energy) if energy else 0.0
        )
        if score > best[1]:
            best = (lag, score)
    return best


def align(
    reference: bytes,
    decoded: bytes,
    *,
    min_lag: int = 0,
    max_lag: int = 4096,
    search_window: int = 12_000,
    decimation: int = 8,
) -> Alignment:
    """Best lag of ``reference`` inside ``decoded`` and the normalised cross-correlation there.

    The lag is searched coarsely on decimated signals over the first ``search_window`` samples
    (0.25 s), then refined at full rate; the correlation is reported over the whole reference,
    so a decoded signal that only starts well, then drifts, goes silent or ends early scores low.
    """
    ref = mono(reference)
    dec = mono(decoded)
    max_lag = min(max_lag, len(dec) - 1)
    if not ref or max_lag < min_lag:
        return Alignment(lag=min_lag, correlation=0.0)

    coarse, _ = _best_lag(
        _box_decimate(ref, decimation),
        _box_decimate(dec, decimation),
        range(min_lag // decimation, max_lag // decimation + 1),
        search_window // decimation,
    )
    coarse *= decimation
    around = range(max(min_lag, coarse - decimation), min(max_lag, coarse + decimation) + 1)
    fine, _ = _best_lag(ref, dec, around, search_window)
    # Over the whole reference: what ``decoded`` lacks past its end counts as silence.
    segment = dec[fine : fine + len(ref)]
    dot = sum(map(operator.mul, ref, segment))
    energy = _energy(ref) * _energy(segment)
    return Alignment(lag=fine, correlation=dot / math.sqrt(energy) if energy else 0.0)
