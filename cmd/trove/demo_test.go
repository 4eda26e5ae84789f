package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo runs the demo with shortened waits. The demo checks every result itself
// and returns an error on the first wrong one; this test also checks that each of
// the tutorial's steps printed what it should.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"demo", "-quick", "-capacity", "128000000"}, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"result=1",
		"result=[0 1 2]",
		"`get` timed out.",
		"Get waits for the value: 42",
		"wait(num_returns=len(object_refs)): 10 ready_refs",
		"containers dropped: x is freed too (objects in store: 0)",
		"zero-copy view of the stored bytes: true",
		"mapped read-only",
		"the object is unchanged: true",
		"back intact (checksums match)",
		"refs dropped: 0 spill files and 0 B left on disk",
		"objects=0 bytes=0 B pinned=0 views=0 arena used=0 B",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, &out); err == nil || !strings.Contains(out.String(), "usage") {
		t.Fatalf("unknown command: err %v, output %q", err, out.String())
	}
}
