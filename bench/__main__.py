"""`python -m bench [--quick] [--out PATH] [--only SECTION ...]`: run the benchmarks of issue 10.

Prints a table and writes the figures (with the machine and the conditions of each
measurement) to `bench/results.json`. `--quick` runs every measurement with fewer repetitions
in under a minute; its figures are a smoke check, not a result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import capacity, gapless, reader_burst, stall, ttfa
from bench.common import LONG_TEXT, VOICE, fake_in_subprocess, machine
from bot.runtime import tune_for_serving

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"
SECTIONS = ("ttfa", "gapless", "stall", "capacity", "reader")


@dataclass(frozen=True)
class Plan:
    ttfa_runs: int
    baseline_runs: int
    warmup: int
    gapless_items: int
    capacity_ladder: list[int]
    capacity_window: float
    capacity_variants: list[str]
    capacity_attempts: int
    burst_messages: int
    burst_guilds: int
    burst_settle: float
    burst_budget: float


FULL = Plan(
    ttfa_runs=30,
    baseline_runs=30,
    warmup=2,
    gapless_items=20,
    capacity_ladder=[10, 25, 50, 100, 150, 200, 250, 300],
    capacity_attempts=2,
    capacity_window=5.0,
    capacity_variants=[
        "mp3_default_encoder",
        "mp3_default_encoder_ffmpeg",
        "mp3_speech_encoder",
        "pcm48_default_encoder",
        "pcm48_speech_encoder",
        "mp3_discord_py_encoder",
        "mp3_default_encoder_processes",
        "mp3_speech_encoder_processes",
        "pcm48_speech_encoder_processes",
        "opus_passthrough",
    ],
    burst_messages=1000,
    burst_guilds=50,
    burst_settle=5.0,
    burst_budget=90.0,
)
QUICK = Plan(
    ttfa_runs=3,
    baseline_runs=1,
    warmup=0,
    gapless_items=3,
    capacity_ladder=[4],
    capacity_attempts=1,
    capacity_window=2.0,
    capacity_variants=["mp3_default_encoder"],
    burst_messages=50,
    burst_guilds=5,
    burst_settle=1.0,
    burst_budget=20.0,
)


def _empty() -> dict[str, Any]:
    """Every required key, so a section that fails still leaves a well-formed file."""
    pair = {"p50": None, "p95": None}
    per_format = {
        "first_byte_to_first_packet_ms": dict(pair),
        "command_to_first_packet_ms": dict(pair),
    }
    return {
        "ttfa": {fmt: json.loads(json.dumps(per_format)) for fmt in ttfa.TTFA_FORMATS},
        "baselines": {
            "download_then_play": json.loads(json.dumps(per_format)),
            "ffmpeg_pipe_at_first_byte": json.loads(json.dumps(per_format)),
        },
        "gap_between_items_ms": {"p50": None, "max": None},
        "capacity": {
            "streams": None,
            "cpu_pct_per_stream": None,
            "rss_mb_per_stream": None,
            "idle_player_kb": None,
        },
        "stall": {"packets_sent_faster_than_real_time": None},
        "loop_lag_ms": {"p99": None},
    }


def _capacity_summary(found: dict[str, Any]) -> dict[str, Any]:
    headline = found["mp3_default_encoder"]
    at = headline["at_best"] or headline["steps"][0]
    cpu = at["cpu_pct_per_stream"]
    return {
        "streams": headline["streams"],
        "cpu_pct_per_stream": cpu,
        "rss_mb_per_stream": at["rss_mb_per_stream"],
        "idle_player_kb": found["idle"]["player_and_voice_client_kb"],
        "idle_player_only_kb": found["idle"]["player_only_kb"],
        "cpu_bound_streams_2_cores": int(180 / cpu) if cpu else None,
        "headline": "mp3_44100_128 with the bot's default encoder settings",
        "variants": {
            name: {
                "streams": v["streams"],
                "limit_not_reached": v["limit_not_reached"],
                "encoder": v["encoder"],
                "at_best": v["at_best"],
                "steps": v["steps"],
            }
            for name, v in found.items()
            if name != "idle"
        },
    }


async def main(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    tune_for_serving()  # as `python -m bot run` does, before the first subprocess
    plan = QUICK if args.quick else FULL
    sections = args.only or list(SECTIONS)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "quick": bool(args.quick),
        "command": "python -m bench" + (" --quick" if args.quick else ""),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **_empty(),
        "conditions": {},
        "errors": {},
    }

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    async def section(name: str, work: Callable[[], Awaitable[None]]) -> None:
        if name not in sections:
            return
        t0 = time.perf_counter()
        load = os.getloadavg()[0]
        say(f"[bench] {name} (load {load:.2f})")
        try:
            await work()
        except Exception as exc:  # a broken section must not lose the others
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            say(traceback.format_exc())
        results["conditions"][name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "loadavg_1m_before": round(load, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        }
        save(finish())  # after every section: an interrupted run keeps what it measured

    def finish() -> dict[str, Any]:
        p99s = [v.get("loop_lag_p99_ms", v.get("p99")) for v in lag.values()]
        p99s = [p for p in p99s if p is not None]
        results["loop_lag_ms"] = {"p99": max(p99s) if p99s else None, **lag}
        results["duration_s"] = round(time.perf_counter() - started, 1)
        results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return results

    lag: dict[str, Any] = {}

    async def do_ttfa() -> None:
        found = await ttfa.run(
            runs=plan.ttfa_runs, baseline_runs=plan.baseline_runs, warmup=plan.warmup
        )
        results["ttfa"] = found["ttfa"]
        results["baselines"].update(found["baselines"])
        if found["baselines_error"]:
            results["errors"]["baselines"] = found["baselines_error"]
        results["baseline_ratios"] = found["baseline_ratios"]
        results["conditions"]["ttfa_setup"] = found["ttfa_conditions"]

    async def do_gapless() -> None:
        found = await gapless.run(count=plan.gapless_items)
        results["gap_between_items_ms"] = found["gap_between_items_ms"]
        results["conditions"]["gapless_setup"] = found["gap_conditions"]
        if not args.quick:
            pcm = await gapless.run(count=plan.gapless_items, fmt="pcm_48000")
            results["gap_between_items_ms"]["pcm_48000"] = {
                **pcm["gap_between_items_ms"],
                "per_boundary_ms": pcm["gap_conditions"]["per_boundary_ms"],
            }

    async def do_stall() -> None:
        found = await stall.run()
        results["stall"] = found["stall"]
        results["conditions"]["stall_setup"] = found["stall_conditions"]

    async def do_capacity() -> None:
        warm = [[VOICE, LONG_TEXT, f] for f in ("mp3_44100_128", "pcm_48000", "opus_48000_64")]
        # Hundreds of long requests: lift the fake account's character limit (100,000).
        async with fake_in_subprocess(warm=warm, character_limit=10**12) as fake:
            found = await capacity.run(
                fake["base_url"],
                fake["api_key"],
                ladder=plan.capacity_ladder,
                window=plan.capacity_window,
                variants=plan.capacity_variants,
                attempts=plan.capacity_attempts,
                log=say,
            )
        results["capacity"] = _capacity_summary(found)
        headline = found["mp3_default_encoder"]
        at = headline["at_best"] or headline["steps"][0]
        lag["during_capacity"] = {
            "streams": at["streams"],
            "p99": at["loop_lag_p99_ms"],
            "max": at["loop_lag_max_ms"],
        }
        results["conditions"]["capacity_setup"] = {
            "window_s": plan.capacity_window,
            "ladder": plan.capacity_ladder,
            "attempts_per_step": plan.capacity_attempts,
            "fake": "separate process, pace None (as fast as it can), first byte at once",
            "pass_rule": (
                "pooled p99 inter-packet gap <= 25 ms, max <= 60 ms, >= 95 % packets, "
                "no buffer underrun during the window"
            ),
        }

    async def do_reader() -> None:
        warm = [
            [VOICE, text, "mp3_44100_128"]
            for text in reader_burst.warm_texts(plan.burst_messages, plan.burst_guilds)
        ]
        async with fake_in_subprocess(
            first_byte_delay=0.3, pace=1.0, warm=warm, character_limit=10**12
        ) as fake:
            found = await reader_burst.run(
                fake["base_url"],
                fake["api_key"],
                messages=plan.burst_messages,
                guilds=plan.burst_guilds,
                settle=plan.burst_settle,
                budget=plan.burst_budget,
            )
        lag["during_reader_burst"] = found

    await section("ttfa", do_ttfa)
    await section("stall", do_stall)
    await section("capacity", do_capacity)
    await section("reader", do_reader)
    await section("gapless", do_gapless)
    return finish()


SECTION_KEYS = {
    "ttfa": ("ttfa", "baselines", "baseline_ratios"),
    "gapless": ("gap_between_items_ms",),
    "stall": ("stall",),
    "capacity": ("capacity",),
    "reader": (),
}


def merge(previous: dict[str, Any], new: dict[str, Any], sections: list[str]) -> dict[str, Any]:
    """`--only` on an existing results file: replace those sections, keep the others."""
    if previous.get("quick") != new["quick"]:
        return new
    merged = dict(previous)
    merged["conditions"] = dict(previous.get("conditions", {}))
    merged["errors"] = dict(previous.get("errors", {}))
    for section in sections:
        for key in SECTION_KEYS[section]:
            if key in new:
                merged[key] = new[key]
        for key, value in new["conditions"].items():
            if key.startswith(section):
                merged["conditions"][key] = value
        merged["errors"].pop(section, None)
        if section in new["errors"]:
            merged["errors"][section] = new["errors"][section]
    lag = dict(previous.get("loop_lag_ms", {}))
    lag.update({k: v for k, v in new["loop_lag_ms"].items() if k != "p99"})
    p99s = [v.get("p99", v.get("loop_lag_p99_ms")) for k, v in lag.items() if isinstance(v, dict)]
    lag["p99"] = max((p for p in p99s if p is not None), default=None)
    merged["loop_lag_ms"] = lag
    merged["runs"] = [
        *previous.get("runs", []),
        {"command": new["command"] + " --only " + " ".join(sections), **new["machine"]},
    ]
    return merged


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value}"


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    for fmt, figures in results["ttfa"].items():
        b, c = figures["first_byte_to_first_packet_ms"], figures["command_to_first_packet_ms"]
        rows.append(
            (
                f"time to first audio, {fmt}",
                f"byte→packet p50 {_fmt(b['p50'])} / p95 {_fmt(b['p95'])} ms; "
                f"command→packet p50 {_fmt(c['p50'])} / p95 {_fmt(c['p95'])} ms",
                "≤10 / ≤25 ms (byte→packet)",
            )
        )
    for name, figures in results["baselines"].items():
        b, c = figures["first_byte_to_first_packet_ms"], figures["command_to_first_packet_ms"]
        ratio = results.get("baseline_ratios", {}).get(name, {})
        rows.append(
            (
                f"baseline {name}, mp3",
                f"byte→packet p50 {_fmt(b['p50'])} / p95 {_fmt(b['p95'])} ms; "
                f"command→packet p50 {_fmt(c['p50'])} / p95 {_fmt(c['p95'])} ms",
                f"{_fmt(ratio.get('command_to_first_packet_ms_p50'))}x the bot (command p50)",
            )
        )
    gap = results["gap_between_items_ms"]
    rows.append(
        (
            "added silence between items (mp3)",
            f"p50 {_fmt(gap['p50'])} / max {_fmt(gap['max'])} ms",
            "≤40 ms",
        )
    )
    if "pcm_48000" in gap:
        pcm = gap["pcm_48000"]
        rows.append(
            (
                "added silence between items (pcm_48000)",
                f"p50 {_fmt(pcm['p50'])} / max {_fmt(pcm['max'])} ms",
                "≤40 ms",
            )
        )
    cap = results["capacity"]
    rows.append(
        (
            "capacity (mp3, default encoder)",
            f"{_fmt(cap['streams'])} streams; {_fmt(cap['cpu_pct_per_stream'])} % CPU and "
            f"{_fmt(cap['rss_mb_per_stream'])} MB per stream; idle player "
            f"{_fmt(cap['idle_player_kb'])} KB",
            "≥150 streams",
        )
    )
    for name, variant in cap.get("variants", {}).items():
        if name == "mp3_default_encoder":
            continue
        at = variant["at_best"] or {}
        rows.append(
            (
                f"capacity variant {name}",
                f"{variant['streams']} streams"
                + ("+" if variant["limit_not_reached"] else "")
                + f"; {_fmt(at.get('cpu_pct_per_stream'))} % CPU per stream",
                "",
            )
        )
    st = results["stall"]
    baseline_burst = st.get("ffmpeg_pipe_baseline", {}).get("packets_sent_faster_than_real_time")
    rows.append(
        (
            "stall 300 ms: packets faster than real time",
            f"{_fmt(st['packets_sent_faster_than_real_time'])} (ffmpeg pipe baseline: "
            f"{_fmt(baseline_burst)})",
            "0",
        )
    )
    lag = results["loop_lag_ms"]
    rows.append(
        (
            "event-loop lag p99",
            f"{_fmt(lag['p99'])} ms (capacity: "
            f"{_fmt(lag.get('during_capacity', {}).get('p99'))}, reader burst: "
            f"{_fmt(lag.get('during_reader_burst', {}).get('loop_lag_p99_ms'))})",
            "≤20 ms",
        )
    )
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measurement':<{width}}  result  [target]"]
    lines += [f"{a:<{width}}  {b}  [{c}]" if c else f"{a:<{width}}  {b}" for a, b, c in rows]
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, under a minute")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file to write")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        help="run only these sections (their figures replace those already in --out)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    previous = json.loads(args.out.read_text()) if args.only and args.out.exists() else None

    def save(results: dict[str, Any]) -> dict[str, Any]:
        if previous is not None:
            results = merge(previous, results, args.only)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        return results

    results = save(asyncio.run(main(args, save)))
    print(table(results))
    print(f"\nwritten to {args.out} in {results['duration_s']} s", file=sys.stderr)
    if results["errors"]:
        print(f"sections that failed: {', '.join(results['errors'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
