package task

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Resources are amounts of a node's (or the cluster's) resources by name:
// CPU, and the custom ones nodes declare (Config.Resources).
type Resources map[string]float64

// CPU is the name of the CPU slots resource.
const CPU = "CPU"

func (r Resources) clone() Resources { return maps.Clone(r) }

// fits reports whether need fits in r.
func (r Resources) fits(need Resources) bool {
	for k, v := range need {
		if v > 0 && r[k] < v-1e-9 {
			return false
		}
	}
	return true
}

// take subtracts need from r.
func (r Resources) take(need Resources) {
	for k, v := range need {
		r[k] -= v
	}
}

// give adds need to r.
func (r Resources) give(need Resources) {
	for k, v := range need {
		r[k] += v
	}
}

// add adds o into r.
func (r Resources) add(o Resources) {
	for k, v := range o {
		r[k] += v
	}
}

// String lists the resources sorted by name, CPU first.
func (r Resources) String() string {
	names := slices.Sorted(maps.Keys(r))
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %g", k, r[k])
	}
	b.WriteByte('}')
	return b.String()
}

// checkResources checks a resource map from the user (Config, CallOption).
func checkResources(what string, r Resources) error {
	if len(r) > maxResources {
		return fmt.Errorf("task: %s names %d resources, at most %d are allowed", what, len(r), maxResources)
	}
	for k, v := range r {
		if k == "" || len(k) > maxResourceName {
			return fmt.Errorf("task: %s: resource name %q must have 1 to %d bytes", what, k, maxResourceName)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxAmount {
			return fmt.Errorf("task: %s: resource %s = %v must be a number from 0 to %g", what, k, v, float64(maxAmount))
		}
	}
	return nil
}
