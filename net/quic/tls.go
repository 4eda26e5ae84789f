package quic

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// The files a certificates directory holds (cluster.CreateCA and
// cluster.CreateNodeCert write them).
const (
	CAFile   = "ca.crt"   // the cluster CA's certificate (PEM)
	CertFile = "node.crt" // this node's certificate, signed by the CA (PEM)
	KeyFile  = "node.key" // this node's private key (PEM)
)

// alpn names the protocol in the TLS handshake, so that a QUIC endpoint of some
// other application is refused before any stream.
const alpn = "trove/1"

// credentials are what a transport presents and trusts.
type credentials struct {
	cert tls.Certificate
	name string         // the node's name: its certificate's common name
	ca   *x509.CertPool // nil: Insecure, no verification
}

// loadCredentials reads dir's CA certificate, node certificate and key, and
// checks the node certificate is the CA's.
func loadCredentials(dir string) (*credentials, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("quic: read the cluster CA: %w; create certificates with `trove cert create-ca` and `trove cert create-node`, or set Insecure", err)
	}
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("quic: %s holds no PEM certificate", filepath.Join(dir, CAFile))
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("quic: load the node certificate from %s: %w", dir, err)
	}
	leaf := cert.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("quic: %s is not signed by the CA in %s: %w; create it with `trove cert create-node` from that CA", filepath.Join(dir, CertFile), filepath.Join(dir, CAFile), err)
	}
	if leaf.Subject.CommonName == "" {
		return nil, fmt.Errorf("quic: %s has no common name; node certificates name their node", filepath.Join(dir, CertFile))
	}
	return &credentials{cert: cert, name: leaf.Subject.CommonName, ca: ca}, nil
}

// selfSigned makes Insecure credentials: a throwaway self-signed certificate
// naming the node, so that peers still learn its (unauthenticated) name.
func selfSigned(name string) (*credentials, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &credentials{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, name: name}, nil
}

// tlsConfig is the TLS configuration of both sides of every connection: TLS 1.3,
// this node's certificate, and (unless Insecure) the peer's certificate verified
// against the cluster CA, with the reason logged when it is refused.
//
// Verification is done in VerifyConnection rather than by crypto/tls so that a
// refusal on the accepting side, which quic-go does not report to anyone, is
// logged with its reason and the peer's address. The dialled address is checked
// against the certificate's hosts when the certificate lists any
// (cluster.CreateNodeCert's hosts); a certificate without hosts is accepted at
// any address, its name being the peer's identity.
func (c *credentials) tlsConfig(log *slog.Logger, dialing bool, addr string) *tls.Config {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{c.cert},
		NextProtos:         []string{alpn},
		ClientAuth:         tls.RequestClientCert,
		InsecureSkipVerify: true, // verified below, against the cluster CA
	}
	usage, side := x509.ExtKeyUsageClientAuth, "refused a connection from a peer"
	if dialing {
		usage, side = x509.ExtKeyUsageServerAuth, "refused to connect to a peer"
		conf.ServerName = serverName(addr)
	}
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		err := c.verify(cs, usage)
		if err != nil {
			log.Warn("quic: "+side+" whose certificate is not from this cluster's CA", "addr", addr, "peer", peerNameOf(cs), "err", err)
		}
		return err
	}
	return conf
}

// serverTLS is the accepting side's configuration: tlsConfig made per
// handshake, so that a refusal's log line names the peer's address.
func (c *credentials) serverTLS(log *slog.Logger) *tls.Config {
	base := c.tlsConfig(log, false, "")
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpn},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			addr := "unknown"
			if hello.Conn != nil {
				addr = hello.Conn.RemoteAddr().String()
			}
			return c.tlsConfig(log, false, addr), nil
		},
		Certificates: base.Certificates,
	}
}

func (c *credentials) verify(cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate; every node needs one from the cluster CA (`trove cert create-node`)")
	}
	if c.ca == nil {
		return nil // Insecure: anyone, by the name it claims
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.ca, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("peer certificate %q: %w", leaf.Subject.CommonName, err)
	}
	if leaf.Subject.CommonName == "" {
		return errors.New("peer certificate has no common name (node name)")
	}
	if cs.ServerName != "" && len(leaf.IPAddresses)+len(leaf.DNSNames) > 0 {
		if err := leaf.VerifyHostname(cs.ServerName); err != nil {
			return fmt.Errorf("peer certificate %q: %w", leaf.Subject.CommonName, err)
		}
	}
	return nil
}

// resetKey is the key of the node's QUIC stateless resets, derived from its
// private key so that it survives a restart: a node restarted at its address
// tells peers still holding a connection to its previous run that the
// connection is gone (RFC 9000 §10.3), and they redial at once instead of
// waiting for the idle timeout. Insecure credentials are new at every start,
// and so is their key.
func (c *credentials) resetKey() *quicgo.StatelessResetKey {
	der, err := x509.MarshalPKCS8PrivateKey(c.cert.PrivateKey)
	if err != nil {
		return nil // no stateless resets: peers wait for the idle timeout
	}
	k := quicgo.StatelessResetKey(sha256.Sum256(append([]byte("trove quic stateless reset\x00"), der...)))
	return &k
}

// peerNameOf is the peer's name as its certificate claims it (verified or not).
func peerNameOf(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

// serverName is the TLS ServerName for dialling addr: its host.
func serverName(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
