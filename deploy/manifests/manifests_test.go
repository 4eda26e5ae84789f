package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestManifests: deploy/kubernetes/ decodes strictly and passes Check.
func TestManifests(t *testing.T) {
	objs, err := DecodeDir("../kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ConfigMap", "Service", "DaemonSet", "Job"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the manifests (%v)", k, kinds)
		}
	}
	if err := Check(objs); err != nil {
		t.Errorf("deploy/kubernetes/:\n%v", err)
	}
}

// TestBrokenManifests: each change to a good manifest that kubeconform
// would refuse, or that would break trove on a cluster, is an error saying
// so. The changes are made to the real manifests, so the test follows them.
func TestBrokenManifests(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("../kubernetes", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name       string
		file       string
		old, new   string // the change, in file
		decodeErr  string // the error Decode must give, or ""
		checkError string // else the error Check must give
	}{
		{"unknown field", "40-daemonset.yaml", "      hostNetwork: true\n", "      hostNetwork: true\n      hostNetwrok: true\n",
			`has a field the Kubernetes API does not define, or one twice`, ""},
		{"unknown field in a container", "40-daemonset.yaml", "          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          imagePullPolicyy: Always\n",
			`unknown field "spec.template.spec.containers[0].imagePullPolicyy"`, ""},
		{"wrong type", "40-daemonset.yaml", "      terminationGracePeriodSeconds: 30\n", "      terminationGracePeriodSeconds: thirty\n",
			"does not match the Kubernetes API's types", ""},
		{"list for a map", "30-service.yaml", "  selector:\n    app.kubernetes.io/name: troved\n", "  selector:\n    - troved\n",
			"does not match the Kubernetes API's types", ""},
		{"duplicated field", "10-serviceaccount.yaml", "automountServiceAccountToken: false\n", "automountServiceAccountToken: false\nautomountServiceAccountToken: true\n",
			"automountServiceAccountToken", ""},
		{"unknown kind", "00-namespace.yaml", "kind: Namespace", "kind: Namespaces", "is not a kind", ""},
		{"unknown apiVersion", "40-daemonset.yaml", "apiVersion: apps/v1", "apiVersion: apps/v1beta9", "is not a kind", ""},
		{"selector not matching", "40-daemonset.yaml", "    matchLabels:\n      app.kubernetes.io/name: troved\n", "    matchLabels:\n      app.kubernetes.io/name: trove\n",
			"", "does not match the pod template's labels"},
		{"memory limit below capacity", "40-daemonset.yaml", "            limits:\n              memory: 4608Mi\n", "            limits:\n              memory: 4Gi\n",
			"", "want capacity (4GiB) + 512Mi = 4608Mi"},
		{"capacity as a share of RAM", "20-configmap.yaml", `"capacity": "4GiB"`, `"capacity": "30%"`, "", "not a share of RAM"},
		{"socket not on the host", "20-configmap.yaml", `"socket": "/run/trove/troved.sock"`, `"socket": "/var/run/troved.sock"`, "", "is not a hostPath mount"},
		{"probe on another port", "40-daemonset.yaml", "              path: /readyz\n              port: 9464\n", "              path: /readyz\n              port: 9465\n",
			"", "readinessProbe asks http://127.0.0.1:9465/readyz"},
		{"no host network", "40-daemonset.yaml", "      hostNetwork: true\n", "      hostNetwork: false\n", "", "hostNetwork is off"},
		{"join a missing Service", "40-daemonset.yaml", "-join=troved-peers.trove.svc:7100", "-join=troved.trove.svc:7100", "", "no Service troved in namespace trove"},
		{"service not headless", "30-service.yaml", "  clusterIP: None\n", "", "", "want None (headless)"},
		{"client on another socket", "50-example-client.yaml", "\"-concurrency=4\"]\n          env:\n            - name: TROVE_SOCKET\n              value: /run/trove/troved.sock\n",
			"\"-concurrency=4\"]\n          env:\n            - name: TROVE_SOCKET\n              value: /tmp/troved.sock\n",
			"", `container "loadgen": TROVE_SOCKET=/tmp/troved.sock is not troved's socket`},
		{"missing namespace", "00-namespace.yaml", "  name: trove\n", "  name: trove-other\n", "", `namespace "trove" is not among the manifests`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ents, err := os.ReadDir("../kubernetes")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				text := read(e.Name())
				if e.Name() == tc.file {
					if !strings.Contains(text, tc.old) {
						t.Fatalf("%s no longer holds %q: update the test", tc.file, tc.old)
					}
					text = strings.Replace(text, tc.old, tc.new, 1)
				}
				if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			objs, err := DecodeDir(dir)
			if tc.decodeErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.decodeErr) || !strings.Contains(err.Error(), tc.file) {
					t.Fatalf("Decode: %v, want an error naming %s and containing %q", err, tc.file, tc.decodeErr)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if err = Check(objs); err == nil || !strings.Contains(err.Error(), tc.checkError) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.checkError)
			}
			t.Log(err)
		})
	}
}

// TestDecodeSkipsEmptyDocuments: comment-only documents and leading "---"
// are not documents; numbering follows kubectl's.
func TestDecodeSkipsEmptyDocuments(t *testing.T) {
	objs, err := Decode("x.yaml", strings.NewReader("# a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n  labelz: {}\n"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml: document 2 has a field") {
		t.Fatalf("Decode: %v (%d objects), want document 2's unknown field", err, len(objs))
	}
}

// TestCertsSecret: make-certs-secret.sh makes a Secret that decodes
// strictly, is the one the DaemonSet mounts, and holds ca.crt and each
// node's pair (never the CA's key).
func TestCertsSecret(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go")
	}
	dir := t.TempDir()
	trove := filepath.Join(dir, "trove")
	build := exec.Command(gobin, "build", "-o", trove, "./cmd/trove")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/trove: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(bash, "../make-certs-secret.sh", filepath.Join(dir, "ca"), out, "node-a=10.0.0.1", "node-b.example=10.0.0.2")
	cmd.Env = append(os.Environ(), "TROVE="+trove)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-certs-secret.sh: %v\n%s", err, b)
	}
	f, err := os.Open(filepath.Join(out, "secret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := Decode("secret.yaml", f)
	if err != nil || len(objs) != 1 {
		t.Fatalf("secret.yaml: %v (%d objects)", err, len(objs))
	}
	sec, ok := objs[0].Obj.(*corev1.Secret)
	if !ok || sec.Name != "troved-certs" || sec.Namespace != "trove" {
		t.Fatalf("secret.yaml holds %s %v, want Secret trove/troved-certs", objs[0].Kind, objs[0].Obj)
	}
	var keys []string
	for k := range sec.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"ca.crt", "node-a.crt", "node-a.key", "node-b.example.crt", "node-b.example.key"}; !slices.Equal(keys, want) {
		t.Errorf("the Secret's keys %v, want %v", keys, want)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca", "ca.crt"))
	if string(sec.Data["ca.crt"]) != string(ca) {
		t.Error("the Secret's ca.crt is not the CA's")
	}
	// The DaemonSet mounts this Secret.
	ds, err := DecodeDir("../kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	var mounted bool
	for _, o := range ds {
		if d, ok := o.Obj.(*appsv1.DaemonSet); ok {
			for _, v := range d.Spec.Template.Spec.Volumes {
				mounted = mounted || (v.Secret != nil && v.Secret.SecretName == sec.Name)
			}
		}
	}
	if !mounted {
		t.Errorf("no DaemonSet mounts the Secret %s", sec.Name)
	}
	// Run again into the same directory: refused, nothing overwritten.
	cmd = exec.Command(bash, "../make-certs-secret.sh", filepath.Join(dir, "ca"), out, "node-c=10.0.0.3")
	cmd.Env = append(os.Environ(), "TROVE="+trove)
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "not empty") {
		t.Errorf("a second run into %s: %v %s, want a refusal", out, err, b)
	}
}
