import sys

from bot.cli import main

# Guarded: the Opus encoder processes (OPUS_ENCODER_PROCESSES) are spawned, and a spawned
# child imports the parent's main module; it must not start another bot.
if __name__ == "__main__":
    sys.exit(main())
