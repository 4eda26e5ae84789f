package version

import (
	"runtime/debug"
	"strings"
)

// stamp is set by the linker (-X) in release builds; empty otherwise.
var stamp string

// String is the binary's version: the stamped release version, else the
// module version and VCS revision from the build info (a "-dirty" suffix
// when the checkout had changes), else "unknown".
func String() string {
	if s := strings.TrimSpace(stamp); s != "" {
		return s
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return fromBuildInfo(bi)
}

// fromBuildInfo is the version in bi: "(devel) 0123456789ab-dirty" for a
// build in a checkout, the module version for go install module@version.
func fromBuildInfo(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev[:min(len(rev), 12)] + dirty
	}
	return v
}
