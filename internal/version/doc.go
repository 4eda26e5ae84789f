// Package version owns the version string trove's programs print (trove
// version, troved -version, troved's /metrics trove_build_info and trove
// status): the release's version when the build stamped one in with
//
//	-ldflags '-X github.com/trovedb/trove/internal/version.stamp=v1.2.3'
//
// (make dist does, from git describe --tags --always --dirty), else the
// module version and the VCS revision Go records in the binary (go build in
// a checkout), else "unknown". It reads nothing but the binary's build info.
package version
