package engine_test

import (
	"context"
	"fmt"
	"log"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// Open a store, put bytes into it (one copy), and get them back as a zero-copy,
// read-only view that pins the object until Release. Dropping the last ref frees
// the object.
func ExampleOpen() {
	ctx := context.Background()
	st, err := engine.Open(engine.Config{Capacity: 64 << 20}) // engine.Config{}: 30% of RAM
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	ref, err := st.Put(ctx, []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	obj, err := st.Get(ctx, ref)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(obj.Bytes()))
	obj.Release() // obj.Bytes() must not be used after this

	ref.Drop()
	fmt.Println("objects left:", st.Stats().Objects)
	// Output:
	// hello
	// objects left: 0
}

// Create makes a future: its ref is valid at once, and a Get of it blocks until
// the builder is sealed. The bytes are written in place, in shared memory for a
// large object, so nothing is copied.
func ExampleStore_Create() {
	ctx := context.Background()
	st, err := engine.Open(engine.Config{Capacity: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	b, err := st.Create(ctx, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	ref := b.Ref()
	got := make(chan string)
	go func() {
		obj, err := st.Get(ctx, ref) // blocks until Seal
		if err != nil {
			got <- err.Error()
			return
		}
		msg := fmt.Sprintf("%d bytes, first %q", obj.Size(), obj.Bytes()[:5])
		obj.Release() // before answering: the view must be gone when the store closes
		got <- msg
	}()

	copy(b.Bytes(), "large")
	if err := b.Seal(); err != nil { // immutable from here on; wakes the Get
		log.Fatal(err)
	}
	fmt.Println(<-got)

	ref.Drop()
	fmt.Println("objects left:", st.Stats().Objects)
	// Output:
	// 1048576 bytes, first "large"
	// objects left: 0
}

// Stats reports the store's figures: objects, where they live (small ones in the
// Go heap, large ones in the shared-memory arena), pins, and memory pressure.
// With every ref dropped and every view released, Objects, Used and Views are 0.
func ExampleStore_Stats() {
	ctx := context.Background()
	st, err := engine.Open(engine.Config{Capacity: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	small, err := st.Put(ctx, make([]byte, 1<<10)) // ≤ InlineThreshold (100 KiB): Go heap
	if err != nil {
		log.Fatal(err)
	}
	large, err := st.Put(ctx, make([]byte, 4<<20)) // arena
	if err != nil {
		log.Fatal(err)
	}
	obj, err := st.Get(ctx, large)
	if err != nil {
		log.Fatal(err)
	}
	s := st.Stats()
	fmt.Println("objects:", s.Objects, "inline:", s.InlineObjects, "pinned:", s.PinnedObjects)
	fmt.Println("arena bytes used:", trove.HumanBytes(s.Used))

	obj.Release()
	small.Drop()
	large.Drop()
	s = st.Stats()
	fmt.Println("objects:", s.Objects, "used:", s.Used, "views:", s.Views)
	// Output:
	// objects: 2 inline: 1 pinned: 1
	// arena bytes used: 4.0 MiB
	// objects: 0 used: 0 views: 0
}
