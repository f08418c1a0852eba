"""Benchmarks of the audio path (issue 10): `python -m bench` or `python -m bench --quick`.

Everything runs against the fake ElevenLabs (real speech, configurable first-byte delay and
pace) and the loopback voice client (discord.py's real player thread, Opus encoder and
encryption). One module per measurement; `bench.__main__` runs them in order, prints a table
and writes `bench/results.json`.
"""
