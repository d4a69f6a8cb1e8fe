package tensor_test

import (
	"errors"
	"math"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

// nnIDs returns an Int32 tensor (ids, targets, positions) on be.
func nnIDs(b tensor.Backend, v []int32, shape ...int) *tensor.Tensor {
	return tensor.From(b, tensor.Int32, v, shape...)
}

// nnConst returns a float64 tensor of normal samples that needs no grad.
func nnConst(seed uint64, shape ...int) *tensor.Tensor {
	return tensor.Randn(be, tensor.Float64, tensor.NewRNG(seed), 1, shape...)
}

func TestGradNN(t *testing.T) {
	un := func(f func(x *tensor.Tensor) *tensor.Tensor) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0]) }
	}
	targets := nnIDs(be, []int32{4, -100, 0, 2, 7, 3}, 2, 3) // -100 and 7 are ignored
	ce := func(mean bool) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor {
			per, m := tensor.CrossEntropy(in[0], in[1])
			if mean {
				return m
			}
			return per
		}
	}
	pos := nnIDs(be, []int32{0, 5, 2, 17, 3, 1}, 2, 3)
	rope := func(half bool) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor { return in[0].RoPE(in[1], in[2], half) }
	}
	freqs := func(rot int) *tensor.Tensor { return tensor.RoPEFreqs(be, tensor.Float64, rot, 100) }
	runCases(t, []gradCase{
		{"softmax", un((*tensor.Tensor).Softmax), []*tensor.Tensor{param(1, 2, 5)}},
		{"softmax-transposed-view", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Transpose(0, 1).Softmax() }),
			[]*tensor.Tensor{param(2, 4, 3)}},
		{"log-softmax", un((*tensor.Tensor).LogSoftmax), []*tensor.Tensor{param(3, 2, 3, 4)}},
		{"cross-entropy-per-token", ce(false), []*tensor.Tensor{param(4, 2, 3, 5), targets}},
		{"cross-entropy-mean", ce(true), []*tensor.Tensor{param(5, 2, 3, 5), targets}},
		{"cross-entropy-mean-1d", ce(true), []*tensor.Tensor{param(6, 4, 6), nnIDs(be, []int32{5, 0, -100, 2})}},
		{"rmsnorm", func(in []*tensor.Tensor) *tensor.Tensor { return in[0].RMSNorm(in[1], 1e-5) },
			[]*tensor.Tensor{param(7, 3, 6), param(8, 6)}},
		{"layernorm", func(in []*tensor.Tensor) *tensor.Tensor { return in[0].LayerNorm(in[1], in[2], 1e-5) },
			[]*tensor.Tensor{param(9, 2, 2, 5), param(10, 5), param(11, 5)}},
		{"layernorm-no-bias", func(in []*tensor.Tensor) *tensor.Tensor { return in[0].LayerNorm(in[1], nil, 1e-5) },
			[]*tensor.Tensor{param(12, 3, 5), param(13, 5)}},
		{"rope-adjacent", rope(false), []*tensor.Tensor{param(14, 2, 3, 2, 4), pos, freqs(4)}},
		{"rope-half-split", rope(true), []*tensor.Tensor{param(15, 2, 3, 2, 4), pos, freqs(4)}},
		{"rope-adjacent-partial", rope(false), []*tensor.Tensor{param(16, 2, 3, 2, 6), pos, freqs(4)}},
		{"rope-half-split-partial", rope(true), []*tensor.Tensor{param(17, 2, 3, 2, 6), pos, freqs(4)}},
		{"embedding-repeated-ids", func(in []*tensor.Tensor) *tensor.Tensor { return tensor.Embedding(in[0], in[1]) },
			[]*tensor.Tensor{param(18, 5, 3), nnIDs(be, []int32{1, 4, 1, 0, 4, 4}, 2, 3)}},
		{"swiglu", func(in []*tensor.Tensor) *tensor.Tensor { return tensor.SwiGLU(in[0], in[1]) },
			[]*tensor.Tensor{param(19, 3, 4), param(20, 3, 4)}},
		{"dropout", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Dropout(0.3, 99) }),
			[]*tensor.Tensor{param(21, 4, 5)}},
	})
}

// nnRefSoftmax returns the softmax (or log-softmax) of each row in float64.
func nnRefSoftmax(x []float64, cols int, log bool) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x)/cols; r++ {
		row := x[r*cols : (r+1)*cols]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - m)
		}
		for j, v := range row {
			if log {
				out[r*cols+j] = v - m - math.Log(s)
			} else {
				out[r*cols+j] = math.Exp(v-m) / s
			}
		}
	}
	return out
}

// nnClose fails when any |got-want| exceeds tol*(1+|want|).
func nnClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
			t.Fatalf("%s: element %d is %.10g, want %.10g", what, i, got[i], want[i])
		}
	}
}

func TestSoftmaxValues(t *testing.T) {
	b3 := cpu.New(3)
	for _, dt := range []tensor.DType{tensor.Float64, tensor.Float32} {
		tol := 1e-8 // the fast Exp's own error
		if dt == tensor.Float32 {
			tol = 1e-6
		}
		// 40 rows of 500 are enough work to run in parallel.
		const rows, cols = 40, 500
		x := tensor.Randn(b3, dt, tensor.NewRNG(1), 3, rows, cols)
		host := x.Float64s()
		y := x.Softmax().Float64s()
		nnClose(t, dt.String()+" softmax", y, nnRefSoftmax(host, cols, false), tol)
		for r := 0; r < rows; r++ {
			var s float64
			for _, v := range y[r*cols : (r+1)*cols] {
				s += v
			}
			if math.Abs(s-1) > 1e-5 {
				t.Fatalf("%s: row %d sums to %g", dt, r, s)
			}
		}
		nnClose(t, dt.String()+" log-softmax", x.LogSoftmax().Float64s(), nnRefSoftmax(host, cols, true), tol)
	}
	// Large logits must not overflow.
	x := tensor.From(be, tensor.Float32, []float32{1000, 1001, 999}, 1, 3)
	nnClose(t, "large logits", x.Softmax().Float64s(), nnRefSoftmax([]float64{1000, 1001, 999}, 3, false), 1e-6)
}

func TestCrossEntropyValues(t *testing.T) {
	b3 := cpu.New(3)
	const rows, cols = 6, 3000
	tg := []int32{17, -100, 2999, 0, 3000, 1234} // -100 and 3000 are ignored
	for _, dt := range []tensor.DType{tensor.Float64, tensor.Float32} {
		tol := 1e-8 // the fast Exp's own error
		if dt == tensor.Float32 {
			tol = 2e-6
		}
		logits := tensor.Randn(b3, dt, tensor.NewRNG(2), 4, 2, rows/2, cols).SetRequiresGrad(true)
		host := logits.Float64s()
		per, mean := tensor.CrossEntropy(logits, nnIDs(b3, tg, 2, rows/2))
		if got := per.Shape(); len(got) != 2 || got[0] != 2 || got[1] != rows/2 {
			t.Fatalf("per-token shape %v", got)
		}
		if mean.Rank() != 0 {
			t.Fatalf("mean shape %v, want []", mean.Shape())
		}
		want := make([]float64, rows)
		var sum float64
		count := 0
		lsm := nnRefSoftmax(host, cols, true)
		for r, c := range tg {
			if c < 0 || c >= cols {
				continue
			}
			want[r] = -lsm[r*cols+int(c)] // logsumexp - logit
			sum += want[r]
			count++
		}
		nnClose(t, dt.String()+" per-token", per.Retain().Float64s(), want, tol)
		nnClose(t, dt.String()+" mean", []float64{mean.Item()}, []float64{sum / float64(count)}, tol)

		// d mean / d logits = (softmax - onehot) / count on counted rows.
		mean.Backward()
		sm := nnRefSoftmax(host, cols, false)
		wantG := make([]float64, rows*cols)
		for r, c := range tg {
			if c < 0 || c >= cols {
				continue
			}
			for j := 0; j < cols; j++ {
				wantG[r*cols+j] = sm[r*cols+j] / float64(count)
			}
			wantG[r*cols+int(c)] -= 1 / float64(count)
		}
		nnClose(t, dt.String()+" gradient", logits.Grad().Float64s(), wantG, tol)
	}

	// No target counts: the mean is 0, not NaN.
	logits := param(3, 2, 4)
	per, mean := tensor.CrossEntropy(logits, nnIDs(be, []int32{-100, 9}))
	if m := mean.Item(); m != 0 {
		t.Fatalf("mean over ignored targets = %g, want 0", m)
	}
	nnClose(t, "ignored per-token", per.Float64s(), []float64{0, 0}, 0)
}

// nnRefNorm normalises each row in float64: LayerNorm with layer, else RMSNorm.
func nnRefNorm(x, w, bias []float64, cols int, layer bool, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x)/cols; r++ {
		row := x[r*cols : (r+1)*cols]
		var mu, ss float64
		if layer {
			for _, v := range row {
				mu += v
			}
			mu /= float64(cols)
		}
		for _, v := range row {
			ss += (v - mu) * (v - mu)
		}
		rs := 1 / math.Sqrt(ss/float64(cols)+eps)
		for j, v := range row {
			y := (v - mu) * rs * w[j]
			if bias != nil {
				y += bias[j]
			}
			out[r*cols+j] = y
		}
	}
	return out
}

func TestNormValues(t *testing.T) {
	const rows, cols = 5, 8
	x := tensor.Randn(be, tensor.Float64, tensor.NewRNG(4), 3, rows, cols)
	x = x.AddScalar(2) // a mean far from 0 tests LayerNorm's centring
	ones := tensor.Full(be, tensor.Float64, 1, cols)
	y := x.RMSNorm(ones, 1e-12).Float64s()
	for r := 0; r < rows; r++ {
		var ss float64
		for _, v := range y[r*cols : (r+1)*cols] {
			ss += v * v
		}
		if rms := math.Sqrt(ss / cols); math.Abs(rms-1) > 1e-9 {
			t.Fatalf("rmsnorm row %d has rms %g, want 1", r, rms)
		}
	}
	w, bias := nnConst(5, cols), nnConst(6, cols)
	xs, ws, bs := x.Float64s(), w.Float64s(), bias.Float64s()
	nnClose(t, "rmsnorm", x.RMSNorm(w, 1e-5).Float64s(), nnRefNorm(xs, ws, nil, cols, false, 1e-5), 1e-12)
	nnClose(t, "layernorm", x.LayerNorm(w, bias, 1e-5).Float64s(), nnRefNorm(xs, ws, bs, cols, true, 1e-5), 1e-12)
	nnClose(t, "layernorm-no-bias", x.LayerNorm(w, nil, 1e-5).Float64s(), nnRefNorm(xs, ws, nil, cols, true, 1e-5), 1e-12)
	ln := x.LayerNorm(ones, nil, 1e-12).Float64s()
	for r := 0; r < rows; r++ {
		var mu, ss float64
		for _, v := range ln[r*cols : (r+1)*cols] {
			mu += v
			ss += v * v
		}
		if math.Abs(mu/cols) > 1e-9 || math.Abs(ss/cols-1) > 1e-9 {
			t.Fatalf("layernorm row %d: mean %g, mean square %g", r, mu/cols, ss/cols)
		}
	}
}

// nnRefRoPE rotates x [rows, heads, hd] by the Meta/llama.cpp convention
// (adjacent pairs) or the Hugging Face one (half split), in float64.
func nnRefRoPE(x []float64, heads, hd, rot int, pos []int32, theta float64, half bool) []float64 {
	out := append([]float64(nil), x...)
	for r := 0; r < len(x)/(heads*hd); r++ {
		for h := 0; h < heads; h++ {
			base := (r*heads + h) * hd
			for i := 0; i < rot/2; i++ {
				ang := float64(pos[r]) * math.Pow(theta, -float64(2*i)/float64(rot))
				a, b := base+2*i, base+2*i+1
				if half {
					a, b = base+i, base+i+rot/2
				}
				out[a] = x[a]*math.Cos(ang) - x[b]*math.Sin(ang)
				out[b] = x[a]*math.Sin(ang) + x[b]*math.Cos(ang)
			}
		}
	}
	return out
}

func TestRoPEValues(t *testing.T) {
	const B, T, H = 2, 3, 2
	p := []int32{0, 1, 7, 100, 3, 2048}
	pos := nnIDs(be, p, B, T)
	for _, c := range []struct {
		hd, rot int
		half    bool
	}{{8, 8, false}, {8, 8, true}, {6, 4, false}, {6, 4, true}} {
		x := nnConst(7, B, T, H, c.hd)
		got := x.RoPE(pos, tensor.RoPEFreqs(be, tensor.Float64, c.rot, 10000), c.half).Float64s()
		nnClose(t, "rope vs reference", got, nnRefRoPE(x.Float64s(), H, c.hd, c.rot, p, 10000, c.half), 1e-12)

		// Position 0 is the identity.
		zero := nnIDs(be, make([]int32, B*T), B*T)
		id := x.RoPE(zero, tensor.RoPEFreqs(be, tensor.Float64, c.rot, 10000), c.half).Float64s()
		nnClose(t, "rope at position 0", id, x.Float64s(), 0)

		// Adjacent and half-split are one rotation under the permutation
		// taking pair (2i, 2i+1) to (i, i+rot/2).
		if c.half {
			continue
		}
		xs := x.Float64s()
		perm := func(v []float64) []float64 {
			out := append([]float64(nil), v...)
			for base := 0; base < len(v); base += c.hd {
				for i := 0; i < c.rot/2; i++ {
					out[base+i] = v[base+2*i]
					out[base+i+c.rot/2] = v[base+2*i+1]
				}
			}
			return out
		}
		xh := tensor.From(be, tensor.Float64, perm(xs), B, T, H, c.hd)
		for _, dt := range []tensor.DType{tensor.Float64, tensor.Float32} {
			freq := tensor.RoPEFreqs(be, dt, c.rot, 10000)
			adj := x.Cast(dt).RoPE(pos, freq, false).Float64s()
			hs := xh.Cast(dt).RoPE(pos, freq, true).Float64s()
			nnClose(t, dt.String()+" half-split vs permuted adjacent", hs, perm(adj), 0)
		}
	}

	// RoPEFreqs follows theta^(-2i/rotDim).
	f := tensor.RoPEFreqs(be, tensor.Float64, 8, 500000).Float64s()
	for i, v := range f {
		if want := math.Pow(500000, -float64(2*i)/8); math.Abs(v-want) > 1e-15*want {
			t.Fatalf("freq %d = %g, want %g", i, v, want)
		}
	}
	if len(f) != 4 {
		t.Fatalf("%d frequencies for rotDim 8", len(f))
	}
}

func TestEmbeddingValues(t *testing.T) {
	table := param(8, 5, 3)
	id := nnIDs(be, []int32{4, 0, 4}, 3)
	out := tensor.Embedding(table, id)
	if s := out.Shape(); len(s) != 2 || s[0] != 3 || s[1] != 3 {
		t.Fatalf("shape %v, want [3 3]", s)
	}
	tv, ov := table.Float64s(), out.Float64s()
	for r, i := range []int{4, 0, 4} {
		nnClose(t, "embedding row", ov[r*3:r*3+3], tv[i*3:i*3+3], 0)
	}
	out.Sum().Backward()
	// Row 4 is used twice, row 0 once, the others never.
	want := []float64{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2}
	nnClose(t, "embedding gradient", table.Grad().Float64s(), want, 0)
}

func TestSwiGLUValues(t *testing.T) {
	g, u := nnConst(9, 4, 5), nnConst(10, 4, 5)
	gv, uv := g.Float64s(), u.Float64s()
	want := make([]float64, len(gv))
	for i := range want {
		want[i] = gv[i] / (1 + math.Exp(-gv[i])) * uv[i]
	}
	nnClose(t, "swiglu", tensor.SwiGLU(g, u).Float64s(), want, 1e-8)
}

func TestDropoutValues(t *testing.T) {
	const n, p = 60000, 0.25
	b1, b3 := cpu.New(1), cpu.New(3)
	x := tensor.Full(b3, tensor.Float32, 1, n).SetRequiresGrad(true)
	y := x.Dropout(p, 42).Retain()
	yv := y.Float32s()
	kept := 0
	scale := float32(1 / (1 - p))
	for i, v := range yv {
		switch v {
		case 0:
		case scale:
			kept++
		default:
			t.Fatalf("element %d is %g, want 0 or %g", i, v, scale)
		}
	}
	if frac := float64(kept) / n; math.Abs(frac-(1-p)) > 0.01 {
		t.Fatalf("kept %.4f of elements, want about %g", frac, 1-p)
	}
	for i := range 1000 {
		if (yv[i] != 0) != cpu.DropoutKeep(42, p, i) {
			t.Fatalf("element %d: kept %v, DropoutKeep says %v", i, yv[i] != 0, cpu.DropoutKeep(42, p, i))
		}
	}
	same := tensor.Full(b1, tensor.Float32, 1, n).Dropout(p, 42).Float32s()
	other := x.Detach().Dropout(p, 43).Float32s()
	diff := 0
	for i := range yv {
		if same[i] != yv[i] {
			t.Fatalf("element %d differs between 1 and 3 threads or between calls", i)
		}
		if other[i] != yv[i] {
			diff++
		}
	}
	// Independent masks disagree on 2p(1-p) = 37.5% of elements.
	if frac := float64(diff) / n; math.Abs(frac-2*p*(1-p)) > 0.02 {
		t.Fatalf("seeds 42 and 43 masks differ on %.4f of elements, want about %g", frac, 2*p*(1-p))
	}
	// The gradient applies the same mask and scale.
	y.Sum().Backward()
	nnClose(t, "dropout gradient", x.Grad().Float64s(), y.Float64s(), 0)

	z := param(1, 3)
	if z.Dropout(0, 1) != z {
		t.Fatal("Dropout(0) did not return its input")
	}
	nnClose(t, "dropout p=1", z.Dropout(1, 1).Float64s(), []float64{0, 0, 0}, 0)
}

// TestNNThreadDeterminism checks that the row kernels whose outputs sum over
// rows (NormGrad's DW and DB, ScatterAdd) give bit-identical results on 1
// and 3 threads, with sizes that make them split the work.
func TestNNThreadDeterminism(t *testing.T) {
	run := func(b tensor.Backend) [][]float32 {
		x := tensor.Randn(b, tensor.Float32, tensor.NewRNG(1), 1, 512, 96).SetRequiresGrad(true)
		w := tensor.Randn(b, tensor.Float32, tensor.NewRNG(2), 1, 96).SetRequiresGrad(true)
		bias := tensor.Randn(b, tensor.Float32, tensor.NewRNG(3), 1, 96).SetRequiresGrad(true)
		table := tensor.Randn(b, tensor.Float32, tensor.NewRNG(4), 1, 7, 96).SetRequiresGrad(true)
		id := make([]int32, 2048)
		for i := range id {
			id[i] = int32(i*i) % 7
		}
		h := x.LayerNorm(w, bias, 1e-5)
		e := tensor.Embedding(table, nnIDs(b, id, 2048))
		h.Mul(h).Sum().Add(e.Mul(e.Exp()).Sum()).Backward()
		return [][]float32{x.Grad().Float32s(), w.Grad().Float32s(), bias.Grad().Float32s(), table.Grad().Float32s()}
	}
	a, c := run(cpu.New(1)), run(cpu.New(3))
	for k := range a {
		for i := range a[k] {
			if a[k][i] != c[k][i] {
				t.Fatalf("gradient %d element %d: %g on 1 thread, %g on 3", k, i, a[k][i], c[k][i])
			}
		}
	}
}

func TestNNErrors(t *testing.T) {
	asError := func(name string, f func()) {
		t.Helper()
		err := tensor.Catch(f)
		var te *tensor.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: got %v, want a *tensor.Error", name, err)
		}
	}
	table := param(1, 4, 3)
	asError("embedding id too large", func() { tensor.Embedding(table, nnIDs(be, []int32{0, 4}, 2)) })
	asError("embedding negative id", func() { tensor.Embedding(table, nnIDs(be, []int32{-1}, 1)) })
	asError("embedding float ids", func() { tensor.Embedding(table, nnConst(1, 2)) })
	logits := param(2, 2, 3, 5)
	asError("cross-entropy shape", func() { tensor.CrossEntropy(logits, nnIDs(be, make([]int32, 6), 6)) })
	asError("cross-entropy rank", func() { tensor.CrossEntropy(logits, nnIDs(be, make([]int32, 6), 2, 3, 1)) })
	asError("cross-entropy float targets", func() { tensor.CrossEntropy(logits, nnConst(1, 2, 3)) })
	x := param(3, 2, 4)
	asError("rmsnorm weight shape", func() { x.RMSNorm(param(4, 3), 1e-5) })
	asError("layernorm bias shape", func() { x.LayerNorm(param(4, 4), param(5, 5), 1e-5) })
	asError("layernorm dtype", func() { x.LayerNorm(param(4, 4).Cast(tensor.Float32), nil, 1e-5) })
	q := param(6, 1, 2, 2, 4)
	f := tensor.RoPEFreqs(be, tensor.Float64, 4, 10000)
	asError("rope positions", func() { q.RoPE(nnIDs(be, []int32{0, 1, 2}, 3), f, false) })
	asError("rope rotDim > D", func() { q.RoPE(nnIDs(be, []int32{0, 1}, 2), tensor.RoPEFreqs(be, tensor.Float64, 6, 10000), false) })
	asError("rope freqs odd", func() { tensor.RoPEFreqs(be, tensor.Float64, 5, 10000) })
	asError("swiglu shapes", func() { tensor.SwiGLU(param(7, 2, 3), param(8, 3, 2)) })
	asError("dropout p", func() { x.Dropout(1.5, 1) })
	asError("softmax scalar", func() { x.Sum().Softmax() })
	asError("softmax int", func() { nnIDs(be, []int32{1, 2}, 2).Softmax() })

	// Kernels report unsupported dtypes as ErrUnsupported.
	s, err := be.Alloc(tensor.BFloat16, 4)
	if err != nil {
		t.Fatal(err)
	}
	r := tensor.Ref{S: s}
	if err := be.Softmax(&tensor.SoftmaxArgs{Rows: 1, Cols: 4, X: r, Y: r}); !errors.Is(err, tensor.ErrUnsupported) {
		t.Errorf("softmax on bf16: %v, want ErrUnsupported", err)
	}
	if err := be.SwiGLU(&tensor.SwiGLUArgs{N: 4, Gate: r, Up: r, Out: r}); !errors.Is(err, tensor.ErrUnsupported) {
		t.Errorf("swiglu on bf16: %v, want ErrUnsupported", err)
	}
}

// BenchmarkCrossEntropy times the forward and gradient kernels on a GPT-2
// sized batch: 256 rows of 50257 float32 logits.
func BenchmarkCrossEntropy(b *testing.B) {
	const rows, cols = 256, 50257
	c := cpu.New(0)
	store := func(dt tensor.DType, v any, n int) tensor.Ref {
		s, err := c.Alloc(dt, n)
		if err != nil {
			b.Fatal(err)
		}
		if v != nil {
			if err := c.Write(tensor.Ref{S: s}, v); err != nil {
				b.Fatal(err)
			}
		}
		return tensor.Ref{S: s}
	}
	rng := tensor.NewRNG(1)
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(2 * rng.NormFloat64())
	}
	tg := make([]int32, rows)
	dl := make([]float32, rows)
	for i := range tg {
		tg[i] = int32(i * 97 % cols)
		dl[i] = 1.0 / rows
	}
	a := &tensor.CrossEntropyArgs{Rows: rows, Cols: cols,
		Logits: store(tensor.Float32, x, rows*cols), Targets: store(tensor.Int32, tg, rows),
		Loss: store(tensor.Float32, nil, rows), LSE: store(tensor.Float32, nil, rows),
		DLogits: store(tensor.Float32, nil, rows*cols), DLoss: store(tensor.Float32, dl, rows)}
	b.Run("forward", func(b *testing.B) {
		b.SetBytes(rows * cols * 4)
		for b.Loop() {
			if err := c.CrossEntropy(a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grad", func(b *testing.B) {
		b.SetBytes(rows * cols * 4)
		for b.Loop() {
			if err := c.CrossEntropyGrad(a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
