module github.com/trovedb/trove

go 1.26.0

require (
	github.com/cockroachdb/datadriven v1.0.3
	github.com/fxamacker/cbor/v2 v2.10.0
	github.com/google/btree v1.1.3
	golang.org/x/sys v0.49.0
)

require (
	github.com/pmezard/go-difflib v1.0.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
)
