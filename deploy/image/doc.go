// Command image builds trove's container image from the static release
// binaries, with no Docker daemon and no base image, and checks an image's
// contents:
//
//	go run ./image build -bin DIR -platform linux/amd64 -version V -tag trove:V -o trove.tar
//	go run ./image check trove.tar
//
// build writes a docker-archive tarball (docker load, podman load, kind load
// image-archive, crane push read it) of one layer FROM scratch: /troved,
// /trove and /loadgen from -bin, and an empty /tmp (mode 1777: troved's
// default socket and spill directory are under it). Entrypoint /troved,
// PATH=/ (kubectl exec POD -- trove status), user 65532:65532 (non-root),
// the version in the org.opencontainers.image.version label. Every file's
// time is the Unix epoch, its owner root: the same binaries give the same
// image, byte for byte.
//
// check lists the image's files (like tar tv) and fails unless the
// entrypoint is one of them and executable, the user is not root, every
// executable is a static ELF binary (no interpreter, no shared libraries)
// for the image's architecture, and, when that architecture is this
// machine's, the entrypoint's -version prints the image's version label.
//
// go-containerregistry (what ko and crane are built on) writes the image:
// ko would also build the Go binaries, but its build is not make dist's
// (its own flags and paths), and the image should hold exactly the
// binaries that ship.
package main
