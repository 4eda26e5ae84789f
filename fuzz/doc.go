// Package fuzz is trove's system-level metamorphic test, in the manner of pebble's
// metamorphic package: a script of random operations on an engine.Store (Put,
// Create with Seal or Abort, Get in four modes, GetAll, Release, Drop, Borrow,
// Wait, forced Spill, and nested values through trove.PutValue and GetValue) is
// generated from a seed or a fuzzer's bytes, run on several goroutines against one
// store, and checked against a model of the store made of plain maps.
//
// A script is text (Script.String, Parse), one op per line:
//
//	config tiny
//	threads 2
//	0: create o1 h2 size=4000 seed=7     # a pending object and its handle
//	1: borrow h3 o1                      # another thread's handle to it
//	1: get h3 block                      # waits for thread 0's seal
//	0: seal o1
//	0: putvalue o4 h5 seed=9 refs=h2,h2  # a value holding a ref
//	check                                # every thread stops; Check and Stats
//	1: drop h3
//
// and a failing run prints its script with the failing op marked, to be replayed
// with `go test ./fuzz -run TestReplay -script FILE` (add -reduce to shrink it to
// the fewest ops that still fail the same way), or kept in testdata/, whose
// scripts every test run replays.
//
//	go test ./fuzz                                  # CI: a few seeds per configuration
//	go test ./fuzz -run TestMetamorphic -seeds 300 -seed 1000 -config tiny
//	go test ./fuzz -run '^$' -fuzz FuzzMetamorphic  # scripts from the fuzzer's bytes
//
// # What the model decides
//
// Objects, handles and views are named in the script (o1, h2, v3). The model
// applies the ops in script order and works out what each must return: an
// object's bytes (every byte of every view is compared), a decoded value and
// handles to its refs, which refs Wait returns ready, the error class (a dropped
// handle, an aborted object, a Get or Wait of a pending object timing out, a
// second Seal, a Borrow of a freed object, GetValue of raw bytes), and, at each
// check, the store's object, byte, pin and view counts. The runner also checks
// Store.Check after every op when one thread runs (at every check otherwise), and
// at the end, after dropping what the script left, that the store is empty: no
// objects, bytes, pins, spilled objects or spill files.
//
// # Determinism with several goroutines
//
// Each thread runs its own ops in order. An op also waits for the earlier ops of
// other threads that touched the same objects (including those a Drop or Release
// frees in cascade), so each object sees its ops in script order and every
// outcome the model predicts is the only possible one, however the goroutines are
// scheduled; what stays concurrent is everything else the store does at the same
// time: other objects' creation, the creators' reclaims, spills and restores. The
// exception is a blocking Get ("get hN block"), which waits for another thread's
// Seal or Abort of a pending object: that Seal or Abort does not wait for it (the
// ops after them on the object do), its thread runs nothing until the object is
// finished, and no check comes in between.
//
// The generator keeps what cannot be spilled (held views, open builders) to a
// small part of the arena, so a creator never needs another thread's Release to
// find room. Where the store's own choices are not the script's (which objects a
// creator's reclaim spills), the model checks bounds instead: Spill's count is at
// most the objects it could spill.
//
// Spill ops run beside reclaims and the background spiller too: this test found
// a data race there (Store.Spill read an object's arena offset before taking
// the spiller's hold on it), since fixed; SpillDuringReclaim can turn them off.
//
// # Configurations
//
// Configs: "tiny" (a 3 MiB arena that a script's puts overflow about twice, so
// creators spill all the time and Gets restore or map the spill file), "large"
// (room for all, objects past the slab classes, spilling only when asked, so
// Spill's count and the spilled-object count are exact), and "background" (the
// tiny arena with the background spiller running from half full; Store.Check
// runs only at the end there, as the spiller writes object records without the
// table's locks and Check reads them).
package fuzz
