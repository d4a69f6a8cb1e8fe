package cpu

import "github.com/minnowml/minnow/tensor"

// layout is a strided iteration space with up to three operands, with axes
// of size 1 dropped and adjacent axes merged wherever every operand's
// strides allow, so most loops run over one long contiguous axis.
type layout struct {
	rank int
	dims [tensor.MaxRank]int
	st   [3][tensor.MaxRank]int
	ops  int
}

func newLayout(shape []int, strides ...[]int) layout {
	var l layout
	l.ops = len(strides)
	for ax, d := range shape {
		if d == 1 {
			continue
		}
		if l.rank > 0 {
			mergeable := true
			for k, s := range strides {
				if l.st[k][l.rank-1] != s[ax]*d {
					mergeable = false
					break
				}
			}
			if mergeable {
				l.dims[l.rank-1] *= d
				for k, s := range strides {
					l.st[k][l.rank-1] = s[ax]
				}
				continue
			}
		}
		l.dims[l.rank] = d
		for k, s := range strides {
			l.st[k][l.rank] = s[ax]
		}
		l.rank++
	}
	if l.rank == 0 { // a single element
		l.rank, l.dims[0] = 1, 1
	}
	return l
}

// rows returns the number of rows (all axes but the last) and the row length.
func (l *layout) rows() (int, int) {
	n := 1
	for i := 0; i < l.rank-1; i++ {
		n *= l.dims[i]
	}
	return n, l.dims[l.rank-1]
}

// offsets returns each operand's offset of row r.
func (l *layout) offsets(r int) (o [3]int) {
	for ax := l.rank - 2; ax >= 0; ax-- {
		i := r % l.dims[ax]
		r /= l.dims[ax]
		for k := 0; k < l.ops; k++ {
			o[k] += i * l.st[k][ax]
		}
	}
	return o
}

// inner returns each operand's stride along the last axis.
func (l *layout) inner() (s [3]int) {
	for k := 0; k < l.ops; k++ {
		s[k] = l.st[k][l.rank-1]
	}
	return s
}
