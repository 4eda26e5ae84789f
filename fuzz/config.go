package fuzz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/trovedb/trove/engine"
)

// Config is a store configuration a script runs against, with the bounds the
// generator keeps to so that every op's outcome is decided by the script alone.
type Config struct {
	Name string

	// The store's settings.
	Capacity        int64
	InlineThreshold int64
	MinSpillSize    int64
	SpillThreshold  float64

	// The generator's bounds. MaxSize is the largest object it puts; it stops
	// putting once the live objects' bytes reach MaxLive; Ops is a script's
	// length unless the caller says otherwise.
	MaxSize int
	MaxLive int64
	Ops     int

	// MaxUnmovable bounds the views held and the builders left open, across all
	// threads: what no spill can move. Each may hold a whole slab span of its
	// size class (eight slots: 1 MiB for a 128 KiB object), and the arena must
	// keep room for one more span besides, or a Put would fail for want of a
	// Release that the script has not made yet (the engine waits for room; the
	// model cannot say when it comes).
	MaxUnmovable int

	// ExactSpill: the store is never short of memory, so only Spill ops move
	// objects to disk and the model knows which are there (Spill's count and
	// Stats.SpilledObjects are checked exactly). Otherwise a creator's reclaim
	// spills whatever it picks, and Spill's count is only bounded.
	ExactSpill bool

	// Background: the background spiller may run at any time (SpillThreshold
	// below 1). Store.Check reads object records that the spiller writes without
	// the table's locks, so it runs only once the store is empty; the barriers
	// check the statistics.
	Background bool
}

// Configs are the configurations scripts name.
var Configs = map[string]Config{
	// tiny: a 3 MiB arena that a script's puts overflow about twice, so that
	// creators spill synchronously all the time and Gets restore (or map the
	// spill file when the arena is full). Two 1 MiB spans held and one more
	// leave a free span's worth.
	"tiny": {
		Name: "tiny", Capacity: 3 << 20, InlineThreshold: 512, MinSpillSize: 256 << 10, SpillThreshold: 1,
		MaxSize: 128 << 10, MaxLive: 12 << 20, Ops: 800, MaxUnmovable: 2,
	},
	// large: room for everything (the first span of each size class up to
	// 1 MiB is 4-8 MiB, and the live objects come on top), objects up to 3 MiB
	// (page runs past the slab classes), spilling only when a Spill op asks.
	"large": {
		Name: "large", Capacity: 256 << 20, InlineThreshold: 16 << 10, MinSpillSize: 1 << 20, SpillThreshold: 1,
		MaxSize: 3 << 20, MaxLive: 48 << 20, Ops: 200, MaxUnmovable: 6, ExactSpill: true,
	},
	// background: the tiny arena with the background spiller writing from half
	// full, racing the creators' own reclaims.
	"background": {
		Name: "background", Capacity: 3 << 20, InlineThreshold: 512, MinSpillSize: 128 << 10, SpillThreshold: 0.5,
		MaxSize: 128 << 10, MaxLive: 12 << 20, Ops: 800, MaxUnmovable: 2, Background: true,
	},
}

// ConfigNames returns the names of Configs, sorted.
func ConfigNames() []string {
	var ns []string
	for n := range Configs {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

func configNamed(name string) (Config, error) {
	c, ok := Configs[name]
	if !ok {
		return c, fmt.Errorf("fuzz: no configuration %q; the configurations are %s", name, strings.Join(ConfigNames(), ", "))
	}
	return c, nil
}

// engineConfig is the store's configuration, spilling into dir.
func (c Config) engineConfig(dir string) engine.Config {
	return engine.Config{
		Capacity:        c.Capacity,
		InlineThreshold: c.InlineThreshold,
		MinSpillSize:    c.MinSpillSize,
		SpillThreshold:  c.SpillThreshold,
		SpillDirs:       []string{dir},
		Name:            "trove-fuzz-" + c.Name,
	}
}

func (c Config) inline(size int) bool { return int64(size) <= c.InlineThreshold }
