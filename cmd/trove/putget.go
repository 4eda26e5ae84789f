package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/trovedb/trove"
)

// cmdPut is `trove put FILE`: store the file's bytes (or stdin's, for "-") as
// one object that the daemon keeps after this process exits, and print its ID.
func cmdPut(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
	cmd, df := newDaemonCommand("put", "put FILE|- [-timeout DURATION] [-socket PATH] [--json]",
		"Stores the file's bytes (stdin's for -) as one object, which the daemon keeps after trove\n"+
			"exits, until trove drop; prints the object's ID.")
	timeout := cmd.fs.Duration("timeout", time.Minute, "give up waiting for room in a full store after this `DURATION` (0: wait as long as it takes)")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("put: want one FILE (or - for stdin), got %d arguments (trove put -h)", len(pos))
	}
	if *timeout < 0 {
		return usagef("put: -timeout %v: want 0 (no limit) or more", *timeout)
	}
	name := pos[0]
	in := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("put: %w", err)
		}
		defer f.Close()
		in = f
	}
	// A regular file (stdin redirected from one, too) has a size: its bytes are
	// read straight into the object, in the daemon's shared memory when large.
	size := int64(-1)
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil {
				size = fi.Size() - off
			}
		}
	}
	c, err := dial(ctx, df.socket, "put")
	if err != nil {
		return err
	}
	defer c.Close()
	// -timeout bounds the wait for room (Create, or the inline Put), not the
	// read of a large file into shared memory, nor Keep.
	putCtx, cancel := withTimeout(ctx, *timeout)
	defer cancel()

	var ref trove.Ref
	if size >= 0 {
		// PutFunc is Create + a read into b.Bytes() + Seal for a large object:
		// the file's bytes go from the page cache into shared memory, with no
		// buffer in between. It aborts the object if the read fails.
		ref, err = c.PutFunc(putCtx, int(size), nil, func(dst []byte) error {
			if _, err := io.ReadFull(in, dst); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return fmt.Errorf("%s shrank while being read: %w", name, err)
				}
				return err
			}
			return nil
		})
	} else {
		// A pipe has no size until it ends: read it all first.
		var data []byte
		if data, err = io.ReadAll(in); err != nil {
			return fmt.Errorf("put: reading %s: %w", name, err)
		}
		size = int64(len(data))
		ref, err = c.Put(putCtx, data)
	}
	if err != nil {
		return putError(name, size, df.socket, *timeout, err)
	}
	defer ref.Drop()
	if err := c.Keep(ctx, ref); err != nil {
		return fmt.Errorf("put %s: asking the daemon to keep %s: %w", name, ref.ID(), err)
	}
	if df.json {
		return printJSON(out, putJSON{ID: ref.ID().String(), Size: size})
	}
	fmt.Fprintln(out, ref.ID())
	return nil
}

// parseID parses an object ID argument, saying what one looks like if it is not.
func parseID(cmd, s string) (trove.ObjectID, error) {
	id, err := trove.ParseObjectID(s)
	if err != nil {
		return id, &usageError{fmt.Errorf("%s: %w (an object ID is the 32 hex digits `trove put` printed)", cmd, err)}
	}
	return id, nil
}

// cmdGet is `trove get ID [-o FILE]`: write an object's bytes to stdout or FILE.
func cmdGet(ctx context.Context, args []string, out io.Writer) (err error) {
	cmd, df := newDaemonCommand("get", "get ID [-o FILE] [-timeout DURATION] [-socket PATH] [--json]",
		"Writes the object's bytes, read in place from the daemon's shared memory, to stdout or FILE.")
	outFile := cmd.fs.String("o", "", "write the object to `FILE` instead of stdout")
	timeout := cmd.fs.Duration("timeout", time.Minute, "give up waiting for an object still being written after this `DURATION` (0: no limit)")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("get: want one object ID, got %d arguments (trove get -h)", len(pos))
	}
	if *timeout < 0 {
		return usagef("get: -timeout %v: want 0 (no limit) or more", *timeout)
	}
	id, err := parseID("get", pos[0])
	if err != nil {
		return err
	}
	toStdout := *outFile == "" || *outFile == "-"
	if df.json && toStdout {
		return usagef("get --json prints a summary, so it needs -o FILE for the object's bytes")
	}
	c, err := dial(ctx, df.socket, "get")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := withTimeout(ctx, *timeout)
	defer cancel()
	ref, err := c.Borrow(id)
	if err != nil {
		return getError(id, df.socket, *timeout, err)
	}
	defer ref.Drop()
	obj, err := c.Get(ctx, ref)
	if err != nil {
		return getError(id, df.socket, *timeout, err)
	}
	defer obj.Release()
	data := obj.Bytes()

	if toStdout {
		if _, err := out.Write(data); err != nil {
			return fmt.Errorf("get %s: writing to stdout: %w", id, err)
		}
		return nil
	}
	if err := writeFile(*outFile, data); err != nil {
		return fmt.Errorf("get %s: %w", id, err)
	}
	if df.json {
		return printJSON(out, getJSON{ID: id.String(), Size: int64(len(data)), File: *outFile})
	}
	fmt.Fprintf(out, "%s: %s written to %s\n", id, trove.HumanBytes(int64(len(data))), *outFile)
	return nil
}

// writeFile writes data to path, removing what it wrote if that fails.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// cmdDrop is `trove drop ID`: the daemon stops keeping an object `trove put`
// stored; it is freed once no process holds a ref to it.
func cmdDrop(ctx context.Context, args []string, out io.Writer) error {
	cmd, df := newDaemonCommand("drop", "drop ID [-socket PATH] [--json]",
		"The daemon stops keeping an object trove put stored; it is freed once no process holds a ref.")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("drop: want one object ID, got %d arguments (trove drop -h)", len(pos))
	}
	id, err := parseID("drop", pos[0])
	if err != nil {
		return err
	}
	c, err := dial(ctx, df.socket, "drop")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Unkeep(ctx, id); err != nil {
		if errors.Is(err, trove.ErrUnknownObject) {
			// The daemon's message says the same again: say it once.
			return explain(err, "drop %s: the daemon at %s keeps no such object (dropped already, or not stored by trove put)", id, df.socket)
		}
		return fmt.Errorf("drop %s: %w", id, err)
	}
	if df.json {
		return printJSON(out, dropJSON{ID: id.String(), Dropped: true})
	}
	fmt.Fprintf(out, "dropped %s\n", id)
	return nil
}

// withTimeout bounds ctx by d; 0 means no bound.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// putError explains a failed put once, naming the knob the user has.
func putError(name string, size int64, socket string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, trove.ErrOutOfDisk):
		return fmt.Errorf("put %s: %w (the daemon's spill directories are troved's -spill-dir)", name, err)
	case errors.Is(err, trove.ErrStoreFull):
		return fmt.Errorf("put %s: %w (the capacity is troved's -capacity)", name, err)
	case errors.Is(err, trove.ErrObjectTooLarge):
		return fmt.Errorf("put %s: %w (troved's -capacity sets the largest object)", name, err)
	case errors.Is(err, trove.ErrGetTimeout) && timeout > 0:
		return explain(err, "put %s: no room for %s in the daemon at %s within -timeout %v; drop objects (trove drop), or wait longer with a larger -timeout", name, trove.HumanBytes(size), socket, timeout)
	}
	return fmt.Errorf("put %s: %w", name, err)
}

// getError explains a failed get once: the daemon's own message would repeat
// the ID and the cause.
func getError(id trove.ObjectID, socket string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, trove.ErrUnknownObject), errors.Is(err, trove.ErrObjectFreed):
		return explain(err, "get %s: the daemon at %s has no such object (never put there, or dropped since)", id, socket)
	case errors.Is(err, trove.ErrGetTimeout) && timeout > 0:
		return explain(err, "get %s: the object is still being written: not sealed within -timeout %v; wait longer with a larger -timeout", id, timeout)
	}
	return fmt.Errorf("get %s: %w", id, err)
}
