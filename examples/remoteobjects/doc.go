// Command remoteobjects runs the seed document "Remote Objects" (Ray Core
// walkthrough: objects in Ray) cell by cell, on an in-process trove cluster of
// three nodes. The cells, each beside the Python it stands for, are in
// internal/seeds/remoteobjects, which `trove demo` runs too.
//
// The seed's sleeps are scaled by unit (a quarter of a second): its 8 s
// function is 2 s here, its 4 s timeout 1 s.
package main
