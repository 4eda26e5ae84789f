package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one document of a manifest, decoded.
type Object struct {
	File  string // the file it came from
	Index int    // its place in the file, from 1
	Kind  string // its kind: "DaemonSet", "Service"...
	Obj   runtime.Object
}

func (o Object) String() string { return fmt.Sprintf("%s (document %d, %s)", o.File, o.Index, o.Kind) }

// The API groups the manifests may use. A kind outside them is an error
// (add its group's AddToScheme here when trove's manifests need it).
var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// Decode decodes every document of the YAML stream r (documents separated
// by "---"; comments-only documents are skipped), strictly: an unknown or
// duplicated field, a wrong type, or an apiVersion and kind the API does
// not define is an error naming name and the document.
func Decode(name string, r io.Reader) ([]Object, error) {
	var objs []Object
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for i := 1; ; i++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: not YAML: %w", name, i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: not YAML: %w", name, i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			i-- // comments only: not a document kubectl counts
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			what := "does not match the Kubernetes API's types"
			if runtime.IsStrictDecodingError(err) {
				what = "has a field the Kubernetes API does not define, or one twice"
			} else if runtime.IsNotRegisteredError(err) || runtime.IsMissingKind(err) || runtime.IsMissingVersion(err) {
				what = "is not a kind of the Kubernetes API groups trove's manifests use (core, apps, batch, policy, rbac)"
			}
			return nil, fmt.Errorf("%s: document %d %s: %w", name, i, what, err)
		}
		objs = append(objs, Object{File: name, Index: i, Kind: gvk.Kind, Obj: obj})
	}
}

// DecodeDir decodes the manifests kubectl apply -f dir would read: the
// files of dir (not its subdirectories) named *.yaml, *.yml or *.json, in
// name order.
func DecodeDir(dir string) ([]Object, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var objs []Object
	for _, e := range ents {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || !slices.Contains([]string{".yaml", ".yml", ".json"}, ext) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		o, err := Decode(path, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%s: no manifests (*.yaml, *.yml, *.json)", dir)
	}
	return objs, nil
}
