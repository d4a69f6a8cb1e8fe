package cpu

import (
	"math"

	"github.com/minnowml/minnow/tensor"
)

// Dropout sets Y = X*keep/(1-P). Element i is kept when a splitmix64-style
// hash of (Seed, i) is at least P*2^64, so the mask depends on neither the
// thread count nor the call, and the gradient reruns Dropout on DY with the
// same seed. P <= 0 copies X; P >= 1 zeroes Y. Y may equal X. It returns an
// error wrapping tensor.ErrUnsupported for dtypes other than f32 and f64.
func (b *Backend) Dropout(a *tensor.DropoutArgs) error {
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		dropoutRun(b, a, f32(a.X)[:a.N], f32(a.Y)[:a.N])
	case tensor.Float64:
		dropoutRun(b, a, f64(a.X)[:a.N], f64(a.Y)[:a.N])
	default:
		return unsupported("dropout", dt)
	}
	return nil
}

const golden = 0x9e3779b97f4a7c15

// mix64 is the splitmix64 finaliser: a bijection of uint64 whose outputs for
// consecutive inputs look independent.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// DropoutKeep reports whether element i survives dropout with probability p
// under seed: the mask the Dropout kernel applies, exposed so other
// backends and tests can reproduce it.
func DropoutKeep(seed uint64, p float64, i int) bool {
	switch {
	case p <= 0:
		return true
	case p >= 1:
		return false
	}
	return mix64(mix64(seed+golden)+uint64(i)*golden) >= dropThreshold(p)
}

// dropThreshold returns P*2^64 as an integer, for 0 < p < 1.
func dropThreshold(p float64) uint64 {
	return uint64(math.Ldexp(p, 64))
}

func dropoutRun[T float](b *Backend, a *tensor.DropoutArgs, x, y []T) {
	p := a.P
	switch {
	case p <= 0:
		copy(y, x)
		return
	case p >= 1:
		clear(y)
		return
	}
	thr := dropThreshold(p)
	key := mix64(a.Seed + golden)
	scale := T(1 / (1 - p))
	b.parallel(len(y), 4, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if mix64(key+uint64(i)*golden) >= thr {
				y[i] = x[i] * scale
			} else {
				y[i] = 0
			}
		}
	})
}
