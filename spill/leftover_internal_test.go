package spill

import "testing"

// TestSpillFileToken: only names trove gives are taken for spill files.
func TestSpillFileToken(t *testing.T) {
	tests := []struct {
		name  string
		token string
		pid   int
	}{
		{"trove-42-0a1b2c3d-7.spill", "trove-42-0a1b2c3d", 42},
		{"trove-42-0a1b2c3d-18446744073709551615.spill", "trove-42-0a1b2c3d", 42},
		{"trove-42-0a1b2c3d-0.spill", "", 0},  // file numbers start at 1
		{"trove-42-0a1b2c3d-7.lock", "", 0},   // not a spill file
		{"trove-42-0A1B2C3D-7.spill", "", 0},  // upper-case hex: not ours
		{"trove-42-0a1b2c-7.spill", "", 0},    // short random part
		{"trove-042-0a1b2c3d-7.spill", "", 0}, // not how a PID prints
		{"trove-0-0a1b2c3d-7.spill", "", 0},
		{"trove--0a1b2c3d-7.spill", "", 0},
		{"trove-42-0a1b2c3d.spill", "", 0},
		{"x-trove-42-0a1b2c3d-7.spill", "", 0},
		{"trove-42-0a1b2c3d-7.spill.tmp", "", 0},
	}
	for _, tt := range tests {
		token, pid, ok := spillFileToken(tt.name)
		if ok != (tt.token != "") || token != tt.token && ok || pid != tt.pid && ok {
			t.Errorf("spillFileToken(%q) = %q, %d, %v; want %q, %d", tt.name, token, pid, ok, tt.token, tt.pid)
		}
	}
}
