#!/usr/bin/env bash
# Installs the system packages the bot and its tests need, only when missing.
# Debian/Ubuntu: libmpg123-0 (mp3 decoding in the process), ffmpeg (the other
# decoder, and the fake's encoder), libopus0 (Discord's codec), espeak-ng (the fake
# ElevenLabs speaks real speech in tests), python3-venv.
set -euo pipefail

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q 'libopus\.so\.0' || missing+=(libopus0)
ldconfig -p 2>/dev/null | grep -q 'libmpg123\.so\.0' || missing+=(libmpg123-0)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]} (install them with your package manager)" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing system packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
