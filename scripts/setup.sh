#!/usr/bin/env bash
# Installs what Histo needs on Debian 12 (as root) when it is missing, then builds in Release.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
ldconfig -p | grep -q 'libopenslide.so.0' || need+=(libopenslide0)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} (apt-get)..."
  if [ "$(id -u)" -ne 0 ]; then echo "error: run as root (or: sudo apt-get install -y ${need[*]})" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v dotnet >/dev/null || { echo "error: the .NET 10 SDK is needed (dotnet not on PATH)" >&2; exit 1; }
dotnet build Histo.slnx -c Release -nologo -v quiet -clp:ErrorsOnly
