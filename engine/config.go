package engine

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/spill"
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

	// Remote reaches objects owned by other nodes (remote.go): the cluster
	// layer sets it. Nil (the default) is a single node: Borrow of an ID this
	// store does not hold fails with ErrUnknownObject, and a Get of an evicted
	// copy with ErrObjectEvicted.
	Remote Remote

	// Memory pressure: see pressure.go.

	// SpillDirs are the directories objects are spilled to, round robin, one
	// fused file at a time. Default: one directory under os.TempDir().
	SpillDirs []string
	// SpillWorkers is the number of I/O workers that write and restore. Default 4.
	SpillWorkers int
	// MinSpillSize is the least a spill writes at once, if that much can be
	// spilled, so that many small objects become few large writes (Ray's
	// min_spilling_size). Default 100 MiB. A creator that cannot get room spills
	// a batch of this size itself (or whatever can go, if less); the background
	// spiller waits until it can fill one, unless memory is over 95% full.
	MinSpillSize int64
	// SpillThreshold is the fraction of Capacity in use above which objects are
	// spilled in the background. Default 0.8.
	SpillThreshold float64
	// Fallback says whether a Get that must restore a spilled object into a full
	// arena maps it from its spill file instead of waiting (as Ray's fallback
	// allocation does). Default FallbackOn.
	Fallback FallbackMode
	// SpillFS is the file system spill files live on. Default the OS's; tests
	// inject faults here.
	SpillFS spill.FS
	// DisableSpilling turns spilling off: a full store makes creators wait for
	// refs to be dropped (secondary copies are still evicted).
	DisableSpilling bool
}

// FallbackMode says whether restores may use fallback allocation.
type FallbackMode uint8

const (
	FallbackOn  FallbackMode = iota // map the spill file when the arena is full
	FallbackOff                     // wait for room like a creator
)

// Defaults for memory pressure.
const (
	DefaultSpillWorkers   = 4
	DefaultMinSpillSize   = 100 << 20
	DefaultSpillThreshold = 0.8
)

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
	if c.SpillWorkers <= 0 {
		c.SpillWorkers = DefaultSpillWorkers
	}
	if c.MinSpillSize <= 0 {
		c.MinSpillSize = DefaultMinSpillSize
	}
	if c.SpillThreshold == 0 {
		c.SpillThreshold = DefaultSpillThreshold
	}
	if c.SpillThreshold < 0 || c.SpillThreshold > 1 {
		return c, fmt.Errorf("engine: Config.SpillThreshold %v outside (0, 1]", c.SpillThreshold)
	}
	return c, nil
}
