"""Tests of the voice catalogue (bot.voices)."""
