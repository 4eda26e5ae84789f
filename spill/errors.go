package spill

import (
	"errors"
	"fmt"
	"strings"

	"github.com/trovedb/trove"
)

// The errors this package returns, grouped by when they happen. Returned errors
// wrap these with the object, the file and the figures involved; test for them
// with errors.Is.

// Errors from spilling.
var (
	// ErrOutOfDisk: no spill directory had room for a batch. The wrapping
	// *OutOfDiskError says how many bytes the batch needed and what each directory
	// had. Nothing is lost: the objects are still in memory and no part of the
	// batch remains on disk. Free space in a spill directory, add a directory
	// (Config.Dirs; the engine's users have troved -spill-dir and
	// engine.Config.SpillDirs), or spill a smaller batch.
	ErrOutOfDisk = errors.New("spill: out of disk space")

	// ErrInvalidBatch: Spill was given no objects or no done callback.
	ErrInvalidBatch = errors.New("spill: invalid batch")
)

// Errors from restoring.
var (
	// ErrCorrupt: a spilled object failed verification when read back — a bad
	// header, another object's header, a checksum mismatch, or a file shorter than
	// the object (truncated). The wrapping *CorruptError names the object and the
	// file. The spilled copy is lost; the destination buffer holds garbage.
	ErrCorrupt = errors.New("spill: spilled object is corrupt")
)

// Errors from using a Location.
var (
	// ErrUnknownLocation: the Location names no live spilled object: it was
	// deleted already, never handed out by this Spiller, or its file failed.
	// Pass a Location from a successful Spill, and Delete it once.
	ErrUnknownLocation = errors.New("spill: location names no live spilled object")
)

// Errors from the Spiller itself.
var (
	// ErrClosed: the Spiller has been closed, or was closed while a batch was
	// queued or being written. Every spill file is gone; open a new Spiller.
	ErrClosed = errors.New("spill: spiller is closed")
)

// CorruptError explains an ErrCorrupt.
type CorruptError struct {
	ID     ID     // the object being restored
	Path   string // the spill file
	Offset int64  // the file offset of the object's data
	Reason string // what failed: "data checksum mismatch: ...", "truncated: ..."
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spill: object %s in %s (data at offset %d) is corrupt: %s; the spilled copy is lost",
		e.ID, e.Path, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// OutOfDiskError explains an ErrOutOfDisk: the batch, and every directory tried.
type OutOfDiskError struct {
	Objects int          // objects in the batch
	Needed  int64        // bytes the batch needs on disk, headers included
	Tried   []DirAttempt // one per spill directory, in the order tried
	Setting string       // the setting that chooses spill directories (Config.DirsSetting)
}

// DirAttempt is what one directory did with a batch that did not fit.
type DirAttempt struct {
	Dir       string
	Available int64 // free bytes the file system reported before the attempt; -1 if unknown
	Written   int64 // bytes written before the disk filled (the partial file was removed)
	Err       error // ENOSPC, EDQUOT or io.ErrShortWrite; nil if skipped since Available < Needed
}

func (e *OutOfDiskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "spill: out of disk space: a batch of %d objects needs %s", e.Objects, trove.HumanBytes(e.Needed))
	for i, a := range e.Tried {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep)
		b.WriteString(a.Dir)
		switch {
		case a.Err == nil:
			fmt.Fprintf(&b, " has only %s free", trove.HumanBytes(a.Available))
		default:
			fmt.Fprintf(&b, " filled up after %s (%v)", trove.HumanBytes(a.Written), a.Err)
		}
	}
	setting := e.Setting
	if setting == "" {
		setting = "spill.Config.Dirs"
	}
	fmt.Fprintf(&b, "; free space in a spill directory, or add one (%s)", setting)
	return b.String()
}

// Unwrap makes errors.Is match ErrOutOfDisk and each directory's OS error
// (syscall.ENOSPC, for one).
func (e *OutOfDiskError) Unwrap() []error {
	errs := []error{ErrOutOfDisk}
	for _, a := range e.Tried {
		if a.Err != nil {
			errs = append(errs, a.Err)
		}
	}
	return errs
}
