"""Spoken descriptions of what a message carries besides text: files and stickers.

The cog turns `discord.Attachment` and `discord.StickerItem` into these plain values, so
this module never sees a Discord object. Only the kind of a file is spoken, never its name:
file names are often long, meaningless to a listener, and may be private.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Attachment", "attachment_kind", "describe_attachments"]

# kind -> (singular with article, plural noun)
_KINDS = {
    "voice": ("a voice message", "voice messages"),
    "gif": ("a GIF", "GIFs"),
    "image": ("an image", "images"),
    "video": ("a video", "videos"),
    "audio": ("an audio file", "audio files"),
    "file": ("a file", "files"),
}
_EXTENSIONS = {
    "gif": "gif",
    **dict.fromkeys(("png", "jpg", "jpeg", "webp", "bmp", "avif", "heic", "svg"), "image"),
    **dict.fromkeys(("mp4", "mov", "webm", "mkv", "avi", "m4v"), "video"),
    **dict.fromkeys(("mp3", "ogg", "wav", "flac", "m4a", "opus", "aac"), "audio"),
}


@dataclass(frozen=True, slots=True)
class Attachment:
    """What the reader needs to know about one attached file."""

    filename: str = ""
    content_type: str | None = None
    voice_message: bool = False


def attachment_kind(attachment: Attachment) -> str:
    """One of the keys of `_KINDS`: the MIME type wins, the file extension is the fallback."""
    if attachment.voice_message:
        return "voice"
    mime = (attachment.content_type or "").split(";", 1)[0].strip().lower()
    if mime == "image/gif":
        return "gif"
    major = mime.split("/", 1)[0]
    if major in ("image", "video", "audio"):
        return major
    _, dot, extension = attachment.filename.rpartition(".")
    return _EXTENSIONS.get(extension.lower(), "file") if dot else "file"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def describe_attachments(attachments: Iterable[Attachment], stickers: Iterable[str] = ()) -> str:
    """'sent an image', 'sent 3 images and a file', 'sent a sticker Wave'; '' for nothing.

    Sticker names must already be speakable (the caller cleans them); kinds keep the order in
    which they first appear in the message.
    """
    counts: dict[str, int] = {}
    for attachment in attachments:
        kind = attachment_kind(attachment)
        counts[kind] = counts.get(kind, 0) + 1
    items = [
        _KINDS[kind][0] if count == 1 else f"{count} {_KINDS[kind][1]}"
        for kind, count in counts.items()
    ]
    items += [f"a sticker {name}" if name else "a sticker" for name in stickers]
    return f"sent {_join(items)}" if items else ""
