#!/usr/bin/env bash
# Install the system tools some tests use, from Debian's packages, when missing:
#   - chromium and chromium-driver: the web console's browser tests (tests/console);
#   - promtool (package prometheus): the checks of deploy/prometheus.
# Needs root and apt-get; without them it says what to install and the tests that
# need a missing tool are skipped (in CI, CI=true, they fail instead).
set -euo pipefail

missing=()
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    missing+=(chromium chromium-driver)
fi
if ! command -v promtool >/dev/null 2>&1; then
    missing+=(prometheus)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: not installed (needs root and apt-get): ${missing[*]};" \
         "the tests that need them are skipped" >&2
    exit 0
fi
echo "install-test-tools: installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
