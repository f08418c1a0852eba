"""`python -m bench --quick` runs and writes a results file with every key issue 10 asks for.

No figure is asserted: timings depend on the machine. The benchmark itself runs as a
subprocess, as `make bench` would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAIR = {"p50", "p95"}
FIGURES = {"first_byte_to_first_packet_ms", "command_to_first_packet_ms"}


@pytest.mark.timeout(600)
def test_quick_bench_writes_the_results_file(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "time to first audio" in done.stdout

    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert set(results["ttfa"]) == {"mp3_44100_128", "pcm_24000", "pcm_48000", "opus_48000_64"}
    for figures in results["ttfa"].values():
        assert set(figures) >= FIGURES
        assert all(set(figures[name]) >= PAIR for name in FIGURES)
    for name in ("download_then_play", "ffmpeg_pipe_at_first_byte"):
        assert all(set(results["baselines"][name][key]) >= PAIR for key in FIGURES)
    assert {"p50", "max"} <= set(results["gap_between_items_ms"])
    assert {"streams", "cpu_pct_per_stream", "rss_mb_per_stream", "idle_player_kb"} <= set(
        results["capacity"]
    )
    assert "packets_sent_faster_than_real_time" in results["stall"]
    assert "p99" in results["loop_lag_ms"]
    assert results["errors"] == {}
