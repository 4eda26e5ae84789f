// Package seeds holds the cells of the seed documents (../shared/seeds: Ray's
// remote-objects tutorials), one package per document below it, so that the
// program of each document (examples/<doc>) and `trove demo` run the same
// code: a document's program lists its steps in order; the demo picks the
// steps it walks through. Each step is one section of its document, a
// function that quotes the document's Python beside its Go and writes what
// the cells print to the Driver's writer.
//
// This package owns what the steps share: the Driver they are given (the
// in-process cluster, the driver's task runtime, the writer, the document's
// second), Run (a document's program: open the cluster, run the steps, check
// every store drained), the remote functions more than one document calls
// (registered once here: a function's name is unique in a program, and the
// demo links every document), and the helpers for a list of refs.
//
// The packages are internal: they are the examples' and the demo's, and
// promise no API. Invariants: every step drops every ref it made and releases
// every view before it returns, so that a program's steps can run in any
// order and end with every node's store empty; a step checks every result it
// prints and returns an error naming the first wrong one.
package seeds
