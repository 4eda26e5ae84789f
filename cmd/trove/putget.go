package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/trovedb/trove"
)

// cmdPut is `trove put FILE`: store the file's bytes (or stdin's, for "-") as
// one object that the daemon keeps after this process exits, and print its ID.
func cmdPut(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
	fs, df := newDaemonFlagSet("put", "put FILE|- [-socket PATH] [--json]", out)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("put: want one FILE (or - for stdin), got %d arguments", len(pos))
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

	var ref trove.Ref
	if size >= 0 {
		// PutFunc is Create + a read into b.Bytes() + Seal for a large object:
		// the file's bytes go from the page cache into shared memory, with no
		// buffer in between. It aborts the object if the read fails.
		ref, err = c.PutFunc(ctx, int(size), nil, func(dst []byte) error {
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
		ref, err = c.Put(ctx, data)
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	defer ref.Drop()
	if err := c.Keep(ctx, ref); err != nil {
		return fmt.Errorf("put %s: asking the daemon to keep %s: %w", name, ref.ID(), err)
	}
	if df.json {
		return printJSON(out, struct {
			ID   string `json:"id"`
			Size int64  `json:"size"`
		}{ref.ID().String(), size})
	}
	fmt.Fprintln(out, ref.ID())
	return nil
}

// parseID parses an object ID argument, saying what one looks like if it is not.
func parseID(cmd, s string) (trove.ObjectID, error) {
	id, err := trove.ParseObjectID(s)
	if err != nil {
		return id, fmt.Errorf("%s: %w (an object ID is the 32 hex digits `trove put` printed)", cmd, err)
	}
	return id, nil
}

// cmdGet is `trove get ID [-o FILE]`: write an object's bytes to stdout or FILE.
func cmdGet(ctx context.Context, args []string, out io.Writer) (err error) {
	fs, df := newDaemonFlagSet("get", "get ID [-o FILE] [-socket PATH] [--json]", out)
	outFile := fs.String("o", "", "write the object to FILE instead of stdout")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("get: want one object ID, got %d arguments", len(pos))
	}
	id, err := parseID("get", pos[0])
	if err != nil {
		return err
	}
	toStdout := *outFile == "" || *outFile == "-"
	if df.json && toStdout {
		return errors.New("get --json prints a summary, so it needs -o FILE for the object's bytes")
	}
	c, err := dial(ctx, df.socket, "get")
	if err != nil {
		return err
	}
	defer c.Close()
	ref, err := c.Borrow(id)
	if err != nil {
		if errors.Is(err, trove.ErrUnknownObject) || errors.Is(err, trove.ErrObjectFreed) {
			return fmt.Errorf("get %s: the daemon at %s has no such object (never put there, or dropped since): %w", id, df.socket, err)
		}
		return fmt.Errorf("get %s: %w", id, err)
	}
	defer ref.Drop()
	obj, err := c.Get(ctx, ref)
	if err != nil {
		return fmt.Errorf("get %s: %w", id, err)
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
		return printJSON(out, struct {
			ID   string `json:"id"`
			Size int    `json:"size"`
			File string `json:"file"`
		}{id.String(), len(data), *outFile})
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
	fs, df := newDaemonFlagSet("drop", "drop ID [-socket PATH] [--json]", out)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("drop: want one object ID, got %d arguments", len(pos))
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
			return fmt.Errorf("drop %s: the daemon keeps no such object (dropped already, or not stored by trove put): %w", id, err)
		}
		return fmt.Errorf("drop %s: %w", id, err)
	}
	if df.json {
		return printJSON(out, struct {
			ID      string `json:"id"`
			Dropped bool   `json:"dropped"`
		}{id.String(), true})
	}
	fmt.Fprintf(out, "dropped %s\n", id)
	return nil
}
