package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs the demo with shortened waits. The demo checks every result itself
// and returns an error on the first wrong one (a byte got on another node that
// differs, a Wait across owners out of order, a node's store not empty at the
// end); this test also checks that each of the tutorial's steps, and each of the
// cluster's, printed what it should.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"demo", "-quick", "-capacity", "128MiB"}, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"ray.cluster_resources() = {CPU: ",
		"Custom: 2, node:node-1: 1, node:node-2: 1, node:node-3: 1}",
		"result=1",
		"calc_ref = my_function.remote(obj_ref) = Ref(",
		"ray.get(calc_ref) = 158",
		"result=[0 1 2]",
		"`get` timed out.",
		"without a timeout, Get returns when long_running_function does",
		"ready_refs=[Ref(",
		"remaining_refs=[]\n",
		"current value of argument x: 25\n",
		"current value of argument x: [0 1 2 3 4 5 6 7 8 9]\n",
		"current value of argument x: map[obj:Ref(",
		"current value of argument x: [Ref(",
		"node-3: ray.get(ray.get(object_ref_2)[0]) = 1 (the inner object lived while the list did)",
		"val.size() = torch.Size([25 50])",
		"read in place: true",
		"transformed_object_list[:2] = [Ref(",
		"100 tensors (6312500 elements), each the original times an integer in [2, 10]",
		"errors.Is(err, task.ErrTaskFailed) = true",
		"(a write into memory mapped read-only)",
		"the stored array is unchanged (arr[0] = 0)",
		"input_files: 12 Parquet shards of NYC yellow-taxi trips (19 columns, 17098 rows in all)",
		"Predictions dataframe size: 1410 | Total score for tips: ",
		"Predictions dataframe size: 1459 | Total score for tips: ",
		"predictions: Arrow record batches in Arrow IPC form, read in place",
		"crossed the network",
		"back intact (checksums match)",
		"refs dropped: 0 spill files and 0 B left on disk",
		"the nodes run Insecure",
		"node-2  ",
		"pulled 4.0 MiB from node-1 in",
		"node-3: Borrow(id), Get: pulled 4.0 MiB from the holders node-1 names",
		"checksum matches",
		"a second Get reads the copy it now holds",
		`Get of a small object ("hello from node-1"`,
		"then x through the ref inside (owner node-1): [0 1 4 9 16]",
		"wait(num_returns=3): 3 ready_refs in input order (owners node-1, node-2, node-3)",
		"node-1: objects=0 bytes=0 B pinned=0 views=0 arena used=0 B",
		"node-2: objects=0 bytes=0 B pinned=0 views=0 arena used=0 B",
		"node-3: objects=0 bytes=0 B pinned=0 views=0 arena used=0 B",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// Ten calls waited on, all ready.
	if m := regexp.MustCompile(`(?m)^ready_refs=(.*)$`).FindStringSubmatch(out.String()); m == nil || strings.Count(m[1], "Ref(") != 10 {
		t.Errorf("ready_refs does not list 10 refs:\n%s", out.String())
	}
	// The closing members table shows each store's own used bytes (0 B, every
	// ref dropped), not figures gossiped before the stores drained.
	members := regexp.MustCompile(`(?m)^  node-[123] +[0-9a-f]{16} +127\.0\.0\.1:\d+ +alive +128\.0 MiB +0 B +\d+ +CPU `)
	if n := len(members.FindAllString(out.String(), -1)); n < 3 {
		t.Errorf("%d members listed alive with 0 B used and their CPU slots, want 3:\n%s", n, out.String())
	}
	// and each runtime's resources as they are now, every call finished.
	for _, want := range []string{"Custom 2/2, node:node-1 1/1  ", "node:node-2 1/1  ", "node:node-3 1/1  "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("members table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDemoFlags: sizes as every command takes them, the help in the common
// shape, and bad values as usage errors (exit 2).
func TestDemoFlags(t *testing.T) {
	var out bytes.Buffer
	if code := runMain(context.Background(), []string{"demo", "-h"}, eofReader{}, &out, io.Discard); code != exitOK {
		t.Fatalf("demo -h: exit %d", code)
	}
	for _, want := range []string{"usage: trove demo [-capacity SIZE] [-quick]", "flags:", "-capacity SIZE", "(default 256.0 MiB)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo -h lacks %q:\n%s", want, out.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "-capacity", "lots"}, `invalid value "lots" for flag -capacity: byte size "lots": no number`},
		{[]string{"demo", "-capacity", "0"}, "want a positive size"},
		{[]string{"demo", "extra"}, `unexpected argument "extra"`},
		{[]string{"demo", "--json"}, "flag provided but not defined: -json"},
	} {
		var stderr bytes.Buffer
		if code := runMain(context.Background(), tc.args, eofReader{}, io.Discard, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("trove %s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, stderr.String(), exitUsage, tc.want)
		}
	}
}
