package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"

	"github.com/trovedb/trove/tools/swarmsim/sim"
)

// netclusterBench is the part of tools/netcluster's bench JSON
// (bench/out/netcluster.json) the comparison reads.
type netclusterBench struct {
	Size     int64  `json:"size_bytes"`
	RateBits int64  `json:"rate_bits_per_second"`
	Date     string `json:"date"`
	Points   []struct {
		N             int     `json:"n"`
		Mode          string  `json:"mode"`
		MedianSeconds float64 `json:"median_seconds"`
		EgressCopies  float64 `json:"origin_egress_copies"`
		RatioToN2     float64 `json:"ratio_to_n2"`
	} `json:"points"`
}

// ComparePair is one measured point beside the model's figure for it.
type ComparePair struct {
	N              int     `json:"n"`
	Mode           string  `json:"mode"`  // the measured mode
	Model          string  `json:"model"` // the variant it is compared with
	Measured       float64 `json:"measured_seconds"`
	Modelled       float64 `json:"model_seconds"`
	Error          float64 `json:"error"` // (model − measured) / measured
	MeasuredRatio  float64 `json:"measured_ratio_to_n2"`
	ModelRatio     float64 `json:"model_ratio_to_n2"`
	MeasuredEgress float64 `json:"measured_origin_egress_copies"`
	ModelEgress    float64 `json:"model_origin_egress_copies"`
}

// compareWith runs the model at each measured point's N with the measured
// object size and link rate: mode "current" (a build with one holder per
// pull) and "single" against the single-source variant, "swarm" against the
// cluster's swarm as built.
func compareWith(path string, base sim.Config) ([]ComparePair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-compare: %w (tools/netcluster's `make bench-netcluster` writes it)", err)
	}
	var nb netclusterBench
	if err := json.Unmarshal(b, &nb); err != nil {
		return nil, fmt.Errorf("-compare %s: not a tools/netcluster bench JSON: %w", path, err)
	}
	if nb.Size <= 0 || nb.RateBits <= 0 || len(nb.Points) == 0 {
		return nil, fmt.Errorf("-compare %s: no size_bytes, rate_bits_per_second or points: not a tools/netcluster bench JSON", path)
	}
	base.Size = nb.Size
	base.Uplink, base.Downlink = float64(nb.RateBits)/8, float64(nb.RateBits)/8
	model2 := map[string]float64{}
	var pairs []ComparePair
	for _, p := range nb.Points {
		v := "swarm"
		if p.Mode == "current" || p.Mode == "single" {
			v = "single"
		}
		variant, _ := variantByName(v)
		cfg := base
		cfg.Nodes = p.N
		variant.Apply(&cfg)
		r := runOne(v, cfg)
		pair := ComparePair{N: p.N, Mode: p.Mode, Model: v, Measured: p.MedianSeconds, Modelled: r.Max,
			MeasuredRatio: p.RatioToN2, MeasuredEgress: p.EgressCopies, ModelEgress: r.EgressPerS}
		if r.Error != "" {
			pair.Modelled = math.NaN()
		}
		if p.N == 2 {
			model2[p.Mode] = r.Max
		}
		if t2 := model2[p.Mode]; t2 > 0 {
			pair.ModelRatio = r.Max / t2
		}
		pair.Error = (pair.Modelled - pair.Measured) / pair.Measured
		pairs = append(pairs, pair)
	}
	return pairs, nil
}

func printCompare(w io.Writer, pairs []ComparePair) {
	fmt.Fprintln(w, "\nmodel against the namespace cluster (measured: median of its runs; model: slowest puller)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tmode\tmodel\tmeasured s\tmodel s\terror\tmeasured /N=2\tmodel /N=2\tmeasured egress/S\tmodel egress/S\t")
	for _, p := range pairs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%.1f\t%+.1f%%\t%.2f\t%.2f\t%.2f\t%.2f\t\n", p.N, p.Mode, p.Model, p.Measured, p.Modelled, 100*p.Error, p.MeasuredRatio, p.ModelRatio, p.MeasuredEgress, p.ModelEgress)
	}
	tw.Flush()
}
