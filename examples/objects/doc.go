// Command objects runs Ray's "Objects" guide (the seed document with by-value
// and by-reference arguments, closure capture and nested objects) step by step,
// on an in-process trove cluster of three nodes. The steps, each beside the
// Python it stands for (and, for closure capture, why Go does it another
// way), are in internal/seeds/objects.
//
// The guide's 8 s sleep and 4 s timeout are scaled by unit (a quarter of a
// second).
package main
