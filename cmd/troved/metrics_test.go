package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trovedb/trove/cluster"
)

// Every field of cluster.Stats is exported as one metric, named
// trove_cluster_*, a counter ending in _total for a counter field and a
// gauge otherwise: a field added to Stats without its metric fails here.
func TestClusterMetricsCoverStats(t *testing.T) {
	// A distinct value in each field tells which field a metric reads.
	var s cluster.Stats
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.CanInt() {
			f.SetInt(int64(1000 + i))
		}
	}
	byValue := map[float64]string{}
	for _, m := range clusterMetrics {
		name := descName(m.desc)
		if !strings.HasPrefix(name, "trove_cluster_") {
			t.Errorf("metric %s: want the trove_cluster_ prefix", name)
		}
		if (m.kind == prometheus.CounterValue) != strings.HasSuffix(name, "_total") {
			t.Errorf("metric %s: a counter's name ends in _total, a gauge's does not", name)
		}
		val := m.value(&s)
		if other, dup := byValue[val]; dup {
			t.Errorf("metrics %s and %s read the same field", other, name)
		}
		byValue[val] = name
	}
	for _, f := range s.Fields() {
		name, ok := byValue[float64(f.Value)]
		switch {
		case !ok:
			t.Errorf("cluster.Stats field %s has no metric in clusterMetrics", f.Name)
		case f.Counter != strings.HasSuffix(name, "_total"):
			t.Errorf("cluster.Stats field %s (counter %v) is exported as %s", f.Name, f.Counter, name)
		}
	}
}

// descName is a Desc's fully-qualified name.
func descName(d *prometheus.Desc) string {
	s := d.String()
	_, rest, _ := strings.Cut(s, `fqName: "`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}
