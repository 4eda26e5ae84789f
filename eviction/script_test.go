package eviction

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs testdata/*.txt in pebble's datadriven style. Each file
// starts with an empty LRU[string] that lives until the file ends (or until a
// reset). A block is any number of command lines, one operation each, then
// "----" and the expected output: the output lines of its commands in order.
// After every command the invariants are checked.
//
// Commands:
//
//	add <key> <size>        silent; "add <key>: false" if present
//	touch|pin|unpin|remove <key>
//	                        silent; "<cmd> <key>: false" if the call returns false
//	victim                  "<key> <size>", or "none"
//	victims <need> [<max>]  the keys, LRU first, or "none"
//	contains|pinned <key>   "true" or "false"
//	order                   Each: "unpinned: k(size) ..." (LRU first), then
//	                        "pinned: k(size)x<pins> ..." sorted by key
//	stats                   "len=.. bytes=.. pinned=<len>/<bytes> evictable=.."
//	reset                   start again from an empty LRU; silent
//
// After a change of behaviour, regenerate the expected outputs with
//
//	go test ./eviction/ -run TestScripts -rewrite
//
// and read the diff.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		l := New[string]()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var out strings.Builder
			lines := []string{d.FullCmd()}
			if d.Input != "" {
				lines = append(lines, strings.Split(d.Input, "\n")...)
			}
			for i, line := range lines {
				fields := strings.Fields(line)
				if len(fields) == 0 {
					continue
				}
				if fields[0] == "reset" {
					l = New[string]()
					continue
				}
				if err := runCommand(l, fields, &out); err != nil {
					t.Fatalf("%s (line %d of the block): %q: %v", d.Pos, i+1, line, err)
				}
				if err := check(l); err != nil {
					t.Fatalf("%s (line %d of the block): after %q: invariant broken: %v", d.Pos, i+1, line, err)
				}
			}
			return out.String()
		})
	})
}

// runCommand applies one script command to l and writes its output to out.
func runCommand(l *LRU[string], f []string, out *strings.Builder) error {
	args := func(n int) error {
		if len(f)-1 != n {
			return fmt.Errorf("%s takes %d arguments, got %d", f[0], n, len(f)-1)
		}
		return nil
	}
	result := func(ok bool) {
		if !ok {
			fmt.Fprintf(out, "%s: false\n", strings.Join(f, " "))
		}
	}
	switch f[0] {
	case "add":
		if err := args(2); err != nil {
			return err
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return err
		}
		if !l.Add(f[1], size) {
			fmt.Fprintf(out, "add %s: false\n", f[1])
		}
	case "touch", "pin", "unpin", "remove":
		if err := args(1); err != nil {
			return err
		}
		op := map[string]func(string) bool{"touch": l.Touch, "pin": l.Pin, "unpin": l.Unpin, "remove": l.Remove}[f[0]]
		result(op(f[1]))
	case "contains", "pinned":
		if err := args(1); err != nil {
			return err
		}
		op := map[string]func(string) bool{"contains": l.Contains, "pinned": l.Pinned}[f[0]]
		fmt.Fprintln(out, op(f[1]))
	case "victim":
		if err := args(0); err != nil {
			return err
		}
		if k, size, ok := l.Victim(); ok {
			fmt.Fprintf(out, "%s %d\n", k, size)
		} else {
			fmt.Fprintln(out, "none")
		}
	case "victims":
		if len(f) != 2 && len(f) != 3 {
			return fmt.Errorf("victims takes <need> [<max>]")
		}
		need, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return err
		}
		max := 0
		if len(f) == 3 {
			if max, err = strconv.Atoi(f[2]); err != nil {
				return err
			}
		}
		if v := l.Victims(need, max); len(v) > 0 {
			fmt.Fprintln(out, strings.Join(v, " "))
		} else {
			fmt.Fprintln(out, "none")
		}
	case "order":
		if err := args(0); err != nil {
			return err
		}
		var unpinned, pinned []string
		l.Each(func(k string, size int64, pins int) bool {
			if pins == 0 {
				unpinned = append(unpinned, fmt.Sprintf("%s(%d)", k, size))
			} else {
				pinned = append(pinned, fmt.Sprintf("%s(%d)x%d", k, size, pins))
			}
			return true
		})
		slices.Sort(pinned) // Each gives pinned entries in map order
		fmt.Fprintf(out, "unpinned: %s\npinned: %s\n", strings.Join(unpinned, " "), strings.Join(pinned, " "))
	case "stats":
		if err := args(0); err != nil {
			return err
		}
		fmt.Fprintf(out, "len=%d bytes=%d pinned=%d/%d evictable=%d\n",
			l.Len(), l.Bytes(), l.PinnedLen(), l.PinnedBytes(), l.EvictableBytes())
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}
