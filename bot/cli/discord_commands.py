"""`python -m bot run | invite | sync`: the commands that talk to Discord."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

import aiohttp
import discord

from bot.config import Settings, load_settings
from bot.errors import BotError
from bot.logging_setup import configure_logging

log = logging.getLogger(__name__)

INTENT_HELP = (
    "Discord refused the Message Content intent: enable it at "
    "https://discord.com/developers/applications (your app > Bot > Privileged Gateway "
    "Intents > Message Content), or set READ_MESSAGES=false to run without reading channels."
)
TOKEN_HELP = (
    "Discord rejected DISCORD_TOKEN: copy a fresh token from "
    "https://discord.com/developers/applications (your app > Bot > Reset Token) into .env."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    run_parser = sub.add_parser("run", help="run the bot")
    run_parser.set_defaults(handler=run)

    invite = sub.add_parser("invite", help="print the URL that adds the bot to a server")
    invite.set_defaults(handler=print_invite)

    sync = sub.add_parser("sync", help="register the slash commands with Discord")
    sync.add_argument("--guild", type=int, metavar="ID", help="sync to one server only (instant)")
    sync.set_defaults(handler=sync_commands)


class HoldUntilReady(logging.Filter):
    """Startup chatter (INFO and below) waits until the bot is ready, and is dropped if it
    never gets there: a start that fails is the one line saying why, not the noise before it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.holding = True
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.holding and record.levelno < logging.WARNING:
            self.held.append(record)
            return False
        return True

    def release(self) -> None:
        """Ready: write what was held, then let everything through."""
        self.holding = False
        held, self.held = self.held, []
        for record in held:
            logging.getLogger(record.name).handle(record)

    def drop(self) -> None:
        self.holding = False
        self.held = []


@contextlib.contextmanager
def quiet_startup(settings: Settings):
    """Hold startup logs (see `HoldUntilReady`) unless the operator asked for DEBUG."""
    hold = HoldUntilReady()
    handlers = [] if settings.log_level == "DEBUG" else list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(hold)
    try:
        yield hold
    finally:
        hold.drop()
        for handler in handlers:
            handler.removeFilter(hold)


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(
        settings.log_level, secrets=(settings.discord_token, settings.elevenlabs_api_key)
    )
    return settings


@contextlib.contextmanager
def discord_errors(settings: Settings):
    """Turn the ways a Discord login fails into one sentence each."""
    try:
        yield
    except discord.LoginFailure:
        raise BotError(TOKEN_HELP) from None
    except discord.PrivilegedIntentsRequired:
        raise BotError(INTENT_HELP) from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise BotError(
            f"Cannot reach Discord at {settings.discord_api_base} ({type(exc).__name__}): "
            "check the network, or DISCORD_API_BASE."
        ) from None
    except discord.HTTPException as exc:
        raise BotError(f"Discord refused the request (HTTP {exc.status}): {exc.text}") from None


async def run(args: argparse.Namespace) -> int:
    from bot.app import TTSBot
    from bot.runtime import tune_for_serving

    settings = _settings()
    token = settings.require_discord_token().get_secret_value()
    settings.require_elevenlabs_key()
    tune_for_serving()
    bot = TTSBot(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with discord_errors(settings), quiet_startup(settings) as hold:

        async def on_ready() -> None:
            hold.release()

        bot.add_listener(on_ready, "on_ready")
        async with bot:
            runner = asyncio.create_task(bot.start(token), name="bot")
            stopper = asyncio.create_task(stop.wait(), name="signals")
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                log.info("signal received: closing")
                await bot.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            else:
                stopper.cancel()
                runner.result()
    return 0


async def print_invite(args: argparse.Namespace) -> int:
    from bot.app import apply_discord_api_base, invite_url

    settings = _settings()
    token = settings.require_discord_token().get_secret_value()
    apply_discord_api_base(settings.discord_api_base)
    with discord_errors(settings), quiet_startup(settings):
        # Only REST is used; the guilds intent merely keeps discord.py from warning.
        async with discord.Client(intents=discord.Intents(guilds=True)) as client:
            await client.login(token)
            app = await client.application_info()
    print(invite_url(app.id))
    return 0


async def sync_commands(args: argparse.Namespace) -> int:
    from bot.app import TTSBot

    settings = _settings()
    token = settings.require_discord_token().get_secret_value()
    bot = TTSBot(settings, start_services=False)
    with discord_errors(settings), quiet_startup(settings):
        async with bot:
            await bot.login(token)
            guild = discord.Object(args.guild) if args.guild else None
            synced = await bot.sync_commands(guild=guild)
    where = f"server {args.guild}" if args.guild else "every server"
    print(f"Synced {len(synced)} commands to {where}.")
    if args.guild is None and settings.dev_guild_id is not None:
        print(f"Synced the owner commands to the developer server {settings.dev_guild_id}.")
    return 0
