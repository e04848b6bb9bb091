#!/usr/bin/env bash
# Validates deploy/ without a container engine or a cluster:
#  - `docker compose config` when the compose plugin is installed;
#  - the Go tests in deploy/ (also part of `go test ./...`): the compose file
#    loaded by compose-go (the library behind `docker compose config`, with
#    the Compose spec's JSON schema), every Kubernetes manifest decoded
#    strictly into the real k8s.io/api types and cross-checked (selectors,
#    ports, ConfigMap/Secret references, probes), `systemd-analyze verify`
#    on the unit, and the Grafana dashboard's queries checked against the
#    metric names Podium's code registers.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
	echo "== docker compose config"
	docker compose -f deploy/compose.yaml --env-file deploy/.env.example config -q
else
	echo "== docker compose plugin not installed; compose-go in the Go test validates instead"
fi

echo "== go test ./deploy/"
go test -count=1 -v ./deploy/
echo "deploy files are valid"
