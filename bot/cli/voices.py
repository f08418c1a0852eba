"""`python -m bot voices`: find voices of the account from a terminal.

The filters are the catalogue's (`SearchFilters`, the same test `/voices search`
applies): case, spaces, `-` and `_` do not matter, so `--accent "south african"`
finds voices labelled "South-African". Unlike the bot, a one-shot command does
not load every voice first: it walks the pages GET /v2/voices returns (narrowed
there by the query, category and voice type, which the API supports) and stops
at `--limit`, so the first 20 of thousands cost one request.
"""

from __future__ import annotations

import argparse
import json
import sys

from bot.cli.common import cli_settings, elevenlabs_client
from bot.elevenlabs.client import MAX_PAGE_SIZE
from bot.elevenlabs.models import Voice
from bot.voices.filters import SearchFilters

# The values GET /v2/voices accepts; checked here so a typo is a usage error, not a 422.
CATEGORIES = ("premade", "cloned", "generated", "professional")
VOICE_TYPES = ("personal", "community", "default", "workspace", "non-default")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from bot.cli import positive_int

    parser = sub.add_parser("voices", help="search the account's voices")
    parser.add_argument("query", nargs="?", help="words to look for in name, description, labels")
    parser.add_argument("--category", choices=CATEGORIES, help="only voices of this category")
    parser.add_argument("--voice-type", choices=VOICE_TYPES, help="only voices of this type")
    parser.add_argument("--gender", help="a gender label, e.g. female")
    parser.add_argument("--accent", help="an accent label, e.g. british")
    parser.add_argument("--limit", type=positive_int, default=20, help="at most this many")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    settings = cli_settings(verbose=args.verbose)
    found: list[Voice] = []
    filters = SearchFilters(category=args.category, gender=args.gender, accent=args.accent)
    # Without label filters every voice counts, so one page of --limit is enough to start.
    filtering = bool(args.gender or args.accent)
    page_size = MAX_PAGE_SIZE if filtering else min(args.limit, MAX_PAGE_SIZE)
    async with elevenlabs_client(settings) as client:
        async for voice in client.iter_voices(
            args.query, page_size=page_size, category=args.category, voice_type=args.voice_type
        ):
            if filters.matches(voice):
                found.append(voice)
                if len(found) >= args.limit:
                    break
    if args.json:
        rows = [
            {
                "voice_id": v.voice_id,
                "name": v.name,
                "category": v.category,
                "labels": v.labels,
                "preview_url": v.preview_url,
            }
            for v in found
        ]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    if not found:
        print("No voices match.", file=sys.stderr)
        return 0
    print(format_table(found))
    return 0


def format_table(voices: list[Voice]) -> str:
    header = ("NAME", "VOICE ID", "CATEGORY", "ACCENT", "GENDER", "AGE")
    rows = [
        (
            v.name,
            v.voice_id,
            v.category or "",
            v.label("accent") or "",
            v.label("gender") or "",
            v.label("age") or "",
        )
        for v in voices
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)
