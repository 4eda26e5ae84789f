package trove_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"
	"unsafe"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/zerocopy"
)

// openExampleStore opens a small in-process store for an example. Any
// trove.Store works the same way: an ipc.Client of the node's daemon, too.
func openExampleStore() *engine.Store {
	st, err := engine.Open(engine.Config{Capacity: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	return st
}

// Point is a value the examples store.
type Point struct {
	X, Y  int
	Label string
}

// PutValue stores a Go value (encoded as CBOR); GetValue decodes a copy of it,
// which owns its memory, so there is no view to release.
func ExamplePutValue() {
	ctx := context.Background()
	st := openExampleStore()
	defer st.Close()

	ref, err := trove.PutValue(ctx, st, Point{X: 3, Y: 4, Label: "p"})
	if err != nil {
		log.Fatal(err)
	}
	p, err := trove.GetValue[Point](ctx, st, ref)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", p)

	ref.Drop()
	fmt.Println("objects left:", st.Stats().Objects)
	// Output:
	// {X:3 Y:4 Label:p}
	// objects left: 0
}

// Doc holds a ref to another object: PutValue records it, so the inner object
// lives as long as the outer one.
type Doc struct {
	Title string
	Body  trove.Ref
}

// A ref nested in a value keeps its object alive: the caller may drop its own
// handle to the inner object as soon as the outer one holds it. GetValue hands
// back nested refs as live handles, which the caller drops when done.
func ExamplePutValue_nestedRefs() {
	ctx := context.Background()
	st := openExampleStore()
	defer st.Close()

	body, err := st.Put(ctx, []byte("the body"))
	if err != nil {
		log.Fatal(err)
	}
	doc, err := trove.PutValue(ctx, st, Doc{Title: "notes", Body: body})
	if err != nil {
		log.Fatal(err)
	}
	body.Drop() // the stored Doc still holds the body
	fmt.Println("objects after dropping the body's ref:", st.Stats().Objects)

	d, err := trove.GetValue[Doc](ctx, st, doc)
	if err != nil {
		log.Fatal(err)
	}
	obj, err := st.Get(ctx, d.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s\n", d.Title, obj.Bytes())
	obj.Release()
	d.Body.Drop()

	doc.Drop() // the last handle: the Doc is freed, and with it the body
	fmt.Println("objects left:", st.Stats().Objects)
	// Output:
	// objects after dropping the body's ref: 2
	// notes: the body
	// objects left: 0
}

// Tensors (and a top-level numeric slice) are stored out-of-band, 64-byte
// aligned, and ViewValue reads them in place, read-only, like a numpy array in
// Ray's object store: no byte of the data is copied. The view is valid until
// the returned Object is released.
func ExampleViewValue_tensor() {
	ctx := context.Background()
	st := openExampleStore()
	defer st.Close()

	data := make([]float32, 256*256) // 256 KiB: it lives in shared memory
	for i := range data {
		data[i] = float32(i)
	}
	t, err := zerocopy.NewTensor([]int{256, 256}, data)
	if err != nil {
		log.Fatal(err)
	}
	ref, err := trove.PutValue(ctx, st, t)
	if err != nil {
		log.Fatal(err)
	}

	view, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, st, ref)
	if err != nil {
		log.Fatal(err)
	}
	vals, err := zerocopy.TensorValues[float32](view)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(view.DType(), view.Shape(), vals[1], vals[len(vals)-1])
	start := uintptr(unsafe.Pointer(unsafe.SliceData(obj.Bytes())))
	p := uintptr(unsafe.Pointer(&vals[0]))
	fmt.Println("read in place:", p >= start && p < start+uintptr(obj.Size()))

	obj.Release() // vals must not be used after this
	ref.Drop()
	fmt.Println("objects left:", st.Stats().Objects)
	// Output:
	// float32 [256 256] 1 65535
	// read in place: true
	// objects left: 0
}

// Wait returns as soon as numReturns of the refs are ready, as ray.wait does:
// the ready and the pending refs, each in input order.
func ExampleStore_Wait() {
	ctx := context.Background()
	st := openExampleStore()
	defer st.Close()

	// Two futures: objects created but not sealed yet.
	slow, err := st.Create(ctx, 4)
	if err != nil {
		log.Fatal(err)
	}
	fast, err := st.Create(ctx, 4)
	if err != nil {
		log.Fatal(err)
	}
	refs := []trove.Ref{slow.Ref(), fast.Ref()}
	name := map[trove.ObjectID]string{slow.Ref().ID(): "slow", fast.Ref().ID(): "fast"}

	copy(fast.Bytes(), "done")
	if err := fast.Seal(); err != nil {
		log.Fatal(err)
	}
	ready, pending, err := st.Wait(ctx, refs, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready:", name[ready[0].ID()], "pending:", name[pending[0].ID()])

	// With a deadline, Wait returns what was ready by then.
	tctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	ready, _, err = st.Wait(tctx, refs, 2)
	cancel()
	fmt.Println(len(ready), "ready, timed out:", errors.Is(err, trove.ErrGetTimeout))

	slow.Abort()
	for _, r := range refs {
		r.Drop()
	}
	fmt.Println("objects left:", st.Stats().Objects)
	// Output:
	// ready: fast pending: slow
	// 1 ready, timed out: true
	// objects left: 0
}

// A Get of an object that is still pending blocks until its creator seals it or
// the context ends: Ray's get(timeout=...) is a context deadline. The error is
// ErrGetTimeout, which also matches context.DeadlineExceeded.
func ExampleErrGetTimeout() {
	ctx := context.Background()
	st := openExampleStore()
	defer st.Close()

	b, err := st.Create(ctx, 1<<20) // a future: nobody seals it in time
	if err != nil {
		log.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = st.Get(tctx, b.Ref())
	fmt.Println(errors.Is(err, trove.ErrGetTimeout), errors.Is(err, context.DeadlineExceeded))

	b.Abort() // Gets of it, now and later, fail with ErrObjectAborted
	_, err = st.Get(ctx, b.Ref())
	fmt.Println(errors.Is(err, trove.ErrObjectAborted))
	b.Ref().Drop()
	fmt.Println("objects left:", st.Stats().Objects)
	// Output:
	// true true
	// true
	// objects left: 0
}
