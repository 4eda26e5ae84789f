package spill_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/spill"
)

// The leftover tests run Spillers in child processes (this test binary again,
// running TestLeftoverChild), kill some of them with SIGKILL, as a crash would,
// and check what a new Spiller removes.

const childEnv = "TROVE_SPILL_TEST_CHILD" // the child's spill directory; "-" for the default

// TestLeftoverChild is the child: it spills two batches, prints "ready <token>
// <bytes on disk>", then waits for a line on stdin; "restore" makes it restore
// and check every object, print "ok" (or what failed) and close.
func TestLeftoverChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("run by the leftover tests")
	}
	var cfg spill.Config
	if dir != "-" {
		cfg.Dirs = []string{dir}
	}
	s, err := spill.New(cfg)
	if err != nil {
		fmt.Println("fail:", err)
		os.Exit(1)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	// The first file begins with a packed object's header, the second with the
	// padding before an aligned one's (its header at DataAlign-HeaderSize).
	objs := makeObjects(rng, 1000, 70000, 3<<20, 0)
	for _, batch := range [][]*testObject{objs[:2], objs[2:]} {
		locs, err := s.SpillSync(context.Background(), batchOf(batch))
		if err != nil {
			fmt.Println("fail:", err)
			os.Exit(1)
		}
		for i, l := range locs {
			batch[i].loc = l
		}
	}
	fmt.Println("ready", s.Token(), s.Stats().BytesOnDisk)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) == "restore" {
		for _, o := range objs {
			dst := make([]byte, len(o.data))
			if err := s.Restore(o.id, o.loc, dst); err != nil || checksum(dst) != o.sum {
				fmt.Println("fail: restore", o.id, err)
				os.Exit(1)
			}
		}
		fmt.Println("ok")
	}
	if err := s.Close(); err != nil {
		fmt.Println("fail: close:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child is a Spiller in another process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	token string
	bytes int64
}

// startChild starts a child spilling to dir ("-": its default directory) and
// waits until it has spilled.
func startChild(t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeftoverChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		c.stdin.Close()
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	line := c.line(t)
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" {
		t.Fatalf("child: %q, want ready <token> <bytes>", line)
	}
	c.token = f[1]
	if c.bytes, err = strconv.ParseInt(f[2], 10, 64); err != nil || c.bytes == 0 {
		t.Fatalf("child: %q: bytes on disk %v", line, err)
	}
	return c
}

// line returns the child's next line of output; a child that prints nothing
// within a generous bound fails the test.
func (c *child) line(t *testing.T) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		if c.out.Scan() {
			ch <- c.out.Text()
		}
		close(ch)
	}()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatalf("child exited: %v", c.cmd.Wait())
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("child printed nothing in 30s")
	}
	return ""
}

// crash kills the child with SIGKILL: its Spiller never closes.
func (c *child) crash(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}

// restoreAndClose has the child read back every object it spilled and close.
func (c *child) restoreAndClose(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "restore\n"); err != nil {
		t.Fatal(err)
	}
	if l := c.line(t); l != "ok" {
		t.Fatalf("live child after the sweep: %q", l)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("live child: %v", err)
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// filesOf lists the files in dir whose names begin with prefix.
func filesOf(t *testing.T, dir, prefix string) []string {
	t.Helper()
	var names []string
	for _, n := range dirFiles(t, dir) {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLeftovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}

	t.Run("shared directory", func(t *testing.T) {
		dir := t.TempDir()
		dead, live := startChild(t, dir), startChild(t, dir)
		dead.crash(t)
		deadFiles := filesOf(t, dir, dead.token)
		if len(deadFiles) != 3 { // two spill files and the owner file
			t.Fatalf("the crashed child left %q, want 2 spill files and its owner file", deadFiles)
		}
		liveFiles := filesOf(t, dir, live.token)

		// Files the sweep must leave: not trove's, or not provably.
		foreign := map[string][]byte{
			"notes.txt": []byte("someone else's"),
			// Named like a spill file of a dead process, but no header proves it.
			fmt.Sprintf("trove-%d-0badc0de-1.spill", dead.pid()): []byte("not a spill file, but long enough to hold a header......"),
			fmt.Sprintf("trove-%d-0badc0de-2.spill", dead.pid()): nil, // cut off before its first header
			// An owner file trove did not write: its token's files stay too.
			fmt.Sprintf("trove-%d-f00df00d.lock", dead.pid()): []byte("mine"),
		}
		for name, data := range foreign {
			writeFile(t, filepath.Join(dir, name), data)
		}
		hdr, err := os.ReadFile(filepath.Join(dir, slices.DeleteFunc(deadFiles, func(n string) bool { return strings.HasSuffix(n, ".lock") })[0]))
		if err != nil {
			t.Fatal(err)
		}
		// A valid spill file under a foreign owner file.
		foreign[fmt.Sprintf("trove-%d-f00df00d-1.spill", dead.pid())] = hdr
		// A file of an owner without an owner file (an older trove) whose PID
		// lives (this process): it may be alive, so it stays.
		foreign[fmt.Sprintf("trove-%d-00000001-1.spill", os.Getpid())] = hdr
		for name, data := range foreign {
			writeFile(t, filepath.Join(dir, name), data)
		}
		// A file of format version 1 (an older trove's, 40-byte headers with
		// CRC-32C) whose header is damaged: not provably trove's.
		badV1 := v1SpillFile(spill.ID{1}, 100)
		badV1[10] ^= 1
		foreign[fmt.Sprintf("trove-%d-00000003-1.spill", dead.pid())] = badV1
		for name, data := range foreign {
			writeFile(t, filepath.Join(dir, name), data)
		}
		// The same without an owner file, and its PID dead: removed, of either
		// format version.
		legacy := fmt.Sprintf("trove-%d-00000002-1.spill", dead.pid())
		writeFile(t, filepath.Join(dir, legacy), hdr)
		legacyV1 := fmt.Sprintf("trove-%d-00000004-1.spill", dead.pid())
		v1 := v1SpillFile(spill.ID{2}, 100)
		writeFile(t, filepath.Join(dir, legacyV1), v1)

		s := newSpiller(t, spill.Config{Dirs: []string{dir}})
		left := s.Leftovers()
		if want := (spill.Leftovers{Files: 4, Bytes: dead.bytes + int64(len(hdr)+len(v1)), Kept: 3}); left != want {
			t.Errorf("Leftovers %+v, want %+v", left, want)
		}
		if got := filesOf(t, dir, dead.token); len(got) > 0 {
			t.Errorf("the crashed child's files survived the sweep: %q", got)
		}
		if got := filesOf(t, dir, live.token); !slices.Equal(got, liveFiles) {
			t.Errorf("the live child's files are now %q, were %q", got, liveFiles)
		}
		for name := range foreign {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("the sweep removed %s, which it cannot prove trove's or dead: %v", name, err)
			}
		}
		for _, name := range []string{legacy, legacyV1} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				t.Errorf("%s (a dead PID, no owner file, a valid header) survived", name)
			}
		}
		live.restoreAndClose(t)
		if got := filesOf(t, dir, live.token); len(got) > 0 {
			t.Errorf("after the live child closed: %q", got)
		}
		for name := range foreign {
			os.Remove(filepath.Join(dir, name)) // for newSpiller's check after Close
		}
	})

	t.Run("reused pid", func(t *testing.T) {
		// A crashed owner whose PID now names a live process (this one): the
		// free owner lock, not the PID, says it is gone.
		dir := t.TempDir()
		dead := startChild(t, dir)
		dead.crash(t)
		reused := strings.Replace(dead.token, fmt.Sprintf("-%d-", dead.pid()), fmt.Sprintf("-%d-", os.Getpid()), 1)
		for _, n := range filesOf(t, dir, dead.token) {
			if err := os.Rename(filepath.Join(dir, n), filepath.Join(dir, reused+strings.TrimPrefix(n, dead.token))); err != nil {
				t.Fatal(err)
			}
		}
		s := newSpiller(t, spill.Config{Dirs: []string{dir}})
		if left := s.Leftovers(); left.Files != 2 || left.Bytes != dead.bytes || left.Err != nil {
			t.Errorf("Leftovers %+v, want 2 files of %d bytes", left, dead.bytes)
		}
		if got := filesOf(t, dir, reused); len(got) > 0 {
			t.Errorf("left: %q", got)
		}
	})

	t.Run("default directories", func(t *testing.T) {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp) // the children inherit it
		dead, live := startChild(t, "-"), startChild(t, "-")
		dead.crash(t)
		deadDir := fmt.Sprintf("trove-spill-%d-", dead.pid())
		empty := deadDir + "0000beef" // a dead process's, crashed before it spilled
		if err := os.Mkdir(filepath.Join(tmp, empty), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(tmp, "trove-spill-mine"), 0o700); err != nil { // not a name trove gives
			t.Fatal(err)
		}
		s := newSpiller(t, spill.Config{})
		if left := s.Leftovers(); left.Files != 2 || left.Bytes != dead.bytes || left.Dirs != 2 || left.Err != nil {
			t.Errorf("Leftovers %+v, want 2 files of %d bytes and 2 directories", left, dead.bytes)
		}
		var dirs []string
		for _, n := range dirFiles(t, tmp) {
			dirs = append(dirs, n)
		}
		want := []string{filepath.Base(s.Config().Dirs[0]), "trove-spill-mine", fmt.Sprintf("trove-spill-%d-", live.pid())}
		if len(dirs) != 3 || !slices.Contains(dirs, want[0]) || !slices.Contains(dirs, want[1]) ||
			!slices.ContainsFunc(dirs, func(d string) bool { return strings.HasPrefix(d, want[2]) }) {
			t.Errorf("%s holds %q after the sweep, want this Spiller's, trove-spill-mine and %s*", tmp, dirs, want[2])
		}
		live.restoreAndClose(t)
	})
}

// TestLeftoversLiveInProcess: two Spillers of one process sharing a directory
// never sweep each other's files.
func TestLeftoversLiveInProcess(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	dir := t.TempDir()
	a := newSpiller(t, spill.Config{Dirs: []string{dir}})
	objs := makeObjects(rng, 5000, 100)
	spillSync(t, a, objs)
	b, err := spill.New(spill.Config{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if left := b.Leftovers(); left != (spill.Leftovers{}) {
		t.Errorf("the second Spiller swept %+v of the first's", left)
	}
	for _, o := range objs {
		checkRestore(t, a, o)
	}
	spillSync(t, b, makeObjects(rng, 10))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs { // b's Close removed only b's files
		checkRestore(t, a, o)
	}
}

// v1SpillFile returns a spill file of format version 1, as trove wrote before
// version 2: one object of n bytes (zeros) after a 40-byte header of magic
// "TRSP", version 1, header size 40, the ID, the length, the CRC-32C of the data
// and the CRC-32C of the header's first 36 bytes.
func v1SpillFile(id spill.ID, n int) []byte {
	b := make([]byte, 40+n)
	copy(b, "TRSP")
	binary.LittleEndian.PutUint16(b[4:], 1)
	binary.LittleEndian.PutUint16(b[6:], 40)
	copy(b[8:], id[:])
	binary.LittleEndian.PutUint64(b[24:], uint64(n))
	binary.LittleEndian.PutUint32(b[32:], checksum(b[40:]))
	binary.LittleEndian.PutUint32(b[36:], checksum(b[:36]))
	return b
}
