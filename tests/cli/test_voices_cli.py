"""`python -m bot voices` as a subprocess against the fake ElevenLabs."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from tests.cli import Done, assert_one_clean_line, cli_env, run_cli
from tests.fakes.elevenlabs import FakeElevenLabs, build_voices

RACHEL = "21m00Tcm4TlvDq8ikWAM"
JSON_KEYS = {"voice_id", "name", "category", "labels", "preview_url"}


async def voices(fake: FakeElevenLabs, cwd: Path, *args: str, **settings: str | None) -> Done:
    settings.setdefault("ELEVENLABS_BASE_URL", fake.base_url)
    settings.setdefault("ELEVENLABS_API_KEY", fake.api_key)
    return await run_cli("voices", *args, cwd=cwd, env=cli_env(**settings))


def as_json(done: Done) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list)
    for row in rows:
        assert set(row) == JSON_KEYS
    return rows


async def test_table(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    done = await voices(fake_elevenlabs, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["NAME", "VOICE", "ID", "CATEGORY", "ACCENT", "GENDER", "AGE"]
    assert len(rows) == 20  # the default --limit
    assert rows[0].split() == [
        "Rachel",
        RACHEL,
        "professional",
        "American",
        "female",
        "middle-aged",
    ]
    # Columns line up: every voice id starts where the header's does.
    column = header.index("VOICE ID")
    for row, voice in zip(rows, fake_elevenlabs.voices, strict=False):
        assert row[column:].startswith(voice["voice_id"])
    (request,) = fake_elevenlabs.requests
    assert request.query["page_size"] == "20"


async def test_json_shape(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    rows = as_json(await voices(fake_elevenlabs, tmp_path, "--json", "--limit", "5"))

    assert rows[0] == {
        "voice_id": RACHEL,
        "name": "Rachel",
        "category": "professional",
        "labels": fake_elevenlabs.voice(RACHEL)["labels"],
        "preview_url": fake_elevenlabs.preview_url(RACHEL),
    }
    assert [r["voice_id"] for r in rows] == [v["voice_id"] for v in fake_elevenlabs.voices[:5]]


def many_voices(count: int) -> list[dict[str, Any]]:
    base = build_voices()
    out = []
    for i in range(count):
        voice = copy.deepcopy(base[i % len(base)])
        voice["voice_id"] = f"v{i:019d}"
        voice["name"] = f"{voice['name']} {i}"
        out.append(voice)
    return out


async def test_limit_across_pages(fake_elevenlabs_factory: Any, tmp_path: Path) -> None:
    fake = await fake_elevenlabs_factory(voices=many_voices(250))

    rows = as_json(await voices(fake, tmp_path, "--json", "--limit", "130"))

    assert [r["voice_id"] for r in rows] == [f"v{i:019d}" for i in range(130)]
    first, second = fake.requests
    assert first.query["page_size"] == "100"
    assert "next_page_token" not in first.query
    assert second.query["next_page_token"]


async def test_limit_smaller_than_a_page(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    rows = as_json(await voices(fake_elevenlabs, tmp_path, "--json", "--limit", "3"))

    assert len(rows) == 3
    (request,) = fake_elevenlabs.requests
    assert request.query["page_size"] == "3"


async def test_everything_when_the_limit_is_high(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    rows = as_json(await voices(fake_elevenlabs, tmp_path, "--json", "--limit", "1000"))
    assert len(rows) == len(fake_elevenlabs.voices)


async def test_query_is_a_search(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    rows = as_json(await voices(fake_elevenlabs, tmp_path, "rachel", "--json"))

    assert [r["voice_id"] for r in rows] == [RACHEL]
    assert fake_elevenlabs.requests[0].query["search"] == "rachel"


async def test_category(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    rows = as_json(await voices(fake_elevenlabs, tmp_path, "--category", "cloned", "--json"))

    expected = [v["voice_id"] for v in fake_elevenlabs.voices if v["category"] == "cloned"]
    assert [r["voice_id"] for r in rows] == expected
    assert fake_elevenlabs.requests[0].query["category"] == "cloned"


async def test_voice_type(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    rows = as_json(await voices(fake_elevenlabs, tmp_path, "--voice-type", "default", "--json"))

    assert rows and {r["category"] for r in rows} == {"premade"}
    assert fake_elevenlabs.requests[0].query["voice_type"] == "default"


LABEL_FILTERS: list[tuple[tuple[str, ...], dict[str, str]]] = [
    (("--gender", "female"), {"gender": "female"}),
    (("--accent", "irish"), {"accent": "irish"}),
    (("--gender", "MALE", "--accent", "Indian"), {"gender": "male", "accent": "indian"}),
]


async def test_gender_and_accent_filter_on_labels(
    fake_elevenlabs_factory: Any, tmp_path: Path
) -> None:
    fake = await fake_elevenlabs_factory(voices=many_voices(250))

    def expected(labels: dict[str, str]) -> list[str]:
        return [
            v["voice_id"]
            for v in fake.voices
            if all(v["labels"].get(k, "").casefold() == want for k, want in labels.items())
        ][:15]

    results = await asyncio.gather(
        *(voices(fake, tmp_path, *args, "--limit", "15", "--json") for args, _ in LABEL_FILTERS)
    )

    for done, (args, labels) in zip(results, LABEL_FILTERS, strict=True):
        wanted = expected(labels)
        assert len(wanted) == 15, args  # sparse matches: more than one page of 100 is read
        assert [r["voice_id"] for r in as_json(done)] == wanted, args
    assert all(r.query["page_size"] == "100" for r in fake.requests)
    assert len(fake.requests) > len(LABEL_FILTERS)


async def test_no_match_is_not_an_error(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    done = await voices(fake_elevenlabs, tmp_path, "no voice is called this")
    assert done.returncode == 0
    assert done.stdout == ""
    assert done.stderr.strip() == "No voices match."
    assert as_json(await voices(fake_elevenlabs, tmp_path, "nobody at all", "--json")) == []


BAD_ARGUMENTS = [
    ("voices", "--limit", "0"),
    ("voices", "--limit", "many"),
    ("voices", "--category", "famous"),
    ("voices", "--voice-type", "robot"),
    ("voices", "--no-such-option"),
    ("voices", "one", "two"),
    ("frobnicate",),
    (),
]


async def test_a_bad_argument_is_one_line_and_exit_2(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    env = cli_env(ELEVENLABS_BASE_URL=fake_elevenlabs.base_url, ELEVENLABS_API_KEY="k" * 20)

    results = await asyncio.gather(*(run_cli(*a, cwd=tmp_path, env=env) for a in BAD_ARGUMENTS))

    for args, done in zip(BAD_ARGUMENTS, results, strict=True):
        line = assert_one_clean_line(done, "k" * 20)
        assert done.returncode == 2, args
        assert line.startswith("python -m bot") and line.endswith("(see --help)"), line
        assert done.stdout == ""
    assert fake_elevenlabs.requests == []


async def test_a_bad_key_is_one_line(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    wrong = "sk_wrong_key_0123456789abcdef"
    done = await voices(fake_elevenlabs, tmp_path, ELEVENLABS_API_KEY=wrong)

    line = assert_one_clean_line(done, wrong, fake_elevenlabs.api_key)
    assert done.returncode == 1
    assert line.startswith("error: ") and "ELEVENLABS_API_KEY" in line
    assert len(fake_elevenlabs.requests) == 1


async def test_no_key_is_one_line(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    done = await voices(fake_elevenlabs, tmp_path, ELEVENLABS_API_KEY=None)

    line = assert_one_clean_line(done)
    assert done.returncode == 1
    assert line.startswith("error: ELEVENLABS_API_KEY is not set")
    assert fake_elevenlabs.requests == []


async def test_the_dotenv_in_the_working_directory_is_used(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"ELEVENLABS_API_KEY={fake_elevenlabs.api_key}\n")
    rows = as_json(await voices(fake_elevenlabs, tmp_path, "--json", ELEVENLABS_API_KEY=None))
    assert rows


async def test_a_malformed_setting_is_one_line(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    done = await voices(fake_elevenlabs, tmp_path, ELEVENLABS_MAX_CONCURRENCY="lots")

    line = assert_one_clean_line(done, fake_elevenlabs.api_key)
    assert line.startswith("error: ELEVENLABS_MAX_CONCURRENCY: ")


async def test_quota_exceeded_is_one_line(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    fake_elevenlabs.fail_next(401, "quota_exceeded", endpoint="any")

    done = await voices(fake_elevenlabs, tmp_path)

    line = assert_one_clean_line(done, fake_elevenlabs.api_key)
    assert done.returncode == 1
    assert line == "error: The bot's ElevenLabs credits are used up."


async def test_a_network_failure_is_one_line(
    unused_tcp_port: int, fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    done = await voices(
        fake_elevenlabs,
        tmp_path,
        ELEVENLABS_BASE_URL=f"http://127.0.0.1:{unused_tcp_port}",
        ELEVENLABS_MAX_RETRIES="1",
    )

    line = assert_one_clean_line(done, fake_elevenlabs.api_key)
    assert done.returncode == 1
    assert line == "error: The bot could not reach ElevenLabs; try again in a moment."


async def test_verbose_logs_retries_but_never_the_key(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    fake_elevenlabs.fail_next(503, shape="text", endpoint="voices_v2")

    done = await voices(fake_elevenlabs, tmp_path, "--verbose", "--json", "--limit", "2")

    assert len(as_json(done)) == 2
    assert "GET /v2/voices failed (ServerError, status=503" in done.stderr
    assert "Traceback" not in done.output
    assert fake_elevenlabs.api_key not in done.output


async def test_label_filters_ignore_case_spaces_and_separators(
    fake_elevenlabs_factory: Any, tmp_path: Path
) -> None:
    """The catalogue's rule (`SearchFilters`), as /voices search applies it."""
    base = build_voices()
    spellings = ["South-African", "south african", "SOUTH_AFRICAN"]
    for voice, accent in zip(base[5:8], spellings, strict=True):
        voice["labels"]["accent"] = accent
        voice["labels"]["gender"] = "female"
    base[8]["labels"]["accent"] = "South American"  # a near miss
    fake = await fake_elevenlabs_factory(voices=base)

    done, female = await asyncio.gather(
        voices(fake, tmp_path, "--accent", "south african", "--json"),
        voices(fake, tmp_path, "--accent", "South  African", "--gender", " FEMALE ", "--json"),
    )

    wanted = [v["voice_id"] for v in base[5:8]]
    assert [r["voice_id"] for r in as_json(done)] == wanted
    assert [r["voice_id"] for r in as_json(female)] == wanted


async def test_query_category_and_labels_together(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    args = ("calm", "--category", "premade", "--gender", "female", "--json")
    rows = as_json(await voices(fake_elevenlabs, tmp_path, *args))

    expected = [
        v["voice_id"]
        for v in fake_elevenlabs.voices
        if v["category"] == "premade"
        and v["labels"]["gender"] == "female"
        and "calm" in " ".join([v["name"], v["description"], *v["labels"].values()]).lower()
    ]
    assert expected and [r["voice_id"] for r in rows] == expected
    (request,) = fake_elevenlabs.requests
    assert request.query["search"] == "calm" and request.query["category"] == "premade"
