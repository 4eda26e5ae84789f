package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/ipc"
)

// cmdMemory is `trove memory`, the analogue of `ray memory`: every object the
// daemon holds, one row per holder, grouped by owner, then totals.
func cmdMemory(ctx context.Context, args []string, out io.Writer) error {
	cmd, df := newDaemonCommand("memory", "memory [-sort owner|size|id] [-limit N] [-cluster] [-socket PATH] [--json]",
		"Lists every object the daemon holds, one row per holder (a process's refs, its views, the\n"+
			"objects that contain it, the daemon keeping it for trove put), then totals per owner.\n"+
			"With -cluster (a cluster node's daemon, troved -listen), lists every member's objects,\n"+
			"largest first, at most -limit per node, with a NODE column and totals per node.")
	clusterWide := cmd.fs.Bool("cluster", false, "list the objects of every node of the daemon's cluster (-limit: per node)")
	sortBy := cmd.fs.String("sort", "owner", "the `ORDER` of rows: owner (grouped, largest first), size (largest first) or id")
	limit := cmd.fs.Int("limit", 100, "show at most `N` rows of the table (0: all); totals, and --json, cover every row")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("memory: unexpected argument %q (memory takes only flags)", pos[0])
	}
	if *limit < 0 {
		return usagef("memory: -limit %d: want 0 (all) or more", *limit)
	}
	order, ok := memoryOrders[*sortBy]
	if !ok {
		return usagef("memory: -sort %q: want owner, size or id", *sortBy)
	}
	c, err := dial(ctx, df.socket, "memory")
	if err != nil {
		return err
	}
	defer c.Close()
	if *clusterWide {
		return clusterMemory(ctx, c, *limit, df.json, out)
	}
	rep, err := c.Memory(ctx)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	slices.SortStableFunc(rep.Rows, order)
	if df.json {
		return printJSON(out, newMemoryJSON(rep))
	}
	printMemory(out, rep, *limit)
	return nil
}

// ownerOf is a row's holder as shown: "PID name", or "store".
func ownerOf(r ipc.MemoryRow) string {
	if r.PID != 0 && !strings.HasPrefix(r.Owner, strconv.Itoa(r.PID)+" ") {
		return fmt.Sprintf("%d %s", r.PID, r.Owner)
	}
	return r.Owner
}

var memoryOrders = map[string]func(a, b ipc.MemoryRow) int{
	"owner": func(a, b ipc.MemoryRow) int {
		return cmp.Or(cmp.Compare(a.PID, b.PID), cmp.Compare(ownerOf(a), ownerOf(b)),
			cmp.Compare(b.Size, a.Size), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Kind, b.Kind))
	},
	"size": func(a, b ipc.MemoryRow) int {
		return cmp.Or(cmp.Compare(b.Size, a.Size), cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.PID, b.PID), cmp.Compare(ownerOf(a), ownerOf(b)), cmp.Compare(a.Kind, b.Kind))
	},
	"id": func(a, b ipc.MemoryRow) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.PID, b.PID), cmp.Compare(ownerOf(a), ownerOf(b)), cmp.Compare(a.Kind, b.Kind))
	},
}

// ownerSummary sums one owner's rows.
type ownerSummary struct {
	owner   string
	ids     map[string]int64 // object ID → size, so an object held two ways counts once
	byKind  map[string]int
	ordinal int // first appearance, to print owners in row order
}

func printMemory(out io.Writer, rep ipc.MemoryReport, limit int) {
	hb := trove.HumanBytes
	if len(rep.Rows) == 0 {
		fmt.Fprintln(out, "no objects in the store")
		return
	}
	shown := rep.Rows
	if limit > 0 && len(shown) > limit {
		shown = shown[:limit]
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "OBJECT ID\tSIZE\tOWNER\tREFERENCE KIND\tCOUNT\tWHERE")
	for _, r := range shown {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, hb(r.Size), ownerOf(r), r.Kind, r.Count, r.Where)
	}
	w.Flush()
	if cut := len(rep.Rows) - len(shown); cut > 0 {
		fmt.Fprintf(out, "... %s not shown (of %d); raise -limit, or -limit 0 for all\n", plural(cut, "more row"), len(rep.Rows))
	}

	owners := map[string]*ownerSummary{}
	for _, r := range rep.Rows {
		o := ownerOf(r)
		s := owners[o]
		if s == nil {
			s = &ownerSummary{owner: o, ids: map[string]int64{}, byKind: map[string]int{}, ordinal: len(owners)}
			owners[o] = s
		}
		s.ids[r.ID] = r.Size
		s.byKind[r.Kind] += r.Count
	}
	sums := make([]*ownerSummary, 0, len(owners))
	for _, s := range owners {
		sums = append(sums, s)
	}
	slices.SortFunc(sums, func(a, b *ownerSummary) int { return cmp.Compare(a.ordinal, b.ordinal) })
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "OWNER\tOBJECTS\tSIZE\tHELD AS")
	for _, s := range sums {
		var bytes int64
		for _, size := range s.ids {
			bytes += size
		}
		var kinds []string
		for _, k := range []string{ipc.KindLocalRef, ipc.KindPinned, ipc.KindCaptured, ipc.KindPending, ipc.KindKept, ipc.KindStore} {
			if n := s.byKind[k]; n > 0 {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			}
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", s.owner, len(s.ids), hb(bytes), strings.Join(kinds, ", "))
	}
	w.Flush()
	t := rep.Totals
	fmt.Fprintf(out, "\ntotal: %s, %s: %s in memory, %s spilled, %s pinned (%s)\n",
		plural(t.Objects, "object"), hb(t.Bytes), hb(t.InMemory), hb(t.Spilled), hb(t.Pinned), plural(t.Rows, "row"))
}

// clusterMemory is `trove memory -cluster`: every member's objects, at most
// limit per node (0: as many as a node lists, cluster.MaxListing).
func clusterMemory(ctx context.Context, c *ipc.Client, limit int, asJSON bool, out io.Writer) error {
	if limit == 0 || limit > cluster.MaxListing {
		limit = cluster.MaxListing
	}
	rep, err := c.ClusterMemory(ctx, limit)
	if err != nil {
		return fmt.Errorf("memory -cluster: %w", err)
	}
	if asJSON {
		return printJSON(out, newClusterMemoryJSON(rep))
	}
	printClusterMemory(out, rep)
	return nil
}

func printClusterMemory(out io.Writer, rep ipc.ClusterMemory) {
	hb := trove.HumanBytes
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tOBJECT ID\tSIZE\tCOPY\tREFS\tPINS\tWHERE")
	rows := 0
	for _, n := range rep.Nodes {
		for _, o := range n.Objects {
			cp := "primary"
			if o.Copy {
				cp = "copy"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", n.Name, o.ID, hb(o.Size), cp, o.Refs, o.Pins, o.Where)
			rows++
		}
	}
	if rows > 0 {
		w.Flush()
		fmt.Fprintln(out)
	}
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tADDR\tOBJECTS\tLISTED\tLISTED SIZE\tNOTE")
	for _, n := range rep.Nodes {
		note := ""
		switch {
		case n.Err != "":
			note = "could not be asked: " + n.Err
		case n.Total > len(n.Objects):
			note = fmt.Sprintf("%d not listed; raise -limit", n.Total-len(n.Objects))
		}
		if n.Self {
			note = strings.TrimPrefix(note+"; this node", "; ")
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", n.Name, n.Addr, n.Total, len(n.Objects), hb(n.Bytes), note)
	}
	w.Flush()
}
