// Package examples holds one runnable program per seed document, each a Ray
// tutorial's cells in Go, step by step, on an in-process trove cluster of
// three nodes (internal/localcluster):
//
//	remoteobjects   "Remote Objects": put/get, a list of refs, Get with a timeout, Wait
//	tour            "A Guided Tour of Ray Core: Remote Objects", the English and the
//	                Chinese editions: composable futures, tensors, passing objects
//	objects         Ray's "Objects" guide: by value, by reference, closure capture, nesting
//	tensors         the tensor tutorial: 100 tensors put, transformed remotely, checked;
//	                by value and by reference; the read-only fault
//	batchinference  "Distributed Batch Inference": a model put once, one call per
//	                Parquet shard, predictions as Arrow record batches read in place
//
// Each program lists its document's steps in order; the steps themselves, one
// function per section with each cell's Python quoted beside its Go, are in
// internal/seeds/<document>, so that `trove demo` runs the same code (a
// package main cannot be imported).
//
// Run one with `go run ./examples/remoteobjects`. Each program's test runs it
// and checks its output, and that every node's store ends empty.
package examples
