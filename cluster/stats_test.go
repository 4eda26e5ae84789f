package cluster

import "testing"

func TestSnakeCase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"RemoteGets", "remote_gets"},
		{"BytesIn", "bytes_in"},
		{"Pulls", "pulls"},
		{"HTTPPort", "http_port"},
		{"SwarmChunksIn", "swarm_chunks_in"},
		{"MembersAlive", "members_alive"},
	} {
		if got := snakeCase(tc.in); got != tc.want {
			t.Errorf("snakeCase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Fields lists every field of Stats, counters (int64) and gauges (int),
// with its value.
func TestStatsFields(t *testing.T) {
	s := Stats{MembersAlive: 3, RemoteGets: 7, BytesOut: 11, OwnedBorrowed: 2}
	got := map[string]StatField{}
	for _, f := range s.Fields() {
		got[f.Name] = f
	}
	for name, want := range map[string]StatField{
		"members_alive":  {Name: "members_alive", Value: 3},
		"remote_gets":    {Name: "remote_gets", Value: 7, Counter: true},
		"bytes_out":      {Name: "bytes_out", Value: 11, Counter: true},
		"owned_borrowed": {Name: "owned_borrowed", Value: 2},
		"pulls":          {Name: "pulls", Counter: true},
	} {
		if got[name] != want {
			t.Errorf("field %s: %+v, want %+v", name, got[name], want)
		}
	}
	if n := len(s.Fields()); n < 9 {
		t.Errorf("%d fields, want every field of Stats (9 or more)", n)
	}
}
