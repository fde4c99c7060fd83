#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs `histo demo` on the built-in synthetic cohort.
# Extra arguments go to `histo demo` (e.g. --slides 12 -o out/small).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec src/Histo.Cli/bin/Release/net10.0/linux-x64/histo demo "$@"
