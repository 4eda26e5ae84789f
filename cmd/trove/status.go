package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// cmdStatus is `trove status`: the daemon's memory, objects and clients.
func cmdStatus(ctx context.Context, args []string, out io.Writer) error {
	cmd, df := newDaemonCommand("status", "status [-socket PATH] [--json]",
		"Prints the daemon's memory, objects, spilling and activity, and its clients.")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("status: unexpected argument %q (status takes only flags)", pos[0])
	}
	c, err := dial(ctx, df.socket, "status")
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if df.json {
		return printJSON(out, newStatusJSON(st, time.Now()))
	}
	printStatus(out, st, time.Now())
	return nil
}

func printStatus(out io.Writer, st ipc.Status, now time.Time) {
	s, d := st.Store, st.Daemon
	hb := trove.HumanBytes
	pct := func(n, of int64) string {
		if of <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "daemon\tpid %d, version %s, node %s, up %s\n", d.PID, d.Version, d.Node, uptime(now.Sub(d.Started)))
	fmt.Fprintf(w, "socket\t%s\n", d.Socket)
	if d.HTTP != "" {
		fmt.Fprintf(w, "http\thttp://%s/metrics, /debug/pprof/\n", d.HTTP)
	}
	fmt.Fprintf(w, "capacity\t%s\n", hb(s.Capacity))
	fmt.Fprintf(w, "used\t%s (%s), largest free %s, fragmentation %.1f%%\n", hb(s.Used), pct(s.Used, s.Capacity), hb(s.LargestFree), 100*s.Fragmentation)
	inMemory := max(s.Objects-s.SpilledObjects-s.InlineObjects, 0)
	fmt.Fprintf(w, "objects\t%d, %s: %d in shared memory, %d inline in the daemon's heap (%s), %d pending\n",
		s.Objects, hb(s.ObjectBytes), inMemory, s.InlineObjects, hb(s.InlineBytes), s.PendingObjects)
	fmt.Fprintf(w, "pinned\t%s, %s, by %s\n", plural(s.PinnedObjects, "object"), hb(s.PinnedBytes), plural(s.Views, "view"))
	fmt.Fprintf(w, "spilled\t%s, %s, in %s (%s on disk)\n", plural(s.SpilledObjects, "object"), hb(s.SpilledBytes), plural(s.SpillFiles, "file"), hb(s.SpillDiskBytes))
	fmt.Fprintf(w, "activity\t%d puts, %d gets, %d frees, %d spills, %d restores, %d evictions\n", s.Puts, s.Gets, s.Frees, s.Spills, s.Restores, s.Evictions)
	fmt.Fprintf(w, "kept\t%s (by trove put, until trove drop)\n", plural(st.Server.Kept, "object"))
	if st.Members != nil {
		fmt.Fprintf(w, "cluster\t%s%s\n", plural(len(st.Members), "member"), clusterStats(st.ClusterStats, false, "; now: "))
	}
	if st.ClusterStats != nil {
		fmt.Fprintf(w, "transfers\t%s\n", clusterStats(st.ClusterStats, true, "since start: "))
	}
	fmt.Fprintf(w, "clients\t%d\n", len(st.Clients))
	if st.Workers != nil {
		busy, slots := 0, 0
		for _, wk := range st.Workers {
			busy += wk.Busy
			slots += wk.Slots
		}
		fmt.Fprintf(w, "workers\t%d attached (processes running remote functions), %d of %d slots busy\n", len(st.Workers), busy, slots)
	}
	w.Flush()
	printMembers(out, st.Members, now)
	printWorkers(out, st.Workers)
	if len(st.Clients) == 0 {
		return
	}
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  PID\tNAME\tREFS\tVIEWS\tBUILDERS\tCONNECTED")
	for _, ci := range st.Clients {
		self := ""
		if ci.PID == os.Getpid() && ci.Name == "trove status" {
			self = "  (this command)"
		}
		fmt.Fprintf(w, "  %d\t%s\t%d\t%d\t%d\t%s (%s ago)%s\n", ci.PID, ci.Name, ci.Refs, ci.Views, ci.Builders,
			ci.Connected.Local().Format(time.DateTime), uptime(now.Sub(ci.Connected)), self)
	}
	w.Flush()
}

// printWorkers is the table of worker processes attached to the daemon.
func printWorkers(out io.Writer, ws []ipc.WorkerInfo) {
	if len(ws) == 0 {
		return
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  WORKER PID\tNAME\tFUNCTIONS\tSLOTS\tBUSY")
	for _, wk := range ws {
		fmt.Fprintf(w, "  %d\t%s\t%d\t%d\t%d\n", wk.PID, wk.Name, wk.Functions, wk.Slots, wk.Busy)
	}
	w.Flush()
}

// clusterStats lists a cluster node's counters (counter true) or gauges by
// their names, after prefix ("" if there are none): every field of the node's
// cluster.Stats, so one added there shows here too. Byte counts are also
// given in units.
func clusterStats(stats []ipc.ClusterStat, counter bool, prefix string) string {
	var b strings.Builder
	for _, s := range stats {
		if s.Counter != counter {
			continue
		}
		if b.Len() == 0 {
			b.WriteString(prefix)
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", s.Name, s.Value)
		if strings.HasPrefix(s.Name, "bytes_") || strings.HasSuffix(s.Name, "_bytes") {
			fmt.Fprintf(&b, " (%s)", trove.HumanBytes(s.Value))
		}
	}
	return b.String()
}

// printMembers is the members table of a cluster node's status.
func printMembers(out io.Writer, ms []ipc.MemberInfo, now time.Time) {
	if len(ms) == 0 {
		return
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  NAME\tID\tADDR\tSTATE\tCAPACITY\tUSED\tSLOTS\tRESOURCES (FREE/TOTAL)\tUPDATED")
	for _, m := range ms {
		self := ""
		if m.Self {
			self = "  (this node)"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s ago%s\n", m.Name, m.ID, m.Addr, m.State,
			trove.HumanBytes(m.Capacity), trove.HumanBytes(m.Used), m.Slots, resourcesText(m.Resources), uptime(now.Sub(m.Updated)), self)
	}
	w.Flush()
}

// uptime rounds d for reading: "45s", "3m12s", "5h3m", "2d4h".
func uptime(d time.Duration) string {
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// plural is "1 object", "2 objects".
func plural[N int | int64](n N, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// resourcesText is "CPU 2/4, Custom 1/1", or "-" for a member that runs no
// remote functions.
func resourcesText(rs []ipc.ResourceInfo) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s %g/%g", r.Name, r.Free, r.Total)
	}
	return strings.Join(parts, ", ")
}
