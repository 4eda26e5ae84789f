# trove — build, test, benchmark. `make test` is what CI (.ci/run) runs.
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 6s
BENCHTIME ?= 1s
COUNT     ?= 6

.PHONY: all build test test-race test-invariants vet lint fuzz bench bench-redis demo daemon loadgen clean

all: build test

.PHONY: chromium dashboard-screenshots
## chromium: headless Chromium for the dashboard's browser test (Debian's package; the test skips without it).
chromium:
	bash scripts/chromium.sh

## dashboard-screenshots: the browser test, writing its screenshots of each page into docs/.
dashboard-screenshots:
	$(GO) test -count=1 -run '^TestBrowser$$' ./dashboard/ -args -screenshots=$(CURDIR)/docs

build:
	$(GO) build $(PKGS)

## test: vet, the project's lint checks, every test under -race, the invariant build, short fuzz runs,
## the deploy/ module's tests.
test: chromium vet lint test-race test-invariants fuzz test-deploy

vet:
	$(GO) vet $(PKGS)

# lint: project-specific checks (layering, doc.go per package, no log.Fatal in
# libraries, gofmt) live in lint_test.go so they need nothing but Go.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) test -count=1 -run 'TestLint' .

test-race:
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

test-invariants:
	$(GO) test -tags invariants -count=1 -timeout 10m ./alloc/ ./engine/

# fuzz: each target for FUZZTIME (scripts/fuzz.sh runs them one by one and
# re-runs, once, a target that Go 1.26's coordinator fails with no input).
FUZZ_TARGETS := alloc:FuzzAllocFree zerocopy:FuzzParseFrame .:FuzzDecodeValue .:FuzzParseObjectID \
	eviction:FuzzLRU spill:FuzzObjectHeader spill:FuzzSpillFileToken net/ipc:FuzzDecode net/ipc:FuzzServerStream \
	net/quic:FuzzDecode net/quic:FuzzServeStream net/quic:FuzzReadReply \
	fuzz:FuzzMetamorphic \
	net/quic:FuzzReadPacket cluster:FuzzNodeMeta cluster:FuzzSnoop \
	cluster:FuzzDecodeRequest cluster:FuzzDecodeLocateReply \
	cluster:FuzzDecodeListing cluster:FuzzDecodeDropResults swarm:FuzzScheduler \
	internal/batchinfer:FuzzReadPredictions \
	task:FuzzDecodeSubmit task:FuzzDecodeDone task:FuzzDecodeStatus task:FuzzDecodeWorker task:FuzzDecodeCalls task:FuzzDecodeWhere \
	dashboard:FuzzDecodeRequest dashboard:FuzzDecodeReply
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh $(FUZZ_TARGETS)

## bench: the comparisons in bench/ and beside the packages, COUNT runs each,
## summarised with benchstat. The 16 GB spill benchmark runs once, separately.
BENCHSTAT := $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bench:
	mkdir -p bench/out
	$(GO) test -run '^$$' -bench '^Benchmark([^MT]|M[^a]|T[^a])' -benchtime $(BENCHTIME) -count $(COUNT) -timeout 60m ./bench/ | tee bench/out/bench.txt
	$(GO) test -run '^$$' -bench . -benchtime 3x -count $(COUNT) -timeout 30m ./spill/ ./arena/ | tee bench/out/io.txt
	$(GO) test -run '^$$' -bench ManySmallObjectsSpilled -benchtime 1x -count 1 -timeout 30m ./bench/ | tee bench/out/manysmall.txt
	$(BENCHSTAT) bench/out/bench.txt
	$(BENCHSTAT) bench/out/io.txt

## bench-redis: trove through its daemon (another process) against a throwaway
## redis-server on loopback, COUNT runs each; see scripts/bench-redis.sh.
bench-redis:
	GO='$(GO)' COUNT='$(COUNT)' BENCHTIME='$(BENCHTIME)' BENCHSTAT='$(BENCHSTAT)' bash scripts/bench-redis.sh

## bench-kernel: what a 64 MiB Get costs the kernel, counted with eBPF (bytes moved
## by system calls, page faults) for trove, a unix-socket copy and Redis (when
## redis-server is installed); needs root. TestZeroCopyInKernel asserts it in `make test`.
.PHONY: bench-kernel
bench-kernel:
	mkdir -p bench/out
	$(GO) test -run '^$$' -bench '^BenchmarkKernelGet$$' -benchtime $(BENCHTIME) -count $(COUNT) -timeout 30m ./bench/ | tee bench/out/kernel.txt
	$(BENCHSTAT) bench/out/kernel.txt

## bench-netcluster: the broadcast benchmark on a cluster of real network hosts (needs
## root): N troveds in network namespaces, links capped by tbf at NC_RATE, one node puts
## NC_SIZE and the others Get it at once, NC_COUNT runs per N; a table, the JSON the
## simulator compares with, and docs/broadcast.png. See docs/netcluster.md.
NC_NS    ?= 2,4,8,16
NC_SIZE  ?= 256MiB
NC_RATE  ?= 200mbit
NC_COUNT ?= 3
.PHONY: bench-netcluster
bench-netcluster:
	mkdir -p bench/out
	$(GO) run ./tools/netcluster bench -ns $(NC_NS) -size $(NC_SIZE) -rate $(NC_RATE) -count $(NC_COUNT) \
		-json bench/out/netcluster.json -png docs/broadcast.png | tee bench/out/netcluster.txt
	cp bench/out/netcluster.json docs/broadcast.json

## bench-tasks: remote functions (task/) on Ray's shapes (single-client sync and
## async, multi-client 4 x 10,000 on 1 and 3 nodes, 10,000 ref arguments to one
## call, 100k and 1M calls queued on one node), each against a direct Go call in
## the same run and Ray's published figure; COUNT runs each, summarised with
## benchstat. The large shapes run a fixed number of rounds per run (4 and 1).
.PHONY: bench-tasks
bench-tasks:
	mkdir -p bench/out
	$(GO) test -run '^$$' -bench '^BenchmarkTask(Sync|Async|MultiClient)$$' -benchtime $(BENCHTIME) -count $(COUNT) -timeout 30m ./bench/ | tee bench/out/tasks.txt
	$(GO) test -run '^$$' -bench '^BenchmarkTask10kRefArgs$$' -benchtime 4x -count $(COUNT) -timeout 30m ./bench/ | tee -a bench/out/tasks.txt
	$(GO) test -run '^$$' -bench '^BenchmarkTaskQueued$$' -benchtime 1x -count $(COUNT) -timeout 30m ./bench/ | tee -a bench/out/tasks.txt
	$(BENCHSTAT) bench/out/tasks.txt

demo:
	$(GO) run ./cmd/trove demo

## daemon: the node daemon with its defaults; loadgen: a short verified load on an embedded store.
daemon:
	$(GO) run ./cmd/troved

## bin: troved, trove and loadgen as shipped (RELEASE_FLAGS: no symbol table or
## DWARF, no build paths) into bin/; troved stays under 20 MB (TestTrovedSize).
RELEASE_FLAGS := -trimpath -ldflags '-s -w'
.PHONY: bin
bin:
	mkdir -p bin
	$(GO) build $(RELEASE_FLAGS) -o bin/ ./cmd/troved ./cmd/trove ./tools/loadgen

## dist: static release binaries (CGO_ENABLED=0, RELEASE_FLAGS) of troved, trove and
## loadgen for each of DIST_PLATFORMS, with VERSION (git describe) stamped in (trove
## version, troved -version), one .tar.gz per platform and SHA256SUMS, in dist/.
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
DIST_PLATFORMS ?= linux/amd64 linux/arm64
DIST_LDFLAGS   := -s -w -X github.com/trovedb/trove/internal/version.stamp=$(VERSION)
.PHONY: dist
dist:
	rm -rf dist && mkdir -p dist
	set -e; for p in $(DIST_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; d=trove-$(VERSION)-$$os-$$arch; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(DIST_LDFLAGS)' -o dist/$$d/ ./cmd/troved ./cmd/trove ./tools/loadgen; \
		tar -C dist --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -czf dist/$$d.tar.gz $$d; \
	done
	cd dist && sha256sum *.tar.gz */troved */trove */loadgen > SHA256SUMS
	cat dist/SHA256SUMS

## image: the container image of make dist's binaries, FROM scratch, with no Docker
## daemon (deploy/image, go-containerregistry): one docker-archive tarball per platform
## in dist/ (docker/podman load, kind load image-archive, crane push), each checked by
## listing its files (static binaries, entrypoint, non-root user, the version).
IMAGE_PLATFORMS ?= $(DIST_PLATFORMS)
.PHONY: image
image: dist
	set -e; for p in $(IMAGE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		(cd deploy && $(GO) run ./image build -bin ../dist/trove-$(VERSION)-$$os-$$arch -platform $$p -version $(VERSION) \
			-o ../dist/trove-image-$(VERSION)-$$os-$$arch.tar) && \
		(cd deploy && $(GO) run ./image check ../dist/trove-image-$(VERSION)-$$os-$$arch.tar); \
	done

## test-deploy: the deploy/ module (its own go.mod: k8s.io/api and go-containerregistry
## stay out of trove's): the Kubernetes manifests decoded strictly and checked, and the
## image built from freshly built static binaries and checked.
.PHONY: test-deploy
test-deploy:
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

loadgen:
	$(GO) run ./tools/loadgen -embedded -capacity 256MiB -working-set 768MiB -duration 10s

clean:
	rm -rf bench/out dist

## test-loaded: the suite under -race with every core kept busy (scripts/loaded-test.sh).
.PHONY: test-loaded
test-loaded:
	bash scripts/loaded-test.sh -race -count 2 -timeout 20m

## sim: the broadcast model (tools/swarmsim, a simulation, not a measurement): N up
## to 1,000, swarm vs single source, failures, owner load, memberlist's gossip; writes
## bench/out/swarmsim.json and docs/swarmsim.png. -compare checks it against netcluster.
.PHONY: sim
sim:
	mkdir -p bench/out
	$(GO) run ./tools/swarmsim -out bench/out/swarmsim.json -plot docs/swarmsim.png \
		$$(test -f bench/out/netcluster.json && echo -compare bench/out/netcluster.json) | tee bench/out/swarmsim.txt
