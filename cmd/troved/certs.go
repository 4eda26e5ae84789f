package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trovedb/trove/net/quic"
)

// nodeCredentials is the credentials directory troved hands the cluster
// node. -certs-dir holds one of two layouts:
//
//   - one node's, as trove cert create-node writes it: ca.crt, node.crt,
//     node.key. The directory is used as it is (done is a no-op).
//   - every node's, as a Kubernetes Secret mounted into each pod of a
//     DaemonSet holds them (deploy/kubernetes): ca.crt, and NAME.crt and
//     NAME.key for each node NAME. troved takes the pair of its -name,
//     copies it with ca.crt into a private directory (mode 0700, under
//     $TMPDIR) as ca.crt, node.crt and node.key, and done removes that
//     directory; the node has read its credentials by then.
//
// A directory with neither is an error saying what to make and where.
func nodeCredentials(cfg config) (dir string, done func(), err error) {
	noop := func() {}
	if cfg.CertsDir == "" {
		return "", noop, nil
	}
	if _, err := os.Stat(filepath.Join(cfg.CertsDir, quic.CertFile)); err == nil {
		return cfg.CertsDir, noop, nil
	}
	if cfg.Name == "" {
		return "", noop, fmt.Errorf("-certs-dir %s holds no %s: give the node's credentials there (trove cert create-node), or give -name NAME to take NAME.crt and NAME.key from it (a Secret with every node's, deploy/kubernetes)", cfg.CertsDir, quic.CertFile)
	}
	if cfg.Name == "ca" || strings.ContainsAny(cfg.Name, `/\`) {
		return "", noop, fmt.Errorf("-name %q cannot name a node's files in -certs-dir %s: choose another name", cfg.Name, cfg.CertsDir)
	}
	src := []struct{ from, to string }{
		{quic.CAFile, quic.CAFile},
		{cfg.Name + ".crt", quic.CertFile},
		{cfg.Name + ".key", quic.KeyFile},
	}
	data := make([][]byte, len(src))
	for i, s := range src {
		if data[i], err = os.ReadFile(filepath.Join(cfg.CertsDir, s.from)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", noop, fmt.Errorf("-certs-dir %s holds neither %s (one node's credentials) nor %s (node %s's among every node's): make them with `trove cert create-node -name %s` and add them there (docs/kubernetes.md: the Secret)",
					cfg.CertsDir, quic.CertFile, s.from, cfg.Name, cfg.Name)
			}
			return "", noop, fmt.Errorf("-certs-dir: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "troved-certs-")
	if err != nil {
		return "", noop, fmt.Errorf("-certs-dir %s: a private directory for node %s's credentials: %w (set TMPDIR to a writable directory)", cfg.CertsDir, cfg.Name, err)
	}
	done = func() { os.RemoveAll(tmp) }
	for i, s := range src {
		if err := os.WriteFile(filepath.Join(tmp, s.to), data[i], 0o600); err != nil {
			done()
			return "", noop, fmt.Errorf("-certs-dir: copying node %s's credentials: %w", cfg.Name, err)
		}
	}
	return tmp, done, nil
}
