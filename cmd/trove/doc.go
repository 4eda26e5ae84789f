// Command trove is trove's command-line tool.
//
//	trove demo    walk through Ray's remote-objects tutorial on an embedded store
//
// The demo needs no daemon and no flags: it opens an in-process store (package
// engine), runs each step of the tutorial against it, prints what happens, and
// checks every result, exiting non-zero if one is wrong.
package main
