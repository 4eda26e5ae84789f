// Package errorfs is a spill.FS that injects faults, for tests only, in the
// manner of pebble's vfs/errorfs: it wraps another spill.FS (the OS's by
// default) and makes chosen operations fail, come up short, return damaged bytes
// or stall until the test lets them go. Tests of the spiller and of the engine
// use it to show that no fault loses or corrupts an object silently.
//
//	efs := errorfs.New()
//	efs.Inject(errorfs.Fault{Kind: errorfs.WriteErr, Err: syscall.EIO})    // every write fails
//	flip := efs.Inject(errorfs.Fault{Kind: errorfs.FlipByte, Nth: 2})      // the second read returns a flipped byte
//	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallWrite, Nth: 1, Gate: make(chan struct{})})
//	<-stall.Entered()  // the first write has begun; it waits until close(stall.Gate)
//	cfg := spill.Config{FS: efs}                                            // or engine.Config{SpillFS: efs}
//
// # Matching
//
// A fault applies to the files whose path contains Fault.Path ("" for every
// file), and to the operations of its kind: Create for CreateErr, WriteV (and
// WriteAt, for WriteErr) for the write kinds, ReadAt for the read kinds. Every
// matching operation counts towards Fault.Nth; the fault fires on the Nth only,
// or on every one if Nth is 0. Faults are checked in the order they were
// injected, and the first that fires decides what happens to the operation; an
// operation no fault fires on goes to the wrapped FS unchanged.
//
// # Invariants
//
//   - A fault never changes the files on disk behind the caller's back: a
//     damaged or short read damages the caller's buffer only, so the same bytes
//     read again without the fault are intact.
//   - A write fault writes at most what it reports written (NoSpace and
//     ShortWrite write a prefix; WriteErr writes nothing).
//   - Stalls wait on Fault.Gate and nothing else: close the gate, or the
//     operation never returns. A test that stalls MUST close every gate before
//     it closes what uses the FS (a spill.Spiller's Close waits for its writes).
//
// FS and Fault are safe for concurrent use; set a Fault's exported fields before
// Inject and do not change them afterwards.
package errorfs
