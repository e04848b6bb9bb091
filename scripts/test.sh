#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every test
# (with the race detector) against real MinIO, ffmpeg, Chromium and RTSP/pion
# peers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
export PATH="$(go env GOPATH)/bin:$PATH"

echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 45m ./... 2>&1 | tee /tmp/podium-test.log
