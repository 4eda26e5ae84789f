package engine

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
)

// Defaults for a zero Config.
const (
	DefaultCapacityFraction = 0.30      // of physical RAM
	MinCapacity             = 64 << 20  // the smallest default capacity
	DefaultInlineThreshold  = 100 << 10 // 100 KiB, as Ray
)

// Config configures a Store. The zero value gives working defaults.
type Config struct {
	// Capacity is the shared-memory arena's size in bytes. Zero means 30% of the
	// machine's RAM, at least MinCapacity.
	Capacity int64

	// InlineThreshold is the largest object kept in the Go heap rather than the
	// arena. Zero means DefaultInlineThreshold; a negative value puts every
	// object in the arena.
	InlineThreshold int64

	// PrefaultAll makes Open populate the whole arena up front (about 2 s per
	// GiB where page faults are slow) instead of chunk by chunk as it fills.
	PrefaultAll bool

	// Node is the node ID minted into every ObjectID. Zero picks a random one.
	Node trove.NodeID

	// Name names the arena's memfd (visible in /proc/PID/maps). Default "trove".
	Name string
}

func (c Config) withDefaults() (Config, error) {
	if c.Capacity == 0 {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return c, fmt.Errorf("engine: read RAM size for the default capacity: %w; set Config.Capacity", err)
		}
		ram := int64(si.Totalram) * int64(si.Unit)
		c.Capacity = max(int64(float64(ram)*DefaultCapacityFraction), MinCapacity)
	}
	if c.Capacity < 0 {
		return c, fmt.Errorf("engine: Config.Capacity %d is negative", c.Capacity)
	}
	switch {
	case c.InlineThreshold == 0:
		c.InlineThreshold = DefaultInlineThreshold
	case c.InlineThreshold < 0:
		c.InlineThreshold = -1
	}
	if c.Node == (trove.NodeID{}) {
		c.Node = trove.NewNodeID()
	}
	if c.Name == "" {
		c.Name = "trove"
	}
	return c, nil
}
