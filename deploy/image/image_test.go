package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var (
	staticOnce sync.Once
	staticDir  string
)

// staticBinaries are buildStatic's binaries, built once per test run.
func staticBinaries(t *testing.T, version string) string {
	t.Helper()
	staticOnce.Do(func() { staticDir = buildStatic(t, version) })
	if staticDir == "" {
		t.Fatal("the static binaries were not built")
	}
	return staticDir
}

// buildStatic builds troved, trove and loadgen as make dist does (static,
// stripped, the version stamped in) for this machine into a directory.
func buildStatic(t *testing.T, version string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	dir, err := os.MkdirTemp("", "trove-image-test-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags", "-s -w -X github.com/trovedb/trove/internal/version.stamp="+version,
		"-o", dir+"/", "./cmd/troved", "./cmd/trove", "./tools/loadgen")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestImage builds the image of freshly built static binaries and checks
// it: its file list is exactly /tmp and the three binaries, its entrypoint
// /troved prints the version, its user is not root.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skipf("trove's images are linux/amd64 and linux/arm64, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	const version = testVersion
	bin := staticBinaries(t, testVersion)
	img := filepath.Join(t.TempDir(), "trove.tar")
	if err := run([]string{"build", "-bin", bin, "-platform", "linux/" + runtime.GOARCH, "-version", version, "-o", img}, os.Stdout); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run([]string{"check", img}, &out); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if f := strings.Fields(line); len(f) == 5 && strings.HasPrefix(f[4], "/") {
			names = append(names, f[0]+" "+f[1]+" "+f[4])
		}
	}
	want := []string{"dtrwxrwxrwx 0/0 /tmp", "-rwxr-xr-x 0/0 /troved", "-rwxr-xr-x 0/0 /trove", "-rwxr-xr-x 0/0 /loadgen"}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("the image's files:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range []string{"entrypoint [/troved]", `user "65532:65532"`, `version "` + version + `"`, "entrypoint -version: troved " + version} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("check's report lacks %q", w)
		}
	}

	// The same binaries give the same image, byte for byte.
	again := filepath.Join(t.TempDir(), "again.tar")
	if err := run([]string{"build", "-bin", bin, "-platform", "linux/" + runtime.GOARCH, "-version", version, "-o", again}, os.Stdout); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(again)
	if string(a) != string(b) {
		t.Error("two builds of the same binaries differ")
	}
}

const testVersion = "v0.0.0-image-test"

func TestMain(m *testing.M) {
	code := m.Run()
	if staticDir != "" {
		os.RemoveAll(staticDir)
	}
	os.Exit(code)
}

// TestCheckRefuses: check fails an image that runs as root, whose
// entrypoint is missing, that holds a dynamic binary, or whose entrypoint
// prints another version than its label.
func TestCheckRefuses(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skipf("not linux/amd64 or linux/arm64")
	}
	bin := staticBinaries(t, testVersion)
	good := filepath.Join(t.TempDir(), "good.tar")
	if err := run([]string{"build", "-bin", bin, "-platform", "linux/" + runtime.GOARCH, "-version", testVersion, "-o", good}, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, err := tarball.ImageFromPath(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := os.ReadFile("/bin/sh")
	for _, tc := range []struct {
		name   string
		change func(*v1.ConfigFile)
		extra  map[string][]byte // files added in a second layer
		want   string
	}{
		{"root user", func(c *v1.ConfigFile) { c.Config.User = "" }, nil, "the image runs as root"},
		{"named user", func(c *v1.ConfigFile) { c.Config.User = "nobody" }, nil, "give a numeric uid"},
		{"missing entrypoint", func(c *v1.ConfigFile) { c.Config.Entrypoint = []string{"/trovedd"} }, nil, "entrypoint /trovedd is not in the image"},
		{"another version", func(c *v1.ConfigFile) { c.Config.Labels[versionLabel] = "v9" }, nil, `want the image's version label "v9"`},
		{"a dynamic binary", nil, map[string][]byte{"sh": sh}, "/sh: dynamically linked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := base
			if tc.extra != nil {
				var buf bytes.Buffer
				tw := tar.NewWriter(&buf)
				for n, d := range tc.extra {
					tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: int64(len(d))})
					tw.Write(d)
				}
				tw.Close()
				l, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				if img, err = mutate.AppendLayers(img, l); err != nil {
					t.Fatal(err)
				}
			}
			if tc.change != nil {
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				cf = cf.DeepCopy()
				tc.change(cf)
				if img, err = mutate.ConfigFile(img, cf); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(t.TempDir(), "bad.tar")
			if err := tarball.WriteToFile(p, name.MustParseReference("trove:bad").(name.Tag), img); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := run([]string{"check", p}, &out); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v, want an error containing %q\n%s", err, tc.want, out.String())
			}
		})
	}
}

// TestStaticELF: a dynamically linked binary (this machine's /bin/sh) or
// one of another architecture is refused, by build and by check's test.
func TestStaticELF(t *testing.T) {
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh to test a dynamic binary with")
	}
	if err := staticELF(sh, ""); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("staticELF(/bin/sh): %v, want dynamically linked", err)
	}
	self, err := os.ReadFile(os.Args[0]) // the test binary: static only with CGO_ENABLED=0; its machine is this one's
	if err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if other != "" {
		if err := staticELF(self, other); err == nil || !strings.Contains(err.Error(), "built for") {
			t.Errorf("staticELF(this test, %s): %v, want an architecture mismatch", other, err)
		}
	}
	if err := staticELF([]byte("#!/bin/sh\n"), ""); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("staticELF(a script): %v", err)
	}

	// build refuses a -bin holding a dynamic binary.
	dir := t.TempDir()
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(dir, b), sh, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err = run([]string{"build", "-bin", dir, "-version", "v0", "-o", filepath.Join(dir, "x.tar")}, os.Stdout)
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("build of dynamic binaries: %v, want a refusal naming CGO_ENABLED=0", err)
	}
}
