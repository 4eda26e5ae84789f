package manifests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/trovedb/trove"
)

// Headroom is the memory troved's pod gets above its arena's capacity: the
// Go heap (GOMEMLIMIT sits below it), goroutine stacks, QUIC buffers, the
// small-object cache and the binary. The DaemonSet's memory limit must be
// capacity + Headroom.
const Headroom = 512 << 20

// trovedContainer is the name of troved's container in its DaemonSet.
const trovedContainer = "troved"

// Check runs the checks the API's schemas cannot make on trove's manifests
// (objs, decoded by Decode or DecodeDir) and returns every problem found,
// joined.
func Check(objs []Object) error {
	c := &checker{objs: objs, namespaces: map[string]bool{"default": true}, byKey: map[string]Object{}}
	for _, o := range objs {
		if ns, ok := o.Obj.(*corev1.Namespace); ok {
			c.namespaces[ns.Name] = true
		}
		if m, ok := meta(o); ok {
			c.byKey[o.Kind+"/"+m.GetNamespace()+"/"+m.GetName()] = o
		}
	}
	for _, o := range objs {
		c.object(o)
	}
	c.troved()
	return errors.Join(c.errs...)
}

type checker struct {
	objs       []Object
	namespaces map[string]bool
	byKey      map[string]Object // kind/namespace/name
	errs       []error
}

func (c *checker) fail(o Object, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
}

func meta(o Object) (metav1.Object, bool) {
	m, ok := o.Obj.(metav1.Object)
	return m, ok
}

// podSpec is the pod template of a workload.
func podSpec(o Object) (*metav1.LabelSelector, *corev1.PodTemplateSpec, bool) {
	switch w := o.Obj.(type) {
	case *appsv1.DaemonSet:
		return w.Spec.Selector, &w.Spec.Template, true
	case *appsv1.Deployment:
		return w.Spec.Selector, &w.Spec.Template, true
	case *appsv1.StatefulSet:
		return w.Spec.Selector, &w.Spec.Template, true
	case *batchv1.Job:
		return w.Spec.Selector, &w.Spec.Template, true
	}
	return nil, nil, false
}

// object checks one object: its namespace is known, its selector selects
// its pods, and what its pods name (ConfigMaps, ServiceAccounts) is here.
func (c *checker) object(o Object) {
	m, ok := meta(o)
	if !ok {
		return
	}
	if _, isNS := o.Obj.(*corev1.Namespace); !isNS && m.GetNamespace() != "" && !c.namespaces[m.GetNamespace()] {
		c.fail(o, "namespace %q is not among the manifests: add its Namespace", m.GetNamespace())
	}
	if svc, ok := o.Obj.(*corev1.Service); ok {
		if len(svc.Spec.Selector) > 0 && !c.selectsPods(svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector)) {
			c.fail(o, "selector %v selects no pod template of the manifests", svc.Spec.Selector)
		}
	}
	sel, tmpl, ok := podSpec(o)
	if !ok {
		return
	}
	if sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			c.fail(o, "selector: %v", err)
		} else if !s.Matches(labels.Set(tmpl.Labels)) {
			c.fail(o, "selector %v does not match the pod template's labels %v (the API server refuses it)", s, tmpl.Labels)
		}
	} else if _, isJob := o.Obj.(*batchv1.Job); !isJob {
		c.fail(o, "no spec.selector (required)")
	}
	ns := m.GetNamespace()
	if sa := tmpl.Spec.ServiceAccountName; sa != "" {
		if _, ok := c.byKey["ServiceAccount/"+ns+"/"+sa]; !ok {
			c.fail(o, "serviceAccountName %q is not among the manifests", sa)
		}
	}
	for _, v := range tmpl.Spec.Volumes {
		if v.ConfigMap != nil {
			if _, ok := c.byKey["ConfigMap/"+ns+"/"+v.ConfigMap.Name]; !ok {
				c.fail(o, "volume %q: ConfigMap %q is not among the manifests", v.Name, v.ConfigMap.Name)
			}
		}
	}
	all := append(append([]corev1.Container{}, tmpl.Spec.InitContainers...), tmpl.Spec.Containers...)
	if len(tmpl.Spec.Containers) == 0 {
		c.fail(o, "no containers")
	}
	for _, ct := range all {
		if ct.Image == "" {
			c.fail(o, "container %q has no image", ct.Name)
		}
		for _, vm := range ct.VolumeMounts {
			if volume(tmpl, vm.Name) == nil {
				c.fail(o, "container %q mounts volume %q, which the pod does not have", ct.Name, vm.Name)
			}
		}
	}
}

func (c *checker) selectsPods(ns string, s labels.Selector) bool {
	for _, o := range c.objs {
		m, ok := meta(o)
		if !ok || m.GetNamespace() != ns {
			continue
		}
		if _, tmpl, ok := podSpec(o); ok && s.Matches(labels.Set(tmpl.Labels)) {
			return true
		}
	}
	return false
}

func volume(tmpl *corev1.PodTemplateSpec, name string) *corev1.Volume {
	for i := range tmpl.Spec.Volumes {
		if tmpl.Spec.Volumes[i].Name == name {
			return &tmpl.Spec.Volumes[i]
		}
	}
	return nil
}

// hostPathAt is the host directory mounted at dir in ct (or a directory
// above dir), or "" if none is.
func hostPathAt(tmpl *corev1.PodTemplateSpec, ct *corev1.Container, dir string) string {
	for _, vm := range ct.VolumeMounts {
		v := volume(tmpl, vm.Name)
		if v == nil || v.HostPath == nil {
			continue
		}
		if rel, ok := strings.CutPrefix(path.Clean(dir), path.Clean(vm.MountPath)); ok && (rel == "" || strings.HasPrefix(rel, "/")) {
			return path.Join(v.HostPath.Path, rel)
		}
	}
	return ""
}

// trovedConfig is the part of troved's -config file the checks read.
type trovedConfig struct {
	Socket   string   `json:"socket"`
	Capacity string   `json:"capacity"`
	SpillDir []string `json:"spill-dir"`
	HTTP     string   `json:"http"`
	CertsDir string   `json:"certs-dir"`
}

// troved checks troved's DaemonSet against its ConfigMap and Service, and
// every client pod's socket against troved's.
func (c *checker) troved() {
	var found bool
	for _, o := range c.objs {
		ds, ok := o.Obj.(*appsv1.DaemonSet)
		if !ok {
			continue
		}
		tmpl := &ds.Spec.Template
		var ct *corev1.Container
		for i := range tmpl.Spec.Containers {
			if tmpl.Spec.Containers[i].Name == trovedContainer {
				ct = &tmpl.Spec.Containers[i]
			}
		}
		if ct == nil {
			continue
		}
		found = true
		cfg, ok := c.trovedConfig(o, tmpl, ct)
		if !ok {
			continue
		}
		c.trovedResources(o, ct, cfg)
		socketHost := hostPathAt(tmpl, ct, path.Dir(cfg.Socket))
		if socketHost == "" {
			c.fail(o, "the socket's directory %s is not a hostPath mount: pods on the node cannot reach the store", path.Dir(cfg.Socket))
		}
		for _, d := range cfg.SpillDir {
			if hostPathAt(tmpl, ct, d) == "" {
				c.fail(o, "spill-dir %s is not a hostPath mount: spilled objects would fill the container's writable layer", d)
			}
		}
		c.trovedProbes(o, ds, ct, cfg)
		c.trovedJoin(o, ds, ct)
		if socketHost != "" {
			c.clients(path.Join(socketHost, path.Base(cfg.Socket)))
		}
	}
	if !found {
		c.errs = append(c.errs, fmt.Errorf("no DaemonSet with a container named %q (troved)", trovedContainer))
	}
}

// trovedConfig reads the -config file troved's args name, from the
// ConfigMap mounted at its directory.
func (c *checker) trovedConfig(o Object, tmpl *corev1.PodTemplateSpec, ct *corev1.Container) (trovedConfig, bool) {
	var file string
	for _, a := range ct.Args {
		if v, ok := strings.CutPrefix(a, "-config="); ok {
			file = v
		}
	}
	if file == "" {
		c.fail(o, "troved's args give no -config=FILE (the checks read the capacity from it)")
		return trovedConfig{}, false
	}
	for _, vm := range ct.VolumeMounts {
		v := volume(tmpl, vm.Name)
		if v == nil || v.ConfigMap == nil || path.Clean(vm.MountPath) != path.Dir(file) {
			continue
		}
		cmo, ok := c.byKey["ConfigMap/"+o.Obj.(metav1.Object).GetNamespace()+"/"+v.ConfigMap.Name]
		if !ok {
			return trovedConfig{}, false // reported by object
		}
		text, ok := cmo.Obj.(*corev1.ConfigMap).Data[path.Base(file)]
		if !ok {
			c.fail(cmo, "no key %q, the file troved's -config=%s names", path.Base(file), file)
			return trovedConfig{}, false
		}
		var cfg trovedConfig
		if err := json.Unmarshal([]byte(text), &cfg); err != nil {
			c.fail(cmo, "%s: not troved's config file: %v", path.Base(file), err)
			return trovedConfig{}, false
		}
		return cfg, true
	}
	c.fail(o, "-config=%s: no ConfigMap is mounted at %s", file, path.Dir(file))
	return trovedConfig{}, false
}

// trovedResources: memory limit = request = capacity + Headroom.
func (c *checker) trovedResources(o Object, ct *corev1.Container, cfg trovedConfig) {
	if strings.HasSuffix(strings.TrimSpace(cfg.Capacity), "%") || cfg.Capacity == "" {
		c.fail(o, "capacity %q: give troved a size (4GiB), not a share of RAM: a share is of the node's RAM, not of the pod's memory limit", cfg.Capacity)
		return
	}
	capacity, err := trove.ParseBytes(cfg.Capacity)
	if err != nil {
		c.fail(o, "capacity %q: %v", cfg.Capacity, err)
		return
	}
	want := resource.NewQuantity(capacity+Headroom, resource.BinarySI)
	limit, ok := ct.Resources.Limits[corev1.ResourceMemory]
	if !ok || limit.Cmp(*want) != 0 {
		c.fail(o, "memory limit %s, want capacity (%s) + %s = %s: the arena's pages are charged to troved's pod and cannot be reclaimed",
			limit.String(), cfg.Capacity, resource.NewQuantity(Headroom, resource.BinarySI), want)
	}
	if req, ok := ct.Resources.Requests[corev1.ResourceMemory]; !ok || req.Cmp(limit) != 0 {
		c.fail(o, "memory request %s, want the limit %s: the scheduler must reserve the arena on the node", req.String(), limit.String())
	}
}

// trovedProbes: the probes ask the HTTP port's /healthz and /readyz on the
// node's loopback, which needs the host's network.
func (c *checker) trovedProbes(o Object, ds *appsv1.DaemonSet, ct *corev1.Container, cfg trovedConfig) {
	host, port, err := net.SplitHostPort(cfg.HTTP)
	if err != nil {
		c.fail(o, "http %q: want the loopback host:port the probes ask: %v", cfg.HTTP, err)
		return
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startupProbe", ct.StartupProbe, "/healthz"}, {"livenessProbe", ct.LivenessProbe, "/healthz"}, {"readinessProbe", ct.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			c.fail(o, "troved has no %s with httpGet", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Host != host || g.Port.String() != port {
			c.fail(o, "%s asks http://%s:%s%s, want http://%s:%s%s (troved's http setting)", p.name, g.Host, g.Port.String(), g.Path, host, port, p.path)
		}
	}
	if !ds.Spec.Template.Spec.HostNetwork {
		c.fail(o, "hostNetwork is off: the kubelet cannot reach troved's loopback-only HTTP port for its probes")
	} else if ds.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		c.fail(o, "dnsPolicy %q with hostNetwork: want ClusterFirstWithHostNet, or -join's Service name does not resolve", ds.Spec.Template.Spec.DNSPolicy)
	}
}

// trovedJoin: -join names a headless Service of the manifests, on its
// port, that lists pods before they are ready.
func (c *checker) trovedJoin(o Object, ds *appsv1.DaemonSet, ct *corev1.Container) {
	var join string
	for _, a := range ct.Args {
		if v, ok := strings.CutPrefix(a, "-join="); ok {
			join = v
		}
	}
	if join == "" {
		c.fail(o, "troved's args give no -join=SERVICE:PORT: each node would start a cluster of its own")
		return
	}
	host, port, err := net.SplitHostPort(join)
	if err != nil {
		c.fail(o, "-join=%s: want host:port: %v", join, err)
		return
	}
	parts := strings.Split(host, ".")
	if len(parts) < 3 || parts[2] != "svc" {
		c.fail(o, "-join=%s: want a Service's name, SERVICE.NAMESPACE.svc[.cluster.local]", join)
		return
	}
	so, ok := c.byKey["Service/"+parts[1]+"/"+parts[0]]
	if !ok {
		c.fail(o, "-join=%s: no Service %s in namespace %s among the manifests", join, parts[0], parts[1])
		return
	}
	svc := so.Obj.(*corev1.Service)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		c.fail(so, "clusterIP %q: want None (headless), so that its name resolves to every troved", svc.Spec.ClusterIP)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		c.fail(so, "publishNotReadyAddresses is off: troved pods, not ready until joined, could not find each other while starting")
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
		c.fail(so, "selector %v does not select troved's pods %v", svc.Spec.Selector, ds.Spec.Template.Labels)
	}
	var portOK bool
	for _, p := range svc.Spec.Ports {
		portOK = portOK || (strconv.Itoa(int(p.Port)) == port && p.Protocol == corev1.ProtocolUDP)
	}
	if !portOK {
		c.fail(so, "no UDP port %s, the port -join=%s dials", port, join)
	}
}

// clients: every other container setting TROVE_SOCKET mounts the host
// directory troved's socket is in.
func (c *checker) clients(hostSocket string) {
	for _, o := range c.objs {
		_, tmpl, ok := podSpec(o)
		if !ok {
			continue
		}
		for _, ct := range append(append([]corev1.Container{}, tmpl.Spec.InitContainers...), tmpl.Spec.Containers...) {
			if ct.Name == trovedContainer {
				continue
			}
			for _, e := range ct.Env {
				if e.Name != "TROVE_SOCKET" {
					continue
				}
				got := hostPathAt(tmpl, &ct, path.Dir(e.Value))
				if got == "" || path.Join(got, path.Base(e.Value)) != hostSocket {
					c.fail(o, "container %q: TROVE_SOCKET=%s is not troved's socket (the host's %s): mount its directory from the host", ct.Name, e.Value, hostSocket)
				}
			}
		}
	}
}
