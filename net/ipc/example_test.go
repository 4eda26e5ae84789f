package ipc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// A client of the node's daemon has the store's method set. Here the daemon runs
// in the example's own process, on a socket in a temporary directory; in
// production it is cmd/troved and clients Dial(ipc.DefaultSocket()).
//
// A small object travels inline in the messages; a large one is written straight
// into the daemon's shared memory and read there in place, at the same arena
// offset the daemon holds it at.
func ExampleDial() {
	ctx := context.Background()

	// The daemon: a store, a socket, a server.
	st, err := engine.Open(engine.Config{Capacity: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	dir, err := os.MkdirTemp("", "trove-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "troved.sock")
	ln, err := ipc.Listen(sock)
	if err != nil {
		log.Fatal(err)
	}
	srv := ipc.NewServer(st, ipc.ServerConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// The client.
	c, err := ipc.Dial(sock)
	if err != nil {
		log.Fatal(err)
	}
	for _, data := range [][]byte{[]byte("small"), make([]byte, 1<<20)} {
		ref, err := c.Put(ctx, data)
		if err != nil {
			log.Fatal(err)
		}
		obj, err := c.Get(ctx, ref)
		if err != nil {
			log.Fatal(err)
		}
		_, shared := c.ArenaOffset(obj)
		fmt.Printf("%d bytes, in shared memory: %v\n", obj.Size(), shared)
		obj.Release()
		ref.Drop()
	}
	// Releases reach the daemon in batches; Flush waits until it has seen them.
	if err := c.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("objects left in the daemon:", st.Stats().Objects)
	c.Close()

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("served until shutdown:", errors.Is(<-served, ipc.ErrServerClosed))
	// Output:
	// 5 bytes, in shared memory: false
	// 1048576 bytes, in shared memory: true
	// objects left in the daemon: 0
	// served until shutdown: true
}
