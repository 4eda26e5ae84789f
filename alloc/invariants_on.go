//go:build invariants || race

package alloc

// invariantsEnabled turns on cheap assertions in Alloc and Free. A failed
// assertion panics: it means alloc's own bookkeeping is corrupt, which no caller
// can recover from (compare pebble internal/invariants).
const invariantsEnabled = true
