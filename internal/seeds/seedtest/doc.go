// Package seedtest is what the tests of the seed documents' programs
// (examples/*) share: run a program with its output captured, and check that
// output for lines and patterns, failing the test with the whole output on
// any miss. It owns no state; the programs themselves check every result and
// that every store ends empty (internal/seeds.Run).
package seedtest
