package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/trovedb/trove/net/quic"
)

// CAKeyFile is the CA's private key in the CA's directory. Keep it off the
// nodes: whoever holds it can make members of the cluster.
const CAKeyFile = "ca.key"

// Certificate lifetimes.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	nodeValidity = 5 * 365 * 24 * time.Hour
)

// CreateCA makes a cluster certificate authority in dir (created if missing):
// quic.CAFile, the CA's certificate that every node trusts, and CAKeyFile, its
// private key, which signs node certificates (CreateNodeCert) and must stay in
// dir. It fails if either file exists.
func CreateCA(dir string) error {
	crt, key := filepath.Join(dir, quic.CAFile), filepath.Join(dir, CAKeyFile)
	if err := refuseExisting(crt, key); err != nil {
		return err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("cluster: create CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "trove cluster CA", Organization: []string{"trove"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return fmt.Errorf("cluster: create CA certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: create CA directory: %w", err)
	}
	if err := writeKey(key, priv); err != nil {
		return err
	}
	return writePEM(crt, "CERTIFICATE", der, 0o644)
}

// CreateNodeCert makes node name's credentials in nodeDir (created if
// missing), signed by the CA in caDir: a copy of quic.CAFile, quic.CertFile (the
// node's certificate, its common name the node's name) and quic.KeyFile. hosts
// are the IP addresses and DNS names peers reach the node at; when given, a
// peer dialling the node checks the address it dialled is one of them. It
// fails if nodeDir is the CA's directory (the CA key must not sit with a
// node's files) or already holds any of the files.
func CreateNodeCert(caDir, nodeDir, name string, hosts ...string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("cluster: node name %q: want 1 to 64 bytes", name)
	}
	if same, err := sameDir(caDir, nodeDir); err != nil {
		return err
	} else if same {
		return fmt.Errorf("cluster: node directory %s is the CA's directory; the CA key must stay apart from every node's files: choose another directory", nodeDir)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, CAKeyFile)); err == nil {
		return fmt.Errorf("cluster: %s holds a CA key (%s); a node's directory must not: choose another directory", nodeDir, CAKeyFile)
	}
	caCrt, caKey, caCert, err := loadCA(caDir)
	if err != nil {
		return err
	}
	crt, key, ca := filepath.Join(nodeDir, quic.CertFile), filepath.Join(nodeDir, quic.KeyFile), filepath.Join(nodeDir, quic.CAFile)
	if err := refuseExisting(crt, key, ca); err != nil {
		return err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("cluster: create node key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"trove"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(nodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &priv.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("cluster: sign the certificate of node %q: %w", name, err)
	}
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return fmt.Errorf("cluster: create node directory: %w", err)
	}
	if err := writeKey(key, priv); err != nil {
		return err
	}
	if err := writePEM(crt, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeFile(ca, caCrt, 0o644)
}

// loadCA reads the CA's certificate (PEM) and key from dir.
func loadCA(dir string) (crtPEM []byte, key *ecdsa.PrivateKey, cert *x509.Certificate, err error) {
	crtPEM, err = os.ReadFile(filepath.Join(dir, quic.CAFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cluster: read the CA certificate: %w; create a CA with `trove cert create-ca -dir %s`", err, dir)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, quic.CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cluster: load the CA from %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, nil, fmt.Errorf("cluster: the CA key in %s is not an ECDSA key", dir)
	}
	if !pair.Leaf.IsCA {
		return nil, nil, nil, fmt.Errorf("cluster: %s is not a CA certificate", filepath.Join(dir, quic.CAFile))
	}
	return crtPEM, key, pair.Leaf, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("cluster: certificate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("cluster: encode key: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode fs.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// writeFile creates path (failing if it exists) with data, synced.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("cluster: write %s: %w", path, err)
	}
	return nil
}

func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("cluster: %s already exists; remove it or choose another directory (existing credentials are never overwritten)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}

// sameDir reports whether a and b name one directory (b may not exist yet).
func sameDir(a, b string) (bool, error) {
	ai, err := os.Stat(a)
	if err != nil {
		return false, fmt.Errorf("cluster: CA directory: %w", err)
	}
	bi, err := os.Stat(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("cluster: node directory: %w", err)
	}
	return os.SameFile(ai, bi), nil
}
