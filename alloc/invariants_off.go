//go:build !invariants && !race

package alloc

const invariantsEnabled = false
