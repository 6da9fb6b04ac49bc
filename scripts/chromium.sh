#!/usr/bin/env bash
# Debian's chromium, for the report's browser test (tests/integration/test_report_browser.py) and
# scripts/report-screenshot.sh. Installs it with apt-get when missing (needs root); does nothing when
# it is there. Playwright drives this browser (executable_path): never `playwright install`.
#
#   scripts/chromium.sh        # prints the browser's path and version
set -euo pipefail

die() { echo "chromium: error: $*" >&2; exit 1; }

if ! command -v chromium >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "chromium is missing; install it (apt-get install chromium) or run as root"
    echo "chromium: installing Debian's chromium (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    command -v chromium >/dev/null 2>&1 || die "apt-get installed chromium but it is not on PATH"
fi
echo "chromium: $(command -v chromium) ($(chromium --version 2>/dev/null | head -1))"
