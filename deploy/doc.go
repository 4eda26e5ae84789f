// Package deploy holds what runs trove beyond one machine, as its own Go
// module so that its heavy dependencies (k8s.io/api, go-containerregistry)
// stay out of trove's module and binaries:
//
//   - kubernetes/: the manifests (kubectl apply -f deploy/kubernetes/),
//     checked by package manifests;
//   - image/: the program that builds troved's container image from the
//     static binaries, with no Docker daemon, and checks an image's files;
//   - make-certs-secret.sh: the cluster's credentials as a Secret.
//
// docs/kubernetes.md is the guide. This package has no code of its own.
package deploy
