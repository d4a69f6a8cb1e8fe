module github.com/minnowml/minnow/interop/gorgonia

go 1.26.0

require (
	github.com/minnowml/minnow v0.0.0
	gorgonia.org/tensor v0.9.24
)

// gorgonia.org/tensor v0.9.24 pulls in assume-no-moving-gc v0.0.0-20220617031537,
// whose init panics on Go 1.20 and later, so every binary linking gorgonia dies
// at start-up under Go 1.26 (gorgonia issue #523). This 2023 version instead
// asks the runtime (runtime.heapObjectsCanMove) and panics only if heap objects
// can move. Keep this pin until gorgonia requires a version at least this new.
require go4.org/unsafe/assume-no-moving-gc v0.0.0-20231121144256-b99613f794b6 // indirect

require (
	github.com/apache/arrow/go/arrow v0.0.0-20201229220542-30ce2eb5d4dc // indirect
	github.com/chewxy/hm v1.0.0 // indirect
	github.com/chewxy/math32 v1.0.8 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/golang/protobuf v1.4.3 // indirect
	github.com/google/flatbuffers v1.12.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/xtgo/set v1.0.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/xerrors v0.0.0-20200804184101-5ec99f83aff1 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
	google.golang.org/protobuf v1.25.0 // indirect
	gorgonia.org/vecf32 v0.9.0 // indirect
	gorgonia.org/vecf64 v0.9.0 // indirect
)

replace github.com/minnowml/minnow => ../..
