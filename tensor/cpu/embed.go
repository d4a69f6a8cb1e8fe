package cpu

import (
	"fmt"

	"github.com/minnowml/minnow/tensor"
)

// checkIds returns an error for the first id outside [0, tableRows).
func checkIds(op string, ids []int32, tableRows int) error {
	for r, id := range ids {
		if id < 0 || int(id) >= tableRows {
			return fmt.Errorf("cpu: %s: id %d at position %d outside [0, %d)", op, id, r, tableRows)
		}
	}
	return nil
}

// Gather copies Table[Ids[r]] to Out[r] for every row; it returns an error,
// writing nothing, when an id is out of range, and one wrapping
// tensor.ErrUnsupported for a table other than f32 and f64 or ids other
// than i32.
func (b *Backend) Gather(a *tensor.GatherArgs) error {
	if dt := st(a.Ids).dt; dt != tensor.Int32 {
		return unsupported("gather ids", dt)
	}
	ids := i32(a.Ids)[:a.Rows]
	if err := checkIds("gather", ids, a.TableRows); err != nil {
		return err
	}
	switch dt := st(a.Table).dt; dt {
	case tensor.Float32:
		gatherRun(b, a.Cols, ids, f32(a.Table), f32(a.Out))
	case tensor.Float64:
		gatherRun(b, a.Cols, ids, f64(a.Table), f64(a.Out))
	default:
		return unsupported("gather", dt)
	}
	return nil
}

func gatherRun[T float](b *Backend, cols int, ids []int32, table, out []T) {
	b.parallel(len(ids), cols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			id := int(ids[r])
			copy(out[r*cols:r*cols+cols], table[id*cols:id*cols+cols])
		}
	})
}

// ScatterAdd adds DOut[r] into DTable[Ids[r]] for every row; it returns an
// error, writing nothing, when an id is out of range. Threads split the
// columns, each adding every row's slice of its columns in row order, so
// repeated ids never race and the sums do not depend on the thread count.
// Unsupported dtypes are reported as for Gather.
func (b *Backend) ScatterAdd(a *tensor.GatherArgs) error {
	if dt := st(a.Ids).dt; dt != tensor.Int32 {
		return unsupported("scatter-add ids", dt)
	}
	ids := i32(a.Ids)[:a.Rows]
	if err := checkIds("scatter-add", ids, a.TableRows); err != nil {
		return err
	}
	switch dt := st(a.DTable).dt; dt {
	case tensor.Float32:
		scatterAddRun(b, a.Cols, ids, f32(a.DTable), f32(a.DOut))
	case tensor.Float64:
		scatterAddRun(b, a.Cols, ids, f64(a.DTable), f64(a.DOut))
	default:
		return unsupported("scatter-add", dt)
	}
	return nil
}

func scatterAddRun[T float](b *Backend, cols int, ids []int32, table, dout []T) {
	b.parallel(cols, len(ids), func(lo, hi int) {
		for r, id := range ids {
			dst := table[int(id)*cols+lo : int(id)*cols+hi]
			src := dout[r*cols+lo : r*cols+hi]
			for j, v := range src {
				dst[j] += v
			}
		}
	})
}
