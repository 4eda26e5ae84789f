package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/trovedb/trove"
)

// progressDisplay shows how the run is going on stderr: a progress bar on a
// terminal, a plain status line every -status-every otherwise, nothing with -quiet.
type progressDisplay struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func startProgress(r *runner, o *options, stderr io.Writer) *progressDisplay {
	p := &progressDisplay{done: make(chan struct{})}
	if o.quiet {
		return p
	}
	if isTerminal(stderr) {
		p.wg.Go(func() { p.bar(r, stderr) })
	} else {
		p.wg.Go(func() { p.lines(r, stderr, o.statusEvery) })
	}
	return p
}

func (p *progressDisplay) stop() {
	close(p.done)
	p.wg.Wait()
}

// fraction is how far the run is towards its nearer limit, in [0, 1].
func fraction(cfg loadConfig, s progress, issued int64) float64 {
	f := 0.0
	if cfg.Duration > 0 {
		f = max(f, s.Elapsed.Seconds()/cfg.Duration.Seconds())
	}
	if cfg.Ops > 0 {
		f = max(f, float64(issued)/float64(cfg.Ops))
	}
	return min(f, 1)
}

func (p *progressDisplay) bar(r *runner, w io.Writer) {
	const steps = 1000
	bar := progressbar.NewOptions64(steps,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetDescription("loadgen"),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last progress
	for {
		select {
		case <-p.done:
			_ = bar.Clear()
			return
		case <-tick.C:
		}
		s := r.snapshot()
		bar.Describe(statusText(s, last))
		_ = bar.Set64(int64(fraction(r.cfg, s, r.issued.Load()) * steps))
		last = s
	}
}

func (p *progressDisplay) lines(r *runner, w io.Writer, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last progress
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		s := r.snapshot()
		fmt.Fprintf(w, "loadgen: %s %3.0f%% %s\n", s.Elapsed.Round(100*time.Millisecond),
			100*fraction(r.cfg, s, r.issued.Load()), statusText(s, last))
		last = s
	}
}

// statusText describes the run so far, with rates over the interval since last.
func statusText(s, last progress) string {
	dt := max((s.Elapsed - last.Elapsed).Seconds(), 1e-9)
	return fmt.Sprintf("%d ops (%.0f/s), put %s/s, get %s/s, errors %d",
		s.Ops, float64(s.Ops-last.Ops)/dt,
		trove.HumanBytes(int64(float64(s.Bytes[opPut]-last.Bytes[opPut])/dt)),
		trove.HumanBytes(int64(float64(s.Bytes[opGet]-last.Bytes[opGet])/dt)),
		s.Errors)
}
