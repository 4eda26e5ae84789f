// Package manifests checks Kubernetes manifests offline, as kubeconform
// would against the API's schemas but with no schema download: every
// document is decoded strictly into the k8s.io/api types of its apiVersion
// and kind, so an unknown field, a duplicated field, a value of the wrong
// type, or an apiVersion/kind the API does not have is an error naming the
// file and the document. It then checks what the schemas cannot say about
// trove's manifests (Check): selectors that match their pods' labels, and
// troved's DaemonSet consistent with its ConfigMap (memory limit = capacity
// + headroom, the socket's directory mounted from the host, the probes on
// the HTTP port).
//
// What strict decoding does not check, and the API server would: required
// fields and value rules (names, ranges). The tests run it on
// deploy/kubernetes/ and on broken manifests that must fail.
package manifests
