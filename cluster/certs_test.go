package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trovedb/trove/net/quic"
)

func TestCreateCertificates(t *testing.T) {
	root := t.TempDir()
	ca, node := filepath.Join(root, "ca"), filepath.Join(root, "n1")
	if err := CreateCA(ca); err != nil {
		t.Fatal(err)
	}
	if err := CreateNodeCert(ca, node, "n1", "127.0.0.1", "n1.example", "::1"); err != nil {
		t.Fatal(err)
	}
	// The node's directory holds exactly what the node needs; the CA key stays.
	var names []string
	entries, _ := os.ReadDir(node)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "ca.crt node.crt node.key" {
		t.Fatalf("node directory holds %q, want ca.crt node.crt node.key", got)
	}
	for path, mode := range map[string]os.FileMode{
		filepath.Join(ca, CAKeyFile): 0o600, filepath.Join(node, quic.KeyFile): 0o600,
		filepath.Join(ca, quic.CAFile): 0o644, filepath.Join(node, quic.CertFile): 0o644,
	} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, mode)
		}
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(node, quic.CertFile), filepath.Join(node, quic.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(node, quic.CAFile))
	pool.AppendCertsFromPEM(caPEM)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("node certificate does not verify against the CA for %v: %v", usage, err)
		}
	}
	if leaf.Subject.CommonName != "n1" || leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("certificate names %q, key %v; want n1, ECDSA", leaf.Subject.CommonName, leaf.PublicKeyAlgorithm)
	}
	for _, h := range []string{"127.0.0.1", "::1", "n1.example"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("host %s: %v", h, err)
		}
	}
	// A second node from the same CA gets its own key.
	if err := CreateNodeCert(ca, filepath.Join(root, "n2"), "n2"); err != nil {
		t.Fatal(err)
	}
	k1, _ := os.ReadFile(filepath.Join(node, quic.KeyFile))
	k2, _ := os.ReadFile(filepath.Join(root, "n2", quic.KeyFile))
	if string(k1) == string(k2) {
		t.Fatal("two nodes share a key")
	}
}

func TestCreateCertificatesRefuses(t *testing.T) {
	root := t.TempDir()
	ca, node := filepath.Join(root, "ca"), filepath.Join(root, "n1")
	if err := CreateCA(ca); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(filepath.Join(ca, quic.CAFile))
	if err := CreateNodeCert(ca, node, "n1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"CA over a CA", func() error { return CreateCA(ca) }, "already exists"},
		{"node over a node", func() error { return CreateNodeCert(ca, node, "n1") }, "already exists"},
		{"node in the CA's directory", func() error { return CreateNodeCert(ca, ca, "n3") }, "is the CA's directory"},
		{"node in the CA's directory by another path", func() error { return CreateNodeCert(ca, filepath.Join(ca, "."), "n3") }, "is the CA's directory"},
		{"no CA", func() error { return CreateNodeCert(filepath.Join(root, "none"), filepath.Join(root, "n4"), "n4") }, "CA directory"},
		{"empty name", func() error { return CreateNodeCert(ca, filepath.Join(root, "n5"), "") }, "node name"},
		{"directory holding a CA key", func() error {
			d := filepath.Join(root, "n6")
			os.MkdirAll(d, 0o755)
			os.WriteFile(filepath.Join(d, CAKeyFile), []byte("x"), 0o600)
			return CreateNodeCert(ca, d, "n6")
		}, "holds a CA key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	caAfter, _ := os.ReadFile(filepath.Join(ca, quic.CAFile))
	if string(caBefore) != string(caAfter) {
		t.Fatal("the CA certificate changed")
	}
	if _, err := os.Stat(filepath.Join(ca, quic.CertFile)); err == nil {
		t.Fatal("a node certificate was written in the CA's directory")
	}
}
