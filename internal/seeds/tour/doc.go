// Package tour is the seed "A Guided Tour of Ray Core: Remote Objects", the
// English notebook's cells (composable futures: a remote call whose argument
// is a ref; a list of refs; a Get with a timeout), each %%time cell followed
// by its wall time as the notebook shows it. The Chinese edition's cells are
// the tensor tutorial's (internal/seeds/tensors), under its own headings:
// Chinese lists the steps of both editions in order. examples/tour runs them;
// `trove demo` walks through RemoteObjects.
package tour
