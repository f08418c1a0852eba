"""Settings: defaults, every variable from the environment, and one clear line when wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import OUTPUT_FORMATS, ConfigError, Settings, load_settings

KEY = "sk_live_0123456789abcdefSECRET"
TOKEN = "MTIzNDU2Nzg5.discord.TOKENSECRET"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting from the machine running the tests, and no .env but the test's own."""
    for name in os.environ:
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults() -> None:
    settings = load_settings()

    assert settings.discord_token is None
    assert settings.elevenlabs_api_key is None
    assert settings.elevenlabs_base_url == "https://api.elevenlabs.io"
    assert settings.elevenlabs_model == "eleven_flash_v2_5"
    assert settings.elevenlabs_output_format == "mp3_44100_128"
    assert settings.elevenlabs_max_concurrency == 4
    assert settings.elevenlabs_connect_timeout == 5.0
    assert settings.elevenlabs_read_timeout == 20.0
    assert settings.elevenlabs_max_retries == 3
    assert settings.elevenlabs_retry_budget == 8.0
    assert settings.ffmpeg_path == "ffmpeg"
    assert settings.log_level == "INFO"
    assert settings.shard_count is None
    assert settings.shard_ids is None
    assert settings.owner_ids == []
    assert settings.dev_guild_id is None


# A valid, non-default value for every setting, as it would be written in the environment.
EVERY_VARIABLE: dict[str, tuple[str, object]] = {
    "DISCORD_TOKEN": (TOKEN, SecretStr(TOKEN)),
    "DISCORD_API_BASE": ("http://127.0.0.1:9/api/v10/", "http://127.0.0.1:9/api/v10"),
    "SHARD_COUNT": ("4", 4),
    "SHARD_IDS": ("0,2 3", [0, 2, 3]),
    "DEV_GUILD_ID": ("123456789012345678", 123456789012345678),
    "OWNER_IDS": ("111, 222", [111, 222]),
    "READ_MESSAGES": ("false", False),
    "ELEVENLABS_API_KEY": (KEY, SecretStr(KEY)),
    "ELEVENLABS_BASE_URL": ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    "ELEVENLABS_MODEL": ("eleven_multilingual_v2", "eleven_multilingual_v2"),
    "ELEVENLABS_OUTPUT_FORMAT": ("opus_48000_64", "opus_48000_64"),
    "ELEVENLABS_DEFAULT_VOICE": ("abcdefghij0123456789", "abcdefghij0123456789"),
    "ELEVENLABS_MAX_CONCURRENCY": ("2", 2),
    "ELEVENLABS_CONNECT_TIMEOUT": ("1.5", 1.5),
    "ELEVENLABS_READ_TIMEOUT": ("7", 7.0),
    "ELEVENLABS_MAX_RETRIES": ("0", 0),
    "ELEVENLABS_RETRY_BUDGET": ("2.5", 2.5),
    "FFMPEG_PATH": ("/opt/ffmpeg/bin/ffmpeg", "/opt/ffmpeg/bin/ffmpeg"),
    "MP3_DECODER": ("ffmpeg", "ffmpeg"),
    "MAX_AUDIO_BYTES": ("1048576", 1048576),
    "QUEUE_LIMIT": ("5", 5),
    "MAX_TEXT_CHARS": ("300", 300),
    "IDLE_DISCONNECT_SECONDS": ("60", 60.0),
    "OPUS_BITRATE_KBPS": ("96", 96),
    "OPUS_SIGNAL_TYPE": ("music", "music"),
    "OPUS_APPLICATION": ("voip", "voip"),
    "OPUS_COMPLEXITY": ("3", 3),
    "OPUS_CHANNELS": ("2", 2),
    "OPUS_ENCODER_PROCESSES": ("2", 2),
    "DATABASE_URL": ("sqlite+aiosqlite:///tmp/x.db", "sqlite+aiosqlite:///tmp/x.db"),
    "GUILD_DATA_GRACE_DAYS": ("7", 7),
    "CATALOG_REFRESH_SECONDS": ("120", 120.0),
    "QUOTA_DEFAULT_ALLOWANCE": ("0", 0),
    "QUOTA_RESERVATION_TTL_SECONDS": ("300", 300.0),
    "QUOTA_LEDGER_RETENTION_DAYS": ("30", 30),
    "LOG_LEVEL": ("debug", "DEBUG"),
}


def test_the_table_covers_every_setting() -> None:
    assert {name.lower() for name in EVERY_VARIABLE} == set(Settings.model_fields)


def test_every_variable_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (raw, _) in EVERY_VARIABLE.items():
        monkeypatch.setenv(name, raw)

    settings = load_settings()

    for name, (_, expected) in EVERY_VARIABLE.items():
        assert getattr(settings, name.lower()) == expected, name
    assert settings.require_elevenlabs_key().get_secret_value() == KEY
    assert settings.require_discord_token().get_secret_value() == TOKEN
    assert KEY not in repr(settings) and TOKEN not in repr(settings)
    assert KEY not in str(settings.model_dump())


def test_every_output_format_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for fmt in OUTPUT_FORMATS:
        monkeypatch.setenv("ELEVENLABS_OUTPUT_FORMAT", fmt)
        assert load_settings().elevenlabs_output_format == fmt


def test_dotenv_in_the_working_directory_is_read(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        f"ELEVENLABS_API_KEY={KEY}\nELEVENLABS_MAX_CONCURRENCY=3\nLOG_LEVEL=warning\n"
    )
    monkeypatch.setenv("LOG_LEVEL", "ERROR")  # the environment wins over .env

    settings = load_settings()

    assert settings.require_elevenlabs_key().get_secret_value() == KEY
    assert settings.elevenlabs_max_concurrency == 3
    assert settings.log_level == "ERROR"
    assert load_settings(env_file=None).elevenlabs_api_key is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ELEVENLABS_MAX_CONCURRENCY", "many"),
        ("ELEVENLABS_MAX_CONCURRENCY", "0"),
        ("ELEVENLABS_MAX_CONCURRENCY", "1000"),
        ("ELEVENLABS_CONNECT_TIMEOUT", "-1"),
        ("ELEVENLABS_READ_TIMEOUT", "soon"),
        ("ELEVENLABS_MAX_RETRIES", "11"),
        ("ELEVENLABS_RETRY_BUDGET", "0"),
        ("ELEVENLABS_OUTPUT_FORMAT", "wav"),
        ("ELEVENLABS_BASE_URL", "api.elevenlabs.io"),
        ("DISCORD_API_BASE", "ftp://discord.com"),
        ("LOG_LEVEL", "LOUD"),
        ("SHARD_COUNT", "0"),
        ("SHARD_IDS", "0,one"),
        ("OWNER_IDS", "alice"),
        ("DEV_GUILD_ID", "my-guild"),
        ("READ_MESSAGES", "maybe"),
        ("QUEUE_LIMIT", "0"),
        ("OPUS_SIGNAL_TYPE", "speech"),
        ("OPUS_COMPLEXITY", "11"),
        ("OPUS_CHANNELS", "6"),
        ("OPUS_ENCODER_PROCESSES", "-1"),
        ("MAX_TEXT_CHARS", "100000"),
    ],
)
def test_a_malformed_variable_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    assert KEY not in message and TOKEN not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_malformed_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone pasting the key into the wrong variable must not see it printed back."""
    monkeypatch.setenv("ELEVENLABS_MAX_CONCURRENCY", KEY)
    monkeypatch.setenv("ELEVENLABS_OUTPUT_FORMAT", KEY)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", KEY)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    message = str(caught.value)
    assert KEY not in message
    assert "\n" not in message
    for name in ("ELEVENLABS_MAX_CONCURRENCY", "ELEVENLABS_OUTPUT_FORMAT", "ELEVENLABS_BASE_URL"):
        assert name in message


def test_a_malformed_dotenv_line_names_the_variable(clean_env: Path) -> None:
    (clean_env / ".env").write_text(f"ELEVENLABS_API_KEY={KEY}\nQUEUE_LIMIT=lots\n")
    with pytest.raises(ConfigError, match=r"^QUEUE_LIMIT: ") as caught:
        load_settings()
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", [0]),
        ("0,1,2", [0, 1, 2]),
        (" 3 , 1 ", [3, 1]),
        ("0 1\t2", [0, 1, 2]),
        ("", None),  # empty means all shards, as if unset
    ],
)
def test_shard_ids(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[int] | None) -> None:
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", raw)
    assert load_settings().shard_ids == expected


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SHARD_IDS": "0,1"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_IDS": "0,4", "SHARD_COUNT": "4"}, "SHARD_IDS must be below SHARD_COUNT"),
        ({"SHARD_IDS": "-1", "SHARD_COUNT": "4"}, "SHARD_IDS: shard ids cannot be negative"),
    ],
)
def test_shard_ids_must_fit_the_shard_count(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=fragment):
        load_settings()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", []), ("42", [42]), ("1,2", [1, 2]), ("1 2,3", [1, 2, 3])],
)
def test_owner_ids(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[int]) -> None:
    monkeypatch.setenv("OWNER_IDS", raw)
    assert load_settings().owner_ids == expected


@pytest.mark.parametrize("value", [None, ""])
def test_missing_secrets_say_where_to_get_them(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("ELEVENLABS_API_KEY", value)
        monkeypatch.setenv("DISCORD_TOKEN", value)
    settings = load_settings()

    with pytest.raises(ConfigError, match=r"^ELEVENLABS_API_KEY is not set: .*elevenlabs\.io"):
        settings.require_elevenlabs_key()
    with pytest.raises(ConfigError, match=r"^DISCORD_TOKEN is not set: .*discord\.com"):
        settings.require_discord_token()


def test_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_MAX_CONCURRENCY", "2")
    assert load_settings(elevenlabs_max_concurrency=6).elevenlabs_max_concurrency == 6


def test_nothing_is_built_at_import_time(tmp_path: Path) -> None:
    """Importing the bot with broken settings must not fail: settings come from a factory."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "ELEVENLABS_MAX_CONCURRENCY": "broken",
        "LOG_LEVEL": "broken",
    }
    code = (
        "import bot.config as config, bot.elevenlabs, bot.logging_setup, bot.cli.common\n"
        "import bot.cli.check, bot.cli.voices\n"
        "assert not [v for v in vars(config).values() if isinstance(v, config.Settings)]\n"
        "print('imported')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"
