package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// certJSON is `trove cert create-ca --json` and `create-node --json`.
type certJSON struct {
	Dir   string   `json:"dir"`
	Files []string `json:"files"`
	Name  string   `json:"name,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
}

// hostsFlag collects repeated -host values (a comma list is split too).
type hostsFlag []string

func (h *hostsFlag) String() string { return strings.Join(*h, ",") }
func (h *hostsFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*h = append(*h, p)
		}
	}
	return nil
}

// cmdCert makes a cluster's credentials: its CA (create-ca) and a node's
// certificate signed by it (create-node). It needs no daemon.
func cmdCert(_ context.Context, args []string, out io.Writer) error {
	const sub = "want create-ca or create-node (trove cert create-ca -h)"
	if len(args) == 0 {
		return usagef("cert: no subcommand given: %s", sub)
	}
	switch args[0] {
	case "create-ca":
		return cmdCertCA(args[1:], out)
	case "create-node":
		return cmdCertNode(args[1:], out)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(out, "usage: trove cert create-ca -dir DIR\n       trove cert create-node -ca-dir DIR -dir DIR -name NAME -host HOST...\n\n"+
			"Makes a cluster's credentials: its certificate authority, and each node's certificate\nsigned by it (troved -certs-dir DIR).\n")
		return nil
	}
	return usagef("cert: unknown subcommand %q: %s", args[0], sub)
}

func cmdCertCA(args []string, out io.Writer) error {
	cmd := newCommand("cert create-ca", "cert create-ca -dir DIR [--json]",
		"Creates a cluster's certificate authority in DIR: ca.crt (give it to every node) and\n"+
			"ca.key (keep it there; it signs node certificates and never goes to a node). Existing\nfiles are never overwritten.")
	dir := cmd.fs.String("dir", "", "the `DIR` to write ca.crt and ca.key to (made if missing)")
	asJSON := cmd.fs.Bool("json", false, "print JSON instead of text, errors included (schemas in docs/cli.md)")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("cert create-ca: unexpected argument %q (trove cert create-ca -h)", pos[0])
	}
	if *dir == "" {
		return usagef("cert create-ca: -dir DIR is required (trove cert create-ca -h)")
	}
	if err := cluster.CreateCA(*dir); err != nil {
		return fmt.Errorf("cert create-ca: %w", err)
	}
	files := []string{filepath.Join(*dir, quic.CAFile), filepath.Join(*dir, cluster.CAKeyFile)}
	if *asJSON {
		return printJSON(out, certJSON{Dir: *dir, Files: files})
	}
	fmt.Fprintf(out, "created the cluster CA in %s: %s, %s (keep %s there)\n", *dir, quic.CAFile, cluster.CAKeyFile, cluster.CAKeyFile)
	return nil
}

func cmdCertNode(args []string, out io.Writer) error {
	cmd := newCommand("cert create-node", "cert create-node -ca-dir DIR -dir DIR -name NAME -host HOST... [--json]",
		"Creates a node's credentials in -dir, signed by the CA in -ca-dir: ca.crt, node.crt and\n"+
			"node.key, what troved -certs-dir reads. NAME is the node's name in the cluster; each\n"+
			"-host (an IP or a DNS name) is an address peers reach it at. Existing files are never\noverwritten.")
	caDir := cmd.fs.String("ca-dir", "", "the CA's `DIR` (trove cert create-ca)")
	dir := cmd.fs.String("dir", "", "the node's credentials `DIR` (made if missing; not the CA's)")
	name := cmd.fs.String("name", "", "the node's `NAME` in the cluster, unique in it")
	var hosts hostsFlag
	cmd.fs.Var(&hosts, "host", "an IP or DNS name (`HOST`) the node is reached at; repeat, or a comma list")
	asJSON := cmd.fs.Bool("json", false, "print JSON instead of text, errors included (schemas in docs/cli.md)")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("cert create-node: unexpected argument %q (trove cert create-node -h)", pos[0])
	}
	for _, req := range []struct{ flag, val string }{{"-ca-dir DIR", *caDir}, {"-dir DIR", *dir}, {"-name NAME", *name}} {
		if req.val == "" {
			return usagef("cert create-node: %s is required (trove cert create-node -h)", req.flag)
		}
	}
	if len(hosts) == 0 {
		return usagef("cert create-node: give at least one -host HOST, an address peers reach the node at (127.0.0.1 on one machine)")
	}
	if err := cluster.CreateNodeCert(*caDir, *dir, *name, hosts...); err != nil {
		return fmt.Errorf("cert create-node: %w", err)
	}
	files := []string{filepath.Join(*dir, quic.CAFile), filepath.Join(*dir, quic.CertFile), filepath.Join(*dir, quic.KeyFile)}
	if *asJSON {
		return printJSON(out, certJSON{Dir: *dir, Files: files, Name: *name, Hosts: hosts})
	}
	fmt.Fprintf(out, "created node %s's credentials in %s (hosts %s): run troved -certs-dir %s\n", *name, *dir, strings.Join(hosts, ", "), *dir)
	return nil
}
