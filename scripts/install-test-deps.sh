#!/usr/bin/env bash
# Installs what Podium's tests use: ffmpeg, chromium, redis-server and
# postgresql from Debian, MinIO from the Go module proxy. Safe to run again:
# it installs only what is missing.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# PostgreSQL for the replay database's tests: Debian puts initdb and postgres
# under /usr/lib/postgresql/NN/bin, not on PATH; the tests look there too.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	need_apt+=(postgresql)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "install-test-deps: apt-get install ${need_apt[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

gobin="$(go env GOPATH)/bin"
if ! command -v minio >/dev/null 2>&1 && [ ! -x "$gobin/minio" ]; then
	echo "install-test-deps: go install github.com/minio/minio@$MINIO_VERSION (a few minutes)"
	# MinIO pins its own dependencies; build it outside this module.
	(cd "$(mktemp -d)" && GOFLAGS= go install "github.com/minio/minio@$MINIO_VERSION")
fi
echo "install-test-deps: ffmpeg, chromium, redis-server, postgresql and minio are ready"
