package dashboard

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestClusterFromAnyNode: node-3's dashboard shows node-1's primary, the copy
// node-2 pulled, the borrow, and every node's figures, asking the others
// over the cluster.
func TestClusterFromAnyNode(t *testing.T) {
	c, ds := openCluster(t, 3)
	ctx := context.Background()
	n1, n2 := c.Nodes[0], c.Nodes[1]
	big, err := n1.Put(ctx, make([]byte, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Drop()
	borrowed, err := n2.Borrow(big.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer borrowed.Drop()
	obj, err := n2.Get(ctx, borrowed)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Release()
	id := big.ID().String()
	d3 := ds[2]

	var nodes NodesJSON
	getJSON(t, d3, "/api/nodes", &nodes)
	if nodes.Self != "node-3" || nodes.Totals.Alive != 3 || len(nodes.Nodes) != 3 {
		t.Fatalf("nodes: %+v", nodes)
	}
	for i, n := range nodes.Nodes {
		st := c.Nodes[i].Local().Stats()
		if n.Name != c.Nodes[i].Name() || n.State != "alive" || n.Error != "" || n.Capacity != st.Capacity || n.Objects != st.Objects {
			t.Errorf("node %d: %+v; its store has capacity %d, %d objects", i, n, st.Capacity, st.Objects)
		}
	}

	eventually(t, "the owner learns of node-2's copy", func() string {
		var p ObjectsJSON
		getJSON(t, d3, "/api/objects?owner=node-1&sort=node&order=asc", &p)
		var got []string
		for _, r := range p.Rows {
			if r.ID == id {
				got = append(got, fmt.Sprintf("%s %s views=%d borrowers=%d copies=%d", r.Node, r.Role, r.Views, r.Borrowers, r.Copies))
			}
		}
		want := []string{"node-1 primary views=0 borrowers=1 copies=1", "node-2 copy views=1 borrowers=0 copies=0"}
		if !slices.Equal(got, want) {
			return fmt.Sprintf("rows %q, want %q", got, want)
		}
		return ""
	})
	var p ObjectsJSON
	getJSON(t, d3, "/api/objects?node=node-2&kind=copy", &p)
	if len(p.Rows) != 1 || p.Rows[0].ID != id || len(p.Nodes) != 1 || p.Nodes[0].Node != "node-2" {
		t.Fatalf("node-2's copies: %+v", p)
	}
	getJSON(t, d3, "/api/objects?kind=borrowed", &p)
	if len(p.Rows) != 1 || p.Rows[0].Node != "node-1" {
		t.Fatalf("borrowed: %+v", p.Rows)
	}

	var o ObjectJSON
	getJSON(t, d3, "/api/objects/"+id, &o)
	var copies []string
	for _, c := range o.Copies {
		copies = append(copies, c.Node+" "+c.Role)
	}
	if o.Owner != "node-1" || o.Size != 1<<20 || !slices.Equal(copies, []string{"node-1 primary", "node-2 copy"}) {
		t.Fatalf("detail: owner %s size %d copies %v", o.Owner, o.Size, copies)
	}
	if len(o.Borrowers) != 1 || o.Borrowers[0].Node != "node-2" || !o.Borrowers[0].Copy {
		t.Fatalf("borrowers: %+v", o.Borrowers)
	}
	var holders []string
	for _, h := range o.Holders {
		holders = append(holders, fmt.Sprintf("%s %v", h.Node, h.Full))
	}
	slices.Sort(holders)
	if !slices.Equal(holders, []string{"node-1 true", "node-2 true"}) {
		t.Fatalf("holders: %v", holders)
	}

	var a ActivityJSON
	eventually(t, "activity of every node", func() string {
		getJSON(t, d3, "/api/activity", &a)
		if len(a.Nodes) != 3 || len(a.Cluster) == 0 {
			return fmt.Sprintf("%d series, %d cluster points", len(a.Nodes), len(a.Cluster))
		}
		var in float64
		for _, p := range a.Nodes[1].Points {
			in += p.BytesInPerSec
		}
		if in == 0 {
			return "node-2 shows no bytes pulled in"
		}
		return ""
	})
}
