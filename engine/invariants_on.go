//go:build invariants || race

package engine

// invariantsEnabled turns on expensive assertions and poisoning of freed memory.
const invariantsEnabled = true
