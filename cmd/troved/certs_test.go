package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// TestNodeCredentials: -certs-dir with one node's credentials is used as it
// is; with every node's (a Kubernetes Secret's layout), -name picks the
// node's pair into a private directory that done removes; anything else is an
// error naming what to make.
func TestNodeCredentials(t *testing.T) {
	root := t.TempDir()
	caDir := filepath.Join(root, "ca")
	if err := cluster.CreateCA(caDir); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(root, "single")
	if err := cluster.CreateNodeCert(caDir, single, "node-a", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	// The Secret's layout: ca.crt, NAME.crt and NAME.key, flat.
	shared := filepath.Join(root, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(single, quic.CAFile), filepath.Join(shared, quic.CAFile))
	for _, n := range []string{"node-a", "node-b"} {
		d := filepath.Join(root, n)
		if err := cluster.CreateNodeCert(caDir, d, n, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(d, quic.CertFile), filepath.Join(shared, n+".crt"))
		copyFile(t, filepath.Join(d, quic.KeyFile), filepath.Join(shared, n+".key"))
	}

	for _, tc := range []struct {
		name, dir, node string
		wantSame        bool   // the directory itself is used
		wantErr         string // "" for success
	}{
		{"one node's layout", single, "", true, ""},
		{"one node's layout, with a name", single, "node-a", true, ""},
		{"every node's layout", shared, "node-b", false, ""},
		{"every node's layout, no name", shared, "", false, "give -name NAME"},
		{"every node's layout, a node not in it", shared, "node-c", false, "node-c.crt (node node-c's among every node's): make them with `trove cert create-node -name node-c`"},
		{"a name that is the CA's file", shared, "ca", false, `-name "ca" cannot name`},
		{"no directory", filepath.Join(root, "missing"), "node-a", false, "holds neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, done, err := nodeCredentials(config{CertsDir: tc.dir, Name: tc.node})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				done()
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (dir == tc.dir) != tc.wantSame {
				t.Fatalf("dir %s for -certs-dir %s: want the same directory: %v", dir, tc.dir, tc.wantSame)
			}
			if !tc.wantSame {
				if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("the private directory %s: %v, mode %v, want 0700", dir, err, fi.Mode().Perm())
				}
				for _, f := range []string{quic.CAFile, quic.CertFile, quic.KeyFile} {
					got, err := os.ReadFile(filepath.Join(dir, f))
					if err != nil {
						t.Fatal(err)
					}
					want, _ := os.ReadFile(filepath.Join(root, tc.node, f))
					if string(got) != string(want) {
						t.Errorf("%s in the private directory is not node %s's", f, tc.node)
					}
				}
			}
			done()
			if !tc.wantSame {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("the private directory %s is still there after done (stat: %v)", dir, err)
				}
			} else if _, err := os.Stat(filepath.Join(dir, quic.KeyFile)); err != nil {
				t.Errorf("done removed the user's own directory's key: %v", err)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
