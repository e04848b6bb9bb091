// Command validate checks Podium's deployment files the way their real
// consumers would read them, without a container engine or a cluster:
//
//   - the compose file is loaded with compose-go, the library behind
//     `docker compose config`, which checks it against the Compose
//     specification's JSON schema and resolves variables and env files;
//   - every Kubernetes manifest is decoded strictly (unknown fields are
//     errors) into the real k8s.io/api types of its apiVersion/kind, then
//     checked for what would break at run time: Service selectors that match
//     no pod, targetPorts that name no container port, envFrom references to
//     missing ConfigMaps/Secrets, probes on the wrong paths.
//
// It lives in its own module so that podium's go.mod does not carry the
// Kubernetes and Compose libraries. Run from this directory:
//
//	go run . -deploy ..
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

func main() {
	dir := flag.String("deploy", "..", "the deploy/ directory")
	flag.Parse()
	var errs []error
	if err := checkCompose(*dir); err != nil {
		errs = append(errs, fmt.Errorf("compose: %w", err))
	} else {
		fmt.Println("ok   compose.yaml (compose-spec schema, variables, env files)")
	}
	n, err := checkKubernetes(filepath.Join(*dir, "k8s"))
	if err != nil {
		errs = append(errs, fmt.Errorf("kubernetes: %w", err))
	} else {
		fmt.Printf("ok   k8s/ (%d objects decoded strictly into k8s.io/api types, references resolved)\n", n)
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL", err)
		os.Exit(1)
	}
}

// checkCompose loads compose.yaml with the variables of .env.example, as
// `docker compose --env-file deploy/.env.example config` would.
func checkCompose(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	env, err := dotenv.Read(filepath.Join(abs, ".env.example"))
	if err != nil {
		return fmt.Errorf(".env.example: %w", err)
	}
	path := filepath.Join(abs, "compose.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: data}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("podium", true) })
	if err != nil {
		return err
	}
	var errs []error
	for _, want := range []string{"podium", "minio", "redis", "prometheus", "grafana"} {
		if _, err := project.GetService(want); err != nil {
			errs = append(errs, fmt.Errorf("service %q missing", want))
		}
	}
	if podium, err := project.GetService("podium"); err == nil {
		if podium.HealthCheck == nil || !strings.Contains(strings.Join(podium.HealthCheck.Test, " "), "/readyz") {
			errs = append(errs, errors.New("podium: healthcheck must probe /readyz"))
		}
		protos := map[string]bool{}
		for _, p := range podium.Ports {
			protos[p.Protocol] = true
		}
		if !protos["udp"] || !protos["tcp"] {
			errs = append(errs, errors.New("podium: must publish both UDP (ICE) and TCP ports"))
		}
	}
	for _, mount := range []string{"prometheus/prometheus.yml", "grafana/provisioning", "grafana/dashboards"} {
		if _, err := os.Stat(filepath.Join(abs, mount)); err != nil {
			errs = append(errs, fmt.Errorf("mounted path: %w", err))
		}
	}
	return errors.Join(errs...)
}

// objects holds the decoded manifests, for cross-reference checks.
type objects struct {
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     []*corev1.Service
	workloads    []workload
	autoscalers  []*autoscalingv2.HorizontalPodAutoscaler
	namespaces   map[string]bool
	kustomizeRes []string
}

type workload struct {
	kind, name, namespace string
	labels                map[string]string
	pod                   corev1.PodSpec
}

func checkKubernetes(dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no manifests in %s", dir)
	}
	sort.Strings(files)
	o := &objects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, namespaces: map[string]bool{}}
	var errs []error
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for i, doc := range splitDocuments(data) {
			if err := o.decode(doc); err != nil {
				errs = append(errs, fmt.Errorf("%s document %d: %w", filepath.Base(f), i+1, err))
			}
			n++
		}
	}
	errs = append(errs, o.crossCheck(files)...)
	return n, errors.Join(errs...)
}

// splitDocuments splits a multi-document YAML stream on "---" lines,
// dropping documents that hold only comments.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		if hasContent(d) {
			docs = append(docs, d)
		}
	}
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

func (o *objects) decode(doc []byte) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return err
	}
	strict := func(into any) error { return yaml.UnmarshalStrict(doc, into) }
	meta := func(name, namespace string, namespaced bool) error {
		var errs []error
		for _, m := range validation.IsDNS1123Subdomain(name) {
			errs = append(errs, fmt.Errorf("%s name %q: %s", head.Kind, name, m))
		}
		if namespaced && namespace == "" {
			errs = append(errs, fmt.Errorf("%s %s: no namespace", head.Kind, name))
		}
		return errors.Join(errs...)
	}
	switch head.APIVersion + " " + head.Kind {
	case "v1 Namespace":
		var ns corev1.Namespace
		if err := strict(&ns); err != nil {
			return err
		}
		o.namespaces[ns.Name] = true
		return meta(ns.Name, "x", false)
	case "v1 ConfigMap":
		var cm corev1.ConfigMap
		if err := strict(&cm); err != nil {
			return err
		}
		o.configMaps[cm.Namespace+"/"+cm.Name] = &cm
		return meta(cm.Name, cm.Namespace, true)
	case "v1 Secret":
		var s corev1.Secret
		if err := strict(&s); err != nil {
			return err
		}
		o.secrets[s.Namespace+"/"+s.Name] = &s
		return meta(s.Name, s.Namespace, true)
	case "v1 Service":
		var s corev1.Service
		if err := strict(&s); err != nil {
			return err
		}
		o.services = append(o.services, &s)
		return meta(s.Name, s.Namespace, true)
	case "apps/v1 StatefulSet":
		var s appsv1.StatefulSet
		if err := strict(&s); err != nil {
			return err
		}
		if s.Spec.Selector == nil || !selects(s.Spec.Selector.MatchLabels, s.Spec.Template.Labels) {
			return fmt.Errorf("statefulset %s: selector does not match its pod template", s.Name)
		}
		o.workloads = append(o.workloads, workload{"StatefulSet", s.Name, s.Namespace, s.Spec.Template.Labels, s.Spec.Template.Spec})
		return meta(s.Name, s.Namespace, true)
	case "apps/v1 Deployment":
		var d appsv1.Deployment
		if err := strict(&d); err != nil {
			return err
		}
		if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			return fmt.Errorf("deployment %s: selector does not match its pod template", d.Name)
		}
		o.workloads = append(o.workloads, workload{"Deployment", d.Name, d.Namespace, d.Spec.Template.Labels, d.Spec.Template.Spec})
		return meta(d.Name, d.Namespace, true)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := strict(&h); err != nil {
			return err
		}
		if len(h.Spec.Metrics) == 0 || h.Spec.MaxReplicas < 1 {
			return fmt.Errorf("autoscaler %s: no metrics or no maxReplicas", h.Name)
		}
		o.autoscalers = append(o.autoscalers, &h)
		return meta(h.Name, h.Namespace, true)
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		var k struct {
			APIVersion string   `json:"apiVersion"`
			Kind       string   `json:"kind"`
			Namespace  string   `json:"namespace"`
			Resources  []string `json:"resources"`
		}
		if err := strict(&k); err != nil {
			return err
		}
		o.kustomizeRes = k.Resources
		return nil
	default:
		return fmt.Errorf("unexpected object %q %q (add it to the validator)", head.APIVersion, head.Kind)
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (o *objects) crossCheck(files []string) []error {
	var errs []error
	for _, w := range o.workloads {
		if !o.namespaces[w.namespace] {
			errs = append(errs, fmt.Errorf("%s %s: namespace %q is not defined", w.kind, w.name, w.namespace))
		}
		for _, c := range w.pod.Containers {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && o.configMaps[w.namespace+"/"+ef.ConfigMapRef.Name] == nil {
					errs = append(errs, fmt.Errorf("%s %s: ConfigMap %q not defined", w.kind, w.name, ef.ConfigMapRef.Name))
				}
				if ef.SecretRef != nil && o.secrets[w.namespace+"/"+ef.SecretRef.Name] == nil {
					errs = append(errs, fmt.Errorf("%s %s: Secret %q not defined", w.kind, w.name, ef.SecretRef.Name))
				}
			}
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				errs = append(errs, fmt.Errorf("%s %s/%s: allowPrivilegeEscalation must be false", w.kind, w.name, c.Name))
			}
		}
		if w.labels["app.kubernetes.io/name"] == "podium" {
			errs = append(errs, checkPodiumPod(w)...)
		}
	}
	for _, s := range o.services {
		errs = append(errs, o.checkService(s)...)
	}
	for _, h := range o.autoscalers {
		found := false
		for _, w := range o.workloads {
			ref := h.Spec.ScaleTargetRef
			found = found || (w.kind == ref.Kind && w.name == ref.Name && w.namespace == h.Namespace && ref.APIVersion == "apps/v1")
		}
		if !found {
			errs = append(errs, fmt.Errorf("autoscaler %s: scale target %s %s is not defined", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name))
		}
	}
	if o.kustomizeRes != nil {
		listed := map[string]bool{}
		for _, r := range o.kustomizeRes {
			listed[r] = true
		}
		for _, f := range files {
			b := filepath.Base(f)
			if b != "kustomization.yaml" && !listed[b] {
				errs = append(errs, fmt.Errorf("kustomization.yaml does not list %s", b))
			}
			delete(listed, b)
		}
		for r := range listed {
			errs = append(errs, fmt.Errorf("kustomization.yaml lists missing file %s", r))
		}
	}
	return errs
}

func checkPodiumPod(w workload) []error {
	var errs []error
	if len(w.pod.Containers) == 0 {
		return []error{fmt.Errorf("%s %s: no containers", w.kind, w.name)}
	}
	c := w.pod.Containers[0]
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
			errs = append(errs, fmt.Errorf("%s %s: %s probe must GET %s", w.kind, w.name, what, path))
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	nonRoot := w.pod.SecurityContext != nil && w.pod.SecurityContext.RunAsNonRoot != nil && *w.pod.SecurityContext.RunAsNonRoot
	if !nonRoot {
		errs = append(errs, fmt.Errorf("%s %s: pod must run as non-root", w.kind, w.name))
	}
	protos := map[corev1.Protocol]bool{}
	for _, p := range c.Ports {
		protos[p.Protocol] = true
	}
	if !protos[corev1.ProtocolUDP] || !protos[corev1.ProtocolTCP] {
		errs = append(errs, fmt.Errorf("%s %s: needs both UDP and TCP container ports", w.kind, w.name))
	}
	return errs
}

// checkService finds the pods a Service selects and checks that each
// targetPort exists on them with the same protocol.
func (o *objects) checkService(s *corev1.Service) []error {
	var errs []error
	var pods []workload
	for _, w := range o.workloads {
		if w.namespace == s.Namespace && selects(s.Spec.Selector, w.labels) {
			pods = append(pods, w)
		}
	}
	if len(pods) == 0 {
		return []error{fmt.Errorf("service %s: selector %v matches no pod template", s.Name, s.Spec.Selector)}
	}
	for _, sp := range s.Spec.Ports {
		for _, w := range pods {
			if !hasContainerPort(w.pod, sp.TargetPort, sp.Protocol) {
				errs = append(errs, fmt.Errorf("service %s port %s: %s %s has no %s container port %s",
					s.Name, sp.Name, w.kind, w.name, sp.Protocol, sp.TargetPort.String()))
			}
		}
	}
	return errs
}

func hasContainerPort(pod corev1.PodSpec, target intstr.IntOrString, proto corev1.Protocol) bool {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if pp != proto {
				continue
			}
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return true
			}
		}
	}
	return false
}
