"""Shared fixtures. Network: only loopback is allowed (see pytest addopts in pyproject.toml).

Each fake lives in its own module and registers its fixtures as a plugin here.
"""

pytest_plugins = [
    "tests.fakes.elevenlabs",
    "tests.fakes.voice",
    "tests.fakes.discord",
    "tests.fixtures.database",
]
