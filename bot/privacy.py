"""The privacy notice: one text for /privacy and the README (a test keeps them equal).

The README's "Privacy" section is the same words without the bold labels; change both.
"""

PRIVACY_NOTICE = """\
**What goes to ElevenLabs:** only the text to be spoken (after mentions are turned into \
names), with the voice and its settings.
**What the bot stores:** your voice choice and settings, your nickname for "X said", and \
whether you opted out of being read aloud; per server, the admins' settings, bound channels \
and the credit ledger (amounts, character counts, voice and model, never the text). \
Messages are never stored or logged: logs hold lengths and ids only.
`/voice forget` deletes everything stored about you, in every server. When the bot leaves \
a server, that server's data is deleted after a grace period."""
