package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		main     string
		settings []debug.BuildSetting
		want     string
	}{
		{"no info", "", nil, "(devel)"},
		{"module version", "v1.2.3", nil, "v1.2.3"},
		{"checkout", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}, "(devel) 0123456789ab"},
		{"dirty checkout", "", []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}, "(devel) 0123456789ab-dirty"},
		{"short revision", "", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "(devel) abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Version: tc.main}, Settings: tc.settings}
			if got := fromBuildInfo(bi); got != tc.want {
				t.Errorf("fromBuildInfo = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStampWins(t *testing.T) {
	defer func(s string) { stamp = s }(stamp)
	stamp = "v9.8.7-3-gabcdef0-dirty"
	if got := String(); got != stamp {
		t.Errorf("String() = %q with a stamp, want the stamp %q", got, stamp)
	}
	stamp = "  "
	if got := String(); got == "" || got == "  " {
		t.Errorf("String() = %q with a blank stamp, want the build info's version", got)
	}
}
