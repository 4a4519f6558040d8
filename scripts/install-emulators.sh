#!/usr/bin/env bash
# Install the cloud storage emulators the archive tests run against, idempotently:
#   - moto server (S3) and gcp-storage-emulator (GCS) in their own virtualenv
#     .venv-emulators (their botocore pin conflicts with aiobotocore's in .venv);
#   - Azurite (Azure Blob) from npm into .emulators/node_modules (3.35.0: the
#     last release that runs on node 20).
# Re-running it is cheap: each part is skipped when already installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv-emulators"
NODE_PREFIX="$ROOT/.emulators"
AZURITE_VERSION="3.35.0"

if [[ -x "$VENV/bin/moto_server" && -x "$VENV/bin/gcp-storage-emulator" ]]; then
    echo "install-emulators: moto server and gcp-storage-emulator already in $VENV"
else
    echo "install-emulators: creating $VENV (moto[server], gcp-storage-emulator)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]>=5" "gcp-storage-emulator>=2024.8"
fi

if [[ -x "$NODE_PREFIX/node_modules/.bin/azurite-blob" ]] \
    && grep -q "\"version\": \"$AZURITE_VERSION\"" "$NODE_PREFIX/node_modules/azurite/package.json"; then
    echo "install-emulators: azurite $AZURITE_VERSION already in $NODE_PREFIX"
else
    if ! command -v npm >/dev/null; then
        echo "install-emulators: npm is missing, so Azurite (Azure) is not installed (apt-get install -y nodejs npm)" >&2
        if [[ "${CI:-}" == "true" ]]; then
            exit 1
        fi
        echo "install-emulators: the Azure archive tests will be skipped (in CI they fail instead)" >&2
    else
        echo "install-emulators: installing azurite@$AZURITE_VERSION into $NODE_PREFIX"
        mkdir -p "$NODE_PREFIX"
        npm install --silent --no-audit --no-fund --prefix "$NODE_PREFIX" "azurite@$AZURITE_VERSION"
    fi
fi

echo "install-emulators: done"
echo "  EVSTORE_MOTO_SERVER=$VENV/bin/moto_server"
echo "  EVSTORE_GCS_EMULATOR=$VENV/bin/gcp-storage-emulator"
echo "  EVSTORE_AZURITE=$NODE_PREFIX/node_modules/.bin/azurite-blob"
