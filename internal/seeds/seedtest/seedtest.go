package seedtest

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
)

// Output runs a document's program (its run function) and returns what it
// printed; it stops the test if the program fails.
func Output(t *testing.T, run func(context.Context, io.Writer) error) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return out.String()
}

// Contains fails t for each of wants that s does not contain.
func Contains(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// Matches fails t for each regular expression of res that s does not match.
func Matches(t *testing.T, s string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(s) {
			t.Errorf("output does not match %s:\n%s", re, s)
		}
	}
}
