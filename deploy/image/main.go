package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image's layout.
var (
	binaries   = []string{"troved", "trove", "loadgen"}
	entrypoint = "/troved"
)

const (
	imageUser    = "65532:65532" // non-root; the "nonroot" user of distroless images
	versionLabel = "org.opencontainers.image.version"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("want a command: build or check (see deploy/image/doc.go)")
	}
	switch args[0] {
	case "build":
		fs := flag.NewFlagSet("build", flag.ContinueOnError)
		bin := fs.String("bin", "", "the `DIR` holding the static troved, trove and loadgen (make dist's)")
		platform := fs.String("platform", "linux/amd64", "the binaries' `OS/ARCH`")
		version := fs.String("version", "", "the release's `VERSION` (the label; troved -version must print it)")
		tag := fs.String("tag", "", "the image's `NAME:TAG` in the tarball (default trove:VERSION)")
		outPath := fs.String("o", "", "the docker-archive tarball to write (`FILE`)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *bin == "" || *outPath == "" || *version == "" {
			return errors.New("build: -bin DIR, -version VERSION and -o FILE are required")
		}
		if *tag == "" {
			*tag = "trove:" + strings.ReplaceAll(*version, "+", "_")
		}
		return build(*bin, *platform, *version, *tag, *outPath)
	case "check":
		if len(args) != 2 {
			return errors.New("check: want one image tarball")
		}
		return check(args[1], out)
	}
	return fmt.Errorf("unknown command %q: want build or check", args[0])
}

// build writes the image of the binaries in bin to outPath.
func build(bin, platform, version, tag, outPath string) error {
	osName, arch, ok := strings.Cut(platform, "/")
	if !ok {
		return fmt.Errorf("-platform %q: want OS/ARCH, such as linux/amd64", platform)
	}
	layerTar, err := layerFiles(bin)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = []string{entrypoint}
	cf.Config.User = imageUser
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.Labels = map[string]string{
		versionLabel:                      version,
		"org.opencontainers.image.title":  "trove",
		"org.opencontainers.image.source": "https://github.com/trovedb/trove",
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return err
	}
	return tarball.WriteToFile(outPath, ref, img)
}

// layerFiles is the image's one layer: /tmp and the binaries, owned by
// root, dated the epoch.
func layerFiles(bin string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	for _, b := range binaries {
		data, err := os.ReadFile(filepath.Join(bin, b))
		if err != nil {
			return nil, fmt.Errorf("-bin: %w (make dist builds the binaries)", err)
		}
		if err := staticELF(data, ""); err != nil {
			return nil, fmt.Errorf("%s: %w (build it with CGO_ENABLED=0, as make dist does)", b, err)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: b, Mode: 0o755, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// elfMachines are the ELF machines of the architectures trove ships for.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// staticELF fails unless data is an ELF executable with no interpreter and
// no shared libraries, for arch when it is not "".
func staticELF(data []byte, arch string) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF binary: %w", err)
	}
	defer f.Close()
	if arch != "" {
		want, ok := elfMachines[arch]
		if !ok {
			return fmt.Errorf("architecture %q: trove ships amd64 and arm64", arch)
		}
		if f.Machine != want {
			return fmt.Errorf("built for %v, the image is %s (%v)", f.Machine, arch, want)
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked: it names an interpreter (PT_INTERP), which a FROM scratch image lacks")
		}
	}
	libs, err := f.ImportedLibraries()
	if err == nil && len(libs) > 0 {
		return fmt.Errorf("dynamically linked: it needs %v", libs)
	}
	return nil
}

// file is one file of an image, as check lists it.
type file struct {
	hdr  *tar.Header
	data []byte // regular files with an exec bit only
}

// check lists the image's files and checks them (doc.go).
func check(imagePath string, out io.Writer) error {
	img, err := tarball.ImageFromPath(imagePath, nil)
	if err != nil {
		return fmt.Errorf("%s: not a docker-archive image: %w", imagePath, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	files, err := imageFiles(img)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s/%s, entrypoint %v, user %q, version %q\n", imagePath, cf.OS, cf.Architecture, cf.Config.Entrypoint, cf.Config.User, cf.Config.Labels[versionLabel])
	for _, f := range files {
		h := f.hdr
		fmt.Fprintf(out, "%s %d/%d %10d %s /%s\n", h.FileInfo().Mode(), h.Uid, h.Gid, h.Size, h.ModTime.UTC().Format(time.DateOnly), strings.TrimSuffix(h.Name, "/"))
	}

	var errs []error
	if uid, _, _ := strings.Cut(cf.Config.User, ":"); uid == "" || uid == "0" || uid == "root" {
		errs = append(errs, fmt.Errorf("user %q: the image runs as root; want a non-root uid (%s)", cf.Config.User, imageUser))
	} else if _, err := strconv.Atoi(uid); err != nil {
		errs = append(errs, fmt.Errorf("user %q: a FROM scratch image has no /etc/passwd; give a numeric uid", cf.Config.User))
	}
	if len(cf.Config.Entrypoint) == 0 {
		errs = append(errs, errors.New("no entrypoint"))
	}
	var entry *file
	for i, f := range files {
		name := "/" + strings.TrimPrefix(path.Clean(f.hdr.Name), "/")
		if len(cf.Config.Entrypoint) > 0 && name == cf.Config.Entrypoint[0] {
			entry = &files[i]
		}
		if f.data != nil {
			if err := staticELF(f.data, cf.Architecture); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	switch {
	case len(cf.Config.Entrypoint) == 0:
	case entry == nil:
		errs = append(errs, fmt.Errorf("entrypoint %s is not in the image", cf.Config.Entrypoint[0]))
	case entry.data == nil:
		errs = append(errs, fmt.Errorf("entrypoint %s is not an executable file", cf.Config.Entrypoint[0]))
	case cf.OS == runtime.GOOS && cf.Architecture == runtime.GOARCH:
		if err := runVersion(entry.data, cf.Config.Labels[versionLabel], out); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// imageFiles reads every layer's files, in order (a later layer's file
// replaces an earlier one's; trove's image has one layer).
func imageFiles(img v1.Image) ([]file, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var files []file
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return nil, fmt.Errorf("a layer's tar: %w", err)
			}
			f := file{hdr: h}
			if h.Typeflag == tar.TypeReg && h.Mode&0o111 != 0 {
				if f.data, err = io.ReadAll(tr); err != nil {
					rc.Close()
					return nil, err
				}
			}
			files = slices.DeleteFunc(files, func(g file) bool { return path.Clean(g.hdr.Name) == path.Clean(h.Name) })
			files = append(files, f)
		}
		rc.Close()
	}
	return files, nil
}

// runVersion runs the entrypoint's -version and checks it prints want.
func runVersion(bin []byte, want string, out io.Writer) error {
	dir, err := os.MkdirTemp("", "trove-image-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "entrypoint")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		return err
	}
	got, err := exec.Command(p, "-version").Output()
	if err != nil {
		return fmt.Errorf("the entrypoint's -version: %w", err)
	}
	fmt.Fprintf(out, "entrypoint -version: %s", got)
	if fields := strings.Fields(string(got)); len(fields) != 2 || fields[1] != want {
		return fmt.Errorf("the entrypoint's -version printed %q, want the image's version label %q", strings.TrimSpace(string(got)), want)
	}
	return nil
}
