package data

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// isPermutation reports whether p holds each of 0..len(p)-1 once.
func isPermutation[T int | int64](p []T) bool {
	seen := make([]bool, len(p))
	for _, x := range p {
		if x < 0 || int(x) >= len(p) || seen[x] {
			return false
		}
		seen[x] = true
	}
	return true
}

func TestShuffle(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 10, 1000} {
		a, b := Shuffle(n, 42), Shuffle(n, 42)
		if !isPermutation(a) || !reflect.DeepEqual(a, b) {
			t.Errorf("n=%d: %v and %v", n, a, b)
		}
	}
	// A fixed seed's order is part of the format of saved runs: it must
	// not change with the Go release or a refactoring.
	if got, want := Shuffle(8, 1), []int{0, 3, 7, 1, 2, 6, 5, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("Shuffle(8, 1) = %v, want %v", got, want)
	}
	if reflect.DeepEqual(Shuffle(100, 1), Shuffle(100, 2)) {
		t.Error("seeds 1 and 2 give the same order")
	}
	// Every position is reachable: over many seeds element 0 lands
	// everywhere.
	hit := make([]int, 10)
	for seed := range uint64(2000) {
		hit[slices.Index(Shuffle(10, seed), 0)]++
	}
	for i, h := range hit {
		if h < 120 || h > 280 {
			t.Errorf("element 0 landed at %d %d times of 2000", i, h)
		}
	}
}

func TestSplit(t *testing.T) {
	xs := make([]int, 100)
	for i := range xs {
		xs[i] = i
	}
	tests := []struct {
		n        int
		frac     float64
		wantVal  int
		wantFail bool
	}{
		{100, 0.1, 10, false},
		{100, 0, 0, false},
		{100, 0.004, 1, false}, // at least one
		{2, 0.9, 1, false},     // at least one left to train on
		{1, 0.5, 0, false},
		{0, 0.5, 0, false},
		{100, 1, 0, true},
		{100, -0.1, 0, true},
	}
	for _, tc := range tests {
		train, val, err := Split(xs[:tc.n], tc.frac, 7)
		if tc.wantFail {
			if err == nil {
				t.Errorf("n=%d frac=%v: no error", tc.n, tc.frac)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(val) != tc.wantVal || len(train)+len(val) != tc.n {
			t.Errorf("n=%d frac=%v: %d train, %d val, want %d val", tc.n, tc.frac, len(train), len(val), tc.wantVal)
		}
		all := append(slices.Clone(train), val...)
		slices.Sort(all)
		if !reflect.DeepEqual(all, xs[:tc.n]) && tc.n > 0 {
			t.Errorf("n=%d: the parts do not partition the input", tc.n)
		}
		if !slices.IsSorted(train) || !slices.IsSorted(val) {
			t.Errorf("n=%d: the parts lost the input order", tc.n)
		}
		train2, val2, _ := Split(xs[:tc.n], tc.frac, 7)
		if !reflect.DeepEqual(train, train2) || !reflect.DeepEqual(val, val2) {
			t.Errorf("n=%d: split not deterministic", tc.n)
		}
	}
	_, v1, _ := Split(xs, 0.2, 1)
	_, v2, _ := Split(xs, 0.2, 2)
	if reflect.DeepEqual(v1, v2) {
		t.Error("seeds 1 and 2 select the same validation set")
	}
}

func TestPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 4, 5, 15, 16, 17, 255, 1000, 4097} {
		for seed := range uint64(3) {
			p := newPermutation(n, seed)
			got := make([]int64, n)
			for i := range n {
				got[i] = int64(p.at(i))
			}
			if !isPermutation(got) {
				t.Fatalf("n=%d seed=%d: not a permutation", n, seed)
			}
			if n >= 16 && slices.IsSorted(got) {
				t.Errorf("n=%d seed=%d: identity order", n, seed)
			}
		}
	}
	// Huge domains work without memory: spot-check distinctness.
	p := newPermutation(1<<40+3, 9)
	seen := map[uint64]bool{}
	for i := range uint64(10000) {
		x := p.at(i)
		if x >= 1<<40+3 || seen[x] {
			t.Fatalf("at(%d) = %d repeats or is out of range", i, x)
		}
		seen[x] = true
	}
}

func TestSamplerResume(t *testing.T) {
	for _, shuffle := range []bool{false, true} {
		const n = 37
		s, err := NewSampler(n, 5, shuffle)
		if err != nil {
			t.Fatal(err)
		}
		var all []int64
		var cursors []Cursor
		for range 4 * n {
			cursors = append(cursors, s.Cursor())
			all = append(all, s.Next())
		}
		// Each epoch visits every item once; shuffled epochs differ.
		for e := range 4 {
			ep := all[e*n : (e+1)*n]
			if !isPermutation(ep) {
				t.Fatalf("shuffle=%v epoch %d is not a permutation", shuffle, e)
			}
			if shuffle != !slices.IsSorted(ep) {
				t.Errorf("shuffle=%v epoch %d sorted=%v", shuffle, e, slices.IsSorted(ep))
			}
		}
		if shuffle && reflect.DeepEqual(all[:n], all[n:2*n]) {
			t.Error("epochs 0 and 1 have the same order")
		}
		// Resuming from any saved cursor, through JSON, continues the
		// same sequence.
		for _, k := range []int{0, 1, n - 1, n, n + 5, 3*n + 2} {
			b, _ := json.Marshal(cursors[k])
			var c Cursor
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			r, _ := NewSampler(n, 5, shuffle)
			if err := r.Seek(c); err != nil {
				t.Fatal(err)
			}
			for i := k; i < len(all); i++ {
				if got := r.Next(); got != all[i] {
					t.Fatalf("shuffle=%v resumed at %d (%s): item %d is %d, want %d", shuffle, k, b, i, got, all[i])
				}
			}
		}
	}
	s, _ := NewSampler(10, 0, true)
	for _, c := range []Cursor{{-1, 0}, {0, -1}, {0, 11}} {
		if err := s.Seek(c); err == nil {
			t.Errorf("Seek(%+v): no error", c)
		}
	}
	if _, err := NewSampler(0, 0, false); err == nil {
		t.Error("NewSampler(0): no error")
	}
}
