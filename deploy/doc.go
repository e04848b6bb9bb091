// Package deploy holds Podium's deployment files (container image, compose
// file, Kubernetes manifests, systemd unit, Prometheus and Grafana
// provisioning) and the tests that validate them without a container engine
// or a cluster. It has no Go code that ships: it must not be imported.
package deploy
