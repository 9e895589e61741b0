#!/usr/bin/env bash
# Quickstart 1: set up, then run trialwatch end to end on the built-in registry simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/trialwatch demo "$@"
