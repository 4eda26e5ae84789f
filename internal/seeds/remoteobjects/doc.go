// Package remoteobjects is the seed document "Remote Objects" (Ray Core
// walkthrough: objects in Ray), section by section: the cluster's resources,
// single and multiple object refs, a Get with a timeout, and Wait. Each step
// quotes the Python it stands for. examples/remoteobjects runs them in order;
// `trove demo` walks through them too.
//
// The seed's sleeps are in the Driver's seconds (Driver.Unit).
package remoteobjects
