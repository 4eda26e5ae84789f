//go:build !invariants && !race

package engine

const invariantsEnabled = false
