// Package objects is Ray's "Objects" guide (the seed document with by-value
// and by-reference arguments, closure capture and nested objects), section by
// section. Each step quotes the Python it stands for; the guide's Java and
// C++ snippets do the same things. examples/objects runs them in order;
// `trove demo` walks through Nested.
package objects
