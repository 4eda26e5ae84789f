// Package spill owns the bytes of spilled objects on disk and their integrity: it
// writes batches of objects out of memory into fused spill files, reads single
// objects back, verifies them, and deletes files when their objects are freed.
//
// It does not decide anything. Which objects to spill, when, in which batches
// (the engine batches at least Config.MinSpillSize, 100 MiB, unless memory is
// short), when to restore and when to delete are the engine's policy; this
// package does the I/O it is told to do and reports what happened.
//
//	s, err := spill.New(spill.Config{Dirs: []string{"/mnt/a", "/mnt/b"}})
//	err = s.Spill(objs, func(locs []spill.Location, err error) { ... }) // async
//	err = s.Restore(id, loc, dst)                                       // verified
//	err = s.Delete(loc)                                                 // last one removes the file
//
// # Files
//
// One batch is one file, in the next directory of Config.Dirs round robin; if
// that directory is full (ENOSPC, EDQUOT, a short write, or less free space than
// the batch needs), the following directories are tried in turn before the batch
// fails with ErrOutOfDisk. Files are named trove-<pid>-<random>-<n>.spill, so
// several Spillers, in one process or several, may share a directory. Workers (Config.Workers) write batches
// concurrently. A batch is written with one writev(2) per 2 MiB window, straight
// from the objects' memory (the only bytes on the Go heap are the headers), while
// a second goroutine checksums the windows just ahead, so the objects are read
// from memory once and the copy into the page cache comes from the CPU cache.
// The header of an object larger than a window goes out before its checksum is
// known and is rewritten (pwrite) after its data. Each live file holds one open
// descriptor, which Restore's pread(2) calls use; Restore reads and checksums
// one 256 KiB checksum block at a time, for the same reason. An object of 4 MiB
// or more is read in ranges by the caller and the idle workers at once, each
// range's blocks hashed on its own goroutine and the hashes joined in order, so
// that the file still holds one checksum per object. RestoreMany restores many
// objects on the caller and the idle workers at once (the engine's GetAll uses
// it).
//
// Package errorfs wraps an FS to inject faults (failed, short or stalled writes
// and reads, a full disk), for tests of this package and of the engine.
//
// A file is the batch's objects back to back, each a 48-byte header followed by
// its data, with no file header or index. The data of an object of 64 KiB or
// more begins on a multiple of 4096 bytes, its header just before it and zeros
// between the previous object's end and that header (the page cache copies
// ~0.7 as fast to or from file offsets misaligned with memory); smaller objects
// are packed. Each header:
//
//	off len field (integers little endian)
//	  0   4 magic "TRSP"
//	  4   2 format version (2)
//	  6   2 header size in bytes (48)
//	  8  16 object ID
//	 24   8 data length in bytes
//	 32   8 checksum of the data: XXH3-64 of it if it is at most 256 KiB, else
//	        XXH3-64 of the little-endian XXH3-64s of its 256 KiB blocks
//	 40   8 XXH3-64 of header bytes [0, 40)
//
// Format version 1 (40-byte headers with CRC-32C checksums, written by earlier
// builds) is refused with an error that says so, and its files still count as
// trove's for the sweep of leftovers below. XXH3-64 replaced CRC-32C because a
// restore is a copy plus this checksum: measured on the project's 2-vCPU AMD
// EPYC VM, restores ran at ~0.65-0.8 of a raw read with it, ~0.5 with CRC-32C
// (perf.md).
//
// A Location holds the offset of the data, so Restore reads the header just
// before it, checks magic, header checksum, version, size, the object ID and the
// length against the Location, reads the data into the caller's buffer and checks
// its checksum. Any mismatch, or a file that ends early, is ErrCorrupt naming the
// object and the file. Verify makes the same checks of bytes the engine read by
// another route (a mapping of the file).
//
// # Durability
//
// None, by default. Spill files are scratch space: nothing reads them after the
// process ends, and the objects they hold die with the process or the node. So a
// batch is complete once written to the page cache; Config.Sync adds an
// fdatasync, which only serves to push the bytes out of memory at once.
//
// # Leftovers of crashed processes
//
// A crash leaves files behind. New removes them (on OSFS): in each of its
// directories it removes the spill files of Spillers that are gone, and with the
// default directory it also sweeps the trove-spill-* directories under
// os.TempDir(). Leftovers says what came back. A Spiller proves itself alive by
// an exclusive flock(2) it holds on its owner file, trove-<pid>-<random>.lock, in
// each directory, for its whole life; the kernel drops the lock when the process
// dies, so neither PID reuse nor two live daemons sharing a directory can make a
// live Spiller's files look dead. A file is removed only if its name is a spill
// file's and it begins with a valid object header; anything else is left alone
// (leftover.go has the details and the races it closes).
//
// # Invariants
//
//   - A Location handed to done names a complete, checksummed object until it is
//     passed to Delete (or Close is called); it is deleted at most once.
//   - A spill file exists if and only if it holds at least one live object, or its
//     batch is being written, or a Restore is reading it (Delete of an object under
//     a concurrent Restore of it defers the removal to the Restore's end).
//   - No part of a failed batch survives: the partial file is closed and removed
//     before done sees the error, and the objects, still in memory, are untouched.
//   - Restore never returns data it has not verified; on error the contents of
//     its buffer are undefined (it may have been partly overwritten).
//
// # Lifetimes
//
// Object.Data, and the objs slice, are read until the batch's done is called (or
// SpillSync returns) and MUST NOT change or be freed before then. dst passed to
// Restore is written during the call only. done runs on a worker goroutine; it
// must return promptly and must not call Close.
//
// # Locking
//
// Spiller.mu guards the table of files, each file's live-object bits and reader
// counts; it is held for map and bit operations only, never during I/O. The work
// queue has its own mutex. The two are never held together. A Restore in ranges
// waits only for ranges other goroutines have begun, never for a worker to
// start, so restores cannot deadlock on workers busy writing (or stalled).
package spill
