#!/usr/bin/env bash
# Chromium for the browser tests of `mltrace ui` (tests/ui/): the Debian package, driven by
# Playwright for Python as the system browser (Playwright's own browser download is never used:
# only package registries are reachable here). Idempotent: does nothing when /usr/bin/chromium
# already runs. Needs root (CI and the developers' machines run as root) or sudo.
set -euo pipefail

if [[ -x /usr/bin/chromium ]] && /usr/bin/chromium --version >/dev/null 2>&1; then
    exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
    as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
