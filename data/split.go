package data

import (
	"fmt"
	"math"
	"math/bits"
)

// rng is SplitMix64, spelled out here rather than taken from math/rand so
// that shuffles, splits and generated problems stay the same across Go
// releases: a checkpoint's data order must survive a toolchain upgrade.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) uint64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// mix64 is SplitMix64's finaliser, a bijective 64-bit hash.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a uniform value in [0, n), n > 0, by Lemire's
// multiply-and-reject, which has no modulo bias.
func (r *rng) intn(n uint64) uint64 {
	hi, lo := bits.Mul64(r.uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.uint64(), n)
		}
	}
	return hi
}

// between returns a uniform value in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + int(r.intn(uint64(hi-lo+1))) }

// Shuffle returns a permutation of 0..n-1 determined by seed alone (a
// Fisher–Yates shuffle driven by SplitMix64), the same on every platform
// and Go release. It panics when n is negative, a programmer error.
func Shuffle(n int, seed uint64) []int {
	if n < 0 {
		panic(fmt.Sprintf("data: Shuffle of negative length %d", n))
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := newRNG(seed)
	for i := n - 1; i > 0; i-- {
		j := int(r.intn(uint64(i + 1)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// validCount returns how many of n items a validation fraction takes:
// round(frac·n), but at least one and leaving at least one for training
// when frac > 0 and n ≥ 2, so that a small data set still gets both sides.
func validCount(n int64, frac float64) int64 {
	if frac == 0 || n < 2 {
		return 0
	}
	v := int64(math.Round(frac * float64(n)))
	return min(max(v, 1), n-1)
}

func checkFraction(frac float64) error {
	if !(frac >= 0 && frac < 1) {
		return fmt.Errorf("data: validation fraction %v outside [0, 1)", frac)
	}
	return nil
}

// Split divides examples into a training and a validation set: the
// validation set is a seeded random selection of round(valFraction·n)
// examples (at least one on each side when valFraction > 0 and n ≥ 2).
// Both sets keep the input order, so a split does not also shuffle; use
// Shuffle or a Sampler for that. The same seed always selects the same
// examples. It returns an error when valFraction is outside [0, 1).
func Split[T any](examples []T, valFraction float64, seed uint64) (train, val []T, err error) {
	if err := checkFraction(valFraction); err != nil {
		return nil, nil, err
	}
	n := len(examples)
	nv := int(validCount(int64(n), valFraction))
	inVal := make([]bool, n)
	for _, i := range Shuffle(n, seed)[:nv] {
		inVal[i] = true
	}
	train = make([]T, 0, n-nv)
	val = make([]T, 0, nv)
	for i, ex := range examples {
		if inVal[i] {
			val = append(val, ex)
		} else {
			train = append(train, ex)
		}
	}
	return train, val, nil
}

// feistelRounds is enough rounds for a Feistel network over a hash round
// function to look random for shuffling purposes.
const feistelRounds = 6

// permutation is a pseudo-random permutation of [0, n) computed one index
// at a time: a balanced Feistel network over the smallest even power of two
// covering n, cycle-walked into range. It needs O(1) memory however many
// items there are, so a corpus with billions of windows can be shuffled
// and a resumed run can jump straight to any position.
type permutation struct {
	n    uint64
	half uint
	mask uint64
	keys [feistelRounds]uint64
}

func newPermutation(n, seed uint64) permutation {
	h := uint(1)
	for h < 32 && uint64(1)<<(2*h) < n {
		h++
	}
	p := permutation{n: n, half: h, mask: 1<<h - 1}
	r := newRNG(seed)
	for i := range p.keys {
		p.keys[i] = r.uint64()
	}
	return p
}

// at returns the item at position i < n. Walking the cycle of the
// bijection on the covering domain until it lands below n yields a
// bijection on [0, n); the domain is at most 4n, so few steps are needed.
func (p *permutation) at(i uint64) uint64 {
	x := i
	for {
		l, r := x>>p.half, x&p.mask
		for _, k := range p.keys {
			l, r = r, l^(mix64(r^k)&p.mask)
		}
		x = l<<p.half | r
		if x < p.n {
			return x
		}
	}
}

// Cursor is a position in an endless, epoch-by-epoch pass over items:
// Index is the next position in epoch Epoch's order. It is plain data, so a
// checkpoint stores it as JSON and a resumed Sampler or Stream Seeks to it.
type Cursor struct {
	Epoch int64 `json:"epoch"`
	Index int64 `json:"index"`
}

// Sampler yields item indices 0..n-1 epoch after epoch, in a fresh seeded
// order each epoch when shuffling (else in order). Its Cursor records the
// position, and a Sampler that Seeks to a saved Cursor yields exactly what
// the original would have yielded next.
type Sampler struct {
	n       int64
	seed    uint64
	shuffle bool
	cur     Cursor
	perm    permutation // the order of epoch cur.Epoch
}

// NewSampler returns a Sampler over n items at the start of epoch 0. It
// returns an error when n is not positive.
func NewSampler(n int64, seed uint64, shuffle bool) (*Sampler, error) {
	if n <= 0 {
		return nil, fmt.Errorf("data: sampler over %d items", n)
	}
	s := &Sampler{n: n, seed: seed, shuffle: shuffle}
	s.setEpoch(0)
	return s, nil
}

func (s *Sampler) setEpoch(e int64) {
	s.cur = Cursor{Epoch: e}
	if s.shuffle {
		s.perm = newPermutation(uint64(s.n), mix64(s.seed^mix64(uint64(e)+0x632be59bd9b4e019)))
	}
}

// Len returns the number of items per epoch.
func (s *Sampler) Len() int64 { return s.n }

// Cursor returns the position of the next item.
func (s *Sampler) Cursor() Cursor { return s.cur }

// Seek moves to the position c. It returns an error when c is negative or
// past the end of an epoch, as a cursor saved over another data set can be.
func (s *Sampler) Seek(c Cursor) error {
	if c.Epoch < 0 || c.Index < 0 || c.Index > s.n {
		return fmt.Errorf("data: cursor epoch %d index %d outside epochs of %d items", c.Epoch, c.Index, s.n)
	}
	s.setEpoch(c.Epoch)
	s.cur.Index = c.Index
	return nil
}

// Next returns the next item index and advances, moving to the next epoch
// after the last item of one.
func (s *Sampler) Next() int64 {
	if s.cur.Index == s.n {
		s.setEpoch(s.cur.Epoch + 1)
	}
	i := s.cur.Index
	s.cur.Index++
	if s.shuffle {
		return int64(s.perm.at(uint64(i)))
	}
	return i
}
