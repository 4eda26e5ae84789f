package spill

import (
	"sync/atomic"
	"time"
)

// Stats are the Spiller's counters. Each is read atomically, the set is not: a
// snapshot taken while batches run may be off by one batch between fields.
type Stats struct {
	FilesLive   int64 // spill files on disk holding a live object
	BytesOnDisk int64 // their size, headers included; a file's bytes are freed only with its last object
	ObjectsLive int64 // spilled objects not yet deleted
	BytesLive   int64 // their data bytes

	Spills         int64         // batches written
	SpilledObjects int64         // objects in those batches
	SpilledBytes   int64         // data bytes in those batches, headers excluded
	SpillTime      time.Duration // time spent writing them, queueing excluded

	Restores      int64         // objects restored and verified
	RestoredBytes int64         // their data bytes
	RestoreTime   time.Duration // time spent reading and verifying them

	FilesDeleted int64 // spill files removed: emptied by Delete, or by Close
	Errors       int64 // failed batches (abandoned ones excluded), restores and removals
	OutOfDisk    int64 // batches that failed with ErrOutOfDisk (also in Errors)
}

// counters back Stats. Each is updated once per batch, restore or file, not per
// byte, so they share cache lines without measurable contention.
type counters struct {
	filesLive, bytesOnDisk, objectsLive, bytesLive   atomic.Int64
	spills, spilledObjects, spilledBytes, spillNanos atomic.Int64
	restores, restoredBytes, restoreNanos            atomic.Int64
	filesDeleted, errors, outOfDisk                  atomic.Int64
}

// Stats returns the current counters.
func (s *Spiller) Stats() Stats {
	c := &s.st
	return Stats{
		FilesLive:      c.filesLive.Load(),
		BytesOnDisk:    c.bytesOnDisk.Load(),
		ObjectsLive:    c.objectsLive.Load(),
		BytesLive:      c.bytesLive.Load(),
		Spills:         c.spills.Load(),
		SpilledObjects: c.spilledObjects.Load(),
		SpilledBytes:   c.spilledBytes.Load(),
		SpillTime:      time.Duration(c.spillNanos.Load()),
		Restores:       c.restores.Load(),
		RestoredBytes:  c.restoredBytes.Load(),
		RestoreTime:    time.Duration(c.restoreNanos.Load()),
		FilesDeleted:   c.filesDeleted.Load(),
		Errors:         c.errors.Load(),
		OutOfDisk:      c.outOfDisk.Load(),
	}
}
