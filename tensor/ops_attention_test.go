package tensor_test

import (
	"errors"
	"math"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

// attnFunc returns a gradcheck function of q, k, v and, when withMask, a
// mask passed as a fourth input (so gradcheck converts it to float32 too).
func attnFunc(opt tensor.AttentionOptions, withMask bool) gradcheck.Func {
	return func(in []*tensor.Tensor) *tensor.Tensor {
		o := opt
		if withMask {
			o.Mask = in[3]
		}
		return tensor.Attention(in[0], in[1], in[2], o)
	}
}

// docMask returns an additive [B, Tq, Tk] mask for packed documents: query
// row i (absolute position Tk-Tq+i) may see key j only when both lie in the
// same document; docs[b] lists the document lengths of batch item b.
func docMask(Tq, Tk int, blocked float64, docs ...[]int) []float64 {
	m := make([]float64, 0, len(docs)*Tq*Tk)
	for _, lens := range docs {
		id := make([]int, 0, Tk)
		for d, n := range lens {
			for range n {
				id = append(id, d)
			}
		}
		for i := range Tq {
			for j := range Tk {
				if id[Tk-Tq+i] == id[j] {
					m = append(m, 0)
				} else {
					m = append(m, blocked)
				}
			}
		}
	}
	return m
}

func maskTensor(vals []float64, shape ...int) *tensor.Tensor {
	return tensor.From(be, tensor.Float64, vals, shape...)
}

func TestGradAttention(t *testing.T) {
	inf := math.Inf(-1)
	causal := tensor.AttentionOptions{Causal: true}
	plain := tensor.AttentionOptions{}
	qkv := func(seed uint64, B, Tq, Tk, Hq, Hkv, D int) []*tensor.Tensor {
		return []*tensor.Tensor{param(seed, B, Tq, Hq, D), param(seed+1, B, Tk, Hkv, D), param(seed+2, B, Tk, Hkv, D)}
	}
	withMask := func(in []*tensor.Tensor, m *tensor.Tensor) []*tensor.Tensor { return append(in, m) }
	runCases(t, []gradCase{
		{"causal-gqa", attnFunc(causal, false), qkv(1, 2, 4, 4, 4, 2, 3)},
		{"full-gqa", attnFunc(plain, false), qkv(4, 2, 3, 3, 4, 2, 3)},
		{"causal-mha", attnFunc(causal, false), qkv(7, 2, 4, 4, 4, 4, 3)},
		{"causal-mqa", attnFunc(causal, false), qkv(10, 2, 4, 4, 4, 1, 3)},
		{"full-mqa-by-position", attnFunc(plain, false), qkv(13, 2, 3, 3, 4, 1, 2)},
		{"scale", attnFunc(tensor.AttentionOptions{Causal: true, Scale: 0.7}, false), qkv(16, 2, 3, 3, 4, 2, 3)},
		{"packed-docs-inf", attnFunc(causal, true),
			withMask(qkv(19, 2, 4, 4, 4, 2, 3), maskTensor(docMask(4, 4, inf, []int{2, 2}, []int{3, 1}), 2, 4, 4))},
		{"packed-docs-1e9-shared-2d", attnFunc(plain, true),
			withMask(qkv(22, 2, 4, 4, 4, 2, 3), maskTensor(docMask(4, 4, -1e9, []int{1, 3}), 4, 4))},
		{"decode-offset", attnFunc(causal, false), qkv(25, 2, 2, 5, 4, 2, 3)},
		{"decode-one-token-mqa", attnFunc(causal, false), qkv(28, 2, 1, 5, 4, 1, 3)},
		{"decode-offset-mask-mqa", attnFunc(causal, true),
			withMask(qkv(31, 2, 2, 5, 4, 1, 3), maskTensor(docMask(2, 5, inf, []int{3, 2}, []int{4, 1}), 2, 2, 5))},
		{"decode-offset-noncausal", attnFunc(plain, false), qkv(34, 1, 3, 5, 2, 2, 3)},
		// Several row tiles of 64 positions, with the causal skip.
		{"long-causal", attnFunc(causal, false), qkv(37, 1, 70, 70, 2, 1, 2)},
		{"long-decode-offset-mask", attnFunc(causal, true),
			withMask(qkv(40, 1, 66, 70, 1, 1, 2), maskTensor(docMask(66, 70, inf, []int{30, 40}), 66, 70))},
		// k and v read in place from a larger buffer (a cache-like view) ...
		{"kv-view", func(in []*tensor.Tensor) *tensor.Tensor {
			return tensor.Attention(in[0], in[1].Slice(1, 0, 4), in[2].Slice(1, 1, 5), causal)
		}, []*tensor.Tensor{param(43, 2, 3, 4, 3), param(44, 2, 6, 2, 3), param(45, 2, 6, 2, 3)}},
		// ... and copied when their layout does not allow it.
		{"kv-permuted-q-view", func(in []*tensor.Tensor) *tensor.Tensor {
			q := in[0].Permute(0, 2, 1, 3)
			return tensor.Attention(q, in[1].Permute(0, 2, 1, 3), in[2], causal)
		}, []*tensor.Tensor{param(46, 2, 4, 3, 3), param(47, 2, 2, 3, 3), param(48, 2, 3, 2, 3)}},
	})
}

// naiveAttention is the reference: explicit loops in float64. mask is nil,
// [Tq, Tk] (maskBatched false) or [B, Tq, Tk].
func naiveAttention(q, k, v []float64, B, Tq, Tk, Hq, Hkv, D int, causal bool, scale float64, mask []float64, maskBatched bool) []float64 {
	out := make([]float64, B*Tq*Hq*D)
	rep, off := Hq/Hkv, Tk-Tq
	s := make([]float64, Tk)
	for b := range B {
		for i := range Tq {
			for h := range Hq {
				g := h / rep
				top := math.Inf(-1)
				for j := range Tk {
					s[j] = math.Inf(-1)
					if causal && j > off+i {
						continue
					}
					var dot float64
					for d := range D {
						dot += q[((b*Tq+i)*Hq+h)*D+d] * k[((b*Tk+j)*Hkv+g)*D+d]
					}
					s[j] = scale * dot
					if mask != nil {
						mi := i*Tk + j
						if maskBatched {
							mi += b * Tq * Tk
						}
						s[j] += mask[mi]
					}
					top = max(top, s[j])
				}
				if math.IsInf(top, -1) {
					continue
				}
				var sum float64
				for j := range Tk {
					s[j] = math.Exp(s[j] - top)
					sum += s[j]
				}
				for d := range D {
					var acc float64
					for j := range Tk {
						acc += s[j] * v[((b*Tk+j)*Hkv+g)*D+d]
					}
					out[((b*Tq+i)*Hq+h)*D+d] = acc / sum
				}
			}
		}
	}
	return out
}

func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		d := math.Abs(a[i] - b[i])
		if math.IsNaN(d) {
			return math.NaN()
		}
		m = max(m, d)
	}
	return m
}

func f32to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func TestAttentionMatchesNaive(t *testing.T) {
	inf := math.Inf(-1)
	cases := []struct {
		name                  string
		B, Tq, Tk, Hq, Hkv, D int
		causal                bool
		scale                 float64
		docs                  [][]int // packed-document mask, batched
		shared                []int   // packed-document mask, shared
	}{
		{"causal-gqa-multitile", 2, 80, 80, 4, 2, 8, true, 0, nil, nil},
		{"full-mha", 2, 37, 37, 3, 3, 5, false, 0, nil, nil},
		{"decode-offset-gqa", 2, 70, 90, 4, 2, 4, true, 0.3, nil, nil},
		{"decode-one-token-mqa", 3, 1, 33, 8, 1, 8, true, 0, nil, nil},
		{"decode-few-tokens-gqa", 2, 3, 20, 8, 2, 4, true, 0, nil, nil},
		{"packed-causal", 2, 70, 70, 2, 1, 4, true, 0, [][]int{{10, 60}, {40, 20, 10}}, nil},
		{"packed-shared-full", 2, 12, 12, 4, 2, 4, false, 0, nil, []int{5, 7}},
		{"packed-decode", 2, 4, 9, 4, 2, 4, true, 0, [][]int{{6, 3}, {2, 7}}, nil},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(100 + 3*ci)
			q64 := tensor.Randn(be, tensor.Float64, tensor.NewRNG(seed), 1, c.B, c.Tq, c.Hq, c.D)
			k64 := tensor.Randn(be, tensor.Float64, tensor.NewRNG(seed+1), 1, c.B, c.Tk, c.Hkv, c.D)
			v64 := tensor.Randn(be, tensor.Float64, tensor.NewRNG(seed+2), 1, c.B, c.Tk, c.Hkv, c.D)
			scale := c.scale
			if scale == 0 {
				scale = 1 / math.Sqrt(float64(c.D))
			}
			var mask []float64
			var maskShape []int
			batched := c.docs != nil
			if batched {
				mask, maskShape = docMask(c.Tq, c.Tk, inf, c.docs...), []int{c.B, c.Tq, c.Tk}
			} else if c.shared != nil {
				mask, maskShape = docMask(c.Tq, c.Tk, inf, c.shared), []int{c.Tq, c.Tk}
			}
			want := naiveAttention(q64.Float64s(), k64.Float64s(), v64.Float64s(), c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, c.causal, scale, mask, batched)
			for _, dt := range []tensor.DType{tensor.Float64, tensor.Float32} {
				opt := tensor.AttentionOptions{Causal: c.causal, Scale: c.scale}
				if mask != nil {
					opt.Mask = tensor.From(be, dt, mask, maskShape...)
				}
				got := tensor.Attention(q64.Cast(dt), k64.Cast(dt), v64.Cast(dt), opt).Float64s()
				tol := 1e-12
				if dt == tensor.Float32 {
					tol = 1e-5
				}
				if d := maxAbsDiff(got, want); !(d <= tol) {
					t.Errorf("%s: max |attention - naive| = %.3g > %g", dt, d, tol)
				}
			}
		})
	}
}

// TestAttentionKernelOptionalOperands calls the CPU kernels directly: LSE
// may be absent from Attention, and AttentionGrad must give the same
// gradients without LSE (recomputed) and without O (row terms from P·dP).
func TestAttentionKernelOptionalOperands(t *testing.T) {
	const B, Tq, Tk, Hq, Hkv, D = 2, 5, 7, 4, 2, 3
	rng := tensor.NewRNG(5)
	vals := func(n int) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		return x
	}
	store := func(x []float64) tensor.Ref {
		s, err := be.Alloc(tensor.Float64, len(x))
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Write(tensor.Ref{S: s}, x); err != nil {
			t.Fatal(err)
		}
		return tensor.Ref{S: s}
	}
	read := func(r tensor.Ref, n int) []float64 {
		x := make([]float64, n)
		if err := be.Read(x, r); err != nil {
			t.Fatal(err)
		}
		return x
	}
	nq, nkv := B*Tq*Hq*D, B*Tk*Hkv*D
	mask := docMask(Tq, Tk, math.Inf(-1), []int{3, 4}, []int{1, 6})
	base := tensor.AttentionArgs{B: B, Tq: Tq, Tk: Tk, Hq: Hq, Hkv: Hkv, D: D, KVBatchStride: Tk * Hkv * D,
		QOffset: Tk - Tq, Causal: true, Scale: 0.5, MaskBatchStride: Tq * Tk,
		Q: store(vals(nq)), K: store(vals(nkv)), V: store(vals(nkv)), Mask: store(mask)}
	dO := store(vals(nq))

	fwd := base
	fwd.O, fwd.LSE = store(make([]float64, nq)), store(make([]float64, B*Hq*Tq))
	if err := be.Attention(&fwd); err != nil {
		t.Fatal(err)
	}
	noLSE := base
	noLSE.O = store(make([]float64, nq))
	if err := be.Attention(&noLSE); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(read(fwd.O, nq), read(noLSE.O, nq)); d != 0 {
		t.Errorf("output differs by %g without LSE", d)
	}

	grads := func(a tensor.AttentionArgs) [3][]float64 {
		a.DO = dO
		a.DQ, a.DK, a.DV = store(vals(nq)), store(vals(nkv)), store(vals(nkv)) // garbage to overwrite
		if err := be.AttentionGrad(&a); err != nil {
			t.Fatal(err)
		}
		return [3][]float64{read(a.DQ, nq), read(a.DK, nkv), read(a.DV, nkv)}
	}
	want := grads(fwd)
	woLSE, woO := fwd, fwd
	woLSE.LSE = tensor.Ref{}
	woO.O = tensor.Ref{}
	for name, a := range map[string]tensor.AttentionArgs{"no LSE": woLSE, "no O": woO} {
		got := grads(a)
		for i := range got {
			if d := maxAbsDiff(got[i], want[i]); !(d <= 1e-12) {
				t.Errorf("%s: gradient %d differs by %g", name, i, d)
			}
		}
	}
	bad := fwd
	bad.Hkv = 3
	if err := be.Attention(&bad); err == nil {
		t.Error("Hq=4, Hkv=3: no error")
	}
	short := fwd
	short.KVBatchStride = 1000
	if err := be.Attention(&short); err == nil {
		t.Error("K shorter than its batch stride implies: no error")
	}
}

func TestKVCacheDecodeMatchesFull(t *testing.T) {
	const B, T, Hq, Hkv, D = 2, 12, 4, 2, 8
	rng := tensor.NewRNG(9)
	q := tensor.Randn(be, tensor.Float32, rng, 1, B, T, Hq, D)
	k := tensor.Randn(be, tensor.Float32, rng, 1, B, T, Hkv, D)
	v := tensor.Randn(be, tensor.Float32, rng, 1, B, T, Hkv, D)
	mask := tensor.From(be, tensor.Float32, docMask(T, T, math.Inf(-1), []int{5, 7}, []int{8, 4}), B, T, T)
	tensor.NoGrad(func() {
		for _, masked := range []bool{false, true} {
			opt := tensor.AttentionOptions{Causal: true}
			if masked {
				opt.Mask = mask
			}
			full := tensor.Attention(q, k, v, opt).Float32s()
			cache := tensor.NewKVCache(be, tensor.Float32, B, T+3, Hkv, D)
			// decode runs the chunks through the cache and compares each
			// output with the matching rows of the full pass.
			decode := func(name string, chunks ...int) {
				t0 := cache.Len()
				for _, n := range chunks {
					t1 := t0 + n
					keys, values := cache.Append(k.Slice(1, t0, t1), v.Slice(1, t0, t1))
					if cache.Len() != t1 || keys.Dim(1) != t1 || values.Dim(1) != t1 {
						t.Fatalf("%s: cache length %d, views %v, want %d", name, cache.Len(), keys.Shape(), t1)
					}
					o := opt
					if masked {
						o.Mask = mask.Slice(1, t0, t1).Slice(2, 0, t1)
					}
					got := tensor.Attention(q.Slice(1, t0, t1), keys, values, o).Float32s()
					for b := range B {
						off := (b*T + t0) * Hq * D
						want := full[off : off+n*Hq*D]
						part := got[b*n*Hq*D : (b+1)*n*Hq*D]
						if d := maxAbsDiff(f32to64(part), f32to64(want)); !(d <= 1e-5) {
							t.Errorf("%s (mask %v): tokens [%d, %d) batch %d differ from full attention by %g", name, masked, t0, t1, b, d)
						}
					}
					keys.Release()
					values.Release()
					t0 = t1
				}
			}
			decode("one at a time", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
			cache.Reset()
			decode("prefill then chunks", 5, 3, 2, 1, 1)
			cache.Truncate(7)
			decode("after truncate", 4, 1)
			cache.Reset()
			decode("whole prefill", T)
			cache.Release()
		}
	})
}

func TestAttentionFullyMaskedRow(t *testing.T) {
	const B, T, Hq, Hkv, D = 1, 3, 2, 1, 4
	inf := math.Inf(-1)
	for _, dt := range []tensor.DType{tensor.Float64, tensor.Float32} {
		rng := tensor.NewRNG(3)
		q := tensor.Randn(be, dt, rng, 1, B, T, Hq, D).SetRequiresGrad(true)
		k := tensor.Randn(be, dt, rng, 1, B, T, Hkv, D).SetRequiresGrad(true)
		v := tensor.Randn(be, dt, rng, 1, B, T, Hkv, D).SetRequiresGrad(true)
		// Row 1 sees nothing; with Causal, row 0 loses its only key too.
		m := tensor.From(be, dt, []float64{inf, 0, 0, inf, inf, inf, 0, inf, 0}, T, T)
		for _, causal := range []bool{false, true} {
			out := tensor.Attention(q, k, v, tensor.AttentionOptions{Causal: causal, Mask: m})
			o := out.Float64s()
			out.BackwardWith(tensor.Randn(be, dt, rng, 1, out.Shape()...))
			dead := map[int]bool{1: true, 0: causal}
			for i, x := range o {
				row := i / (Hq * D)
				if math.IsNaN(x) || (dead[row] && x != 0) {
					t.Errorf("%s causal=%v: output row %d element %d = %g", dt, causal, row, i, x)
				}
			}
			for name, g := range map[string]*tensor.Tensor{"q": q.Grad(), "k": k.Grad(), "v": v.Grad()} {
				for i, x := range g.Float64s() {
					if math.IsNaN(x) || (name == "q" && dead[i/(Hq*D)] && x != 0) {
						t.Errorf("%s causal=%v: d%s[%d] = %g", dt, causal, name, i, x)
					}
				}
			}
			q.ZeroGrad()
			k.ZeroGrad()
			v.ZeroGrad()
		}
	}
}

// attnRun runs forward and backward on backend b and returns the output
// and the three gradients.
func attnRun(b tensor.Backend) [4][]float32 {
	const B, T, Hq, Hkv, D = 2, 100, 4, 2, 16
	rng := tensor.NewRNG(11)
	q := tensor.Randn(b, tensor.Float32, rng, 1, B, T, Hq, D).SetRequiresGrad(true)
	k := tensor.Randn(b, tensor.Float32, rng, 1, B, T, Hkv, D).SetRequiresGrad(true)
	v := tensor.Randn(b, tensor.Float32, rng, 1, B, T, Hkv, D).SetRequiresGrad(true)
	g := tensor.Randn(b, tensor.Float32, rng, 1, B, T, Hq, D)
	m := tensor.From(b, tensor.Float32, docMask(T, T, math.Inf(-1), []int{30, 70}, []int{64, 36}), B, T, T)
	out := tensor.Attention(q, k, v, tensor.AttentionOptions{Causal: true, Mask: m})
	res := [4][]float32{out.Float32s()}
	out.BackwardWith(g)
	res[1], res[2], res[3] = q.Grad().Float32s(), k.Grad().Float32s(), v.Grad().Float32s()
	return res
}

func TestAttentionDeterministic(t *testing.T) {
	a, b := attnRun(be), attnRun(be)
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				t.Fatalf("result %d element %d differs between runs: %g vs %g", i, j, a[i][j], b[i][j])
			}
		}
	}
	one, three := attnRun(cpu.New(1)), attnRun(cpu.New(3))
	for i := range one {
		if d := maxAbsDiff(f32to64(one[i]), f32to64(three[i])); !(d <= 1e-6) {
			t.Errorf("result %d differs by %g between 1 and 3 threads", i, d)
		}
	}
}

func TestAttentionErrors(t *testing.T) {
	f32 := func(shape ...int) *tensor.Tensor { return tensor.Full(be, tensor.Float32, 0.5, shape...) }
	var tErr *tensor.Error
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"heads not divisible", func() { tensor.Attention(f32(1, 2, 3, 4), f32(1, 2, 2, 4), f32(1, 2, 2, 4), tensor.AttentionOptions{}) }},
		{"fewer keys than queries", func() { tensor.Attention(f32(1, 3, 2, 4), f32(1, 2, 2, 4), f32(1, 2, 2, 4), tensor.AttentionOptions{}) }},
		{"head dims differ", func() { tensor.Attention(f32(1, 2, 2, 4), f32(1, 2, 2, 3), f32(1, 2, 2, 3), tensor.AttentionOptions{}) }},
		{"k and v differ", func() { tensor.Attention(f32(1, 2, 2, 4), f32(1, 2, 2, 4), f32(1, 3, 2, 4), tensor.AttentionOptions{}) }},
		{"rank", func() { tensor.Attention(f32(2, 2, 4), f32(2, 2, 4), f32(2, 2, 4), tensor.AttentionOptions{}) }},
		{"mask shape", func() {
			tensor.Attention(f32(2, 2, 2, 4), f32(2, 2, 2, 4), f32(2, 2, 2, 4), tensor.AttentionOptions{Mask: f32(3, 2, 2)})
		}},
		{"dtypes differ", func() {
			tensor.Attention(f32(1, 2, 2, 4), tensor.Full(be, tensor.Float64, 0, 1, 2, 2, 4), f32(1, 2, 2, 4), tensor.AttentionOptions{})
		}},
		{"cache sizes", func() { tensor.NewKVCache(be, tensor.Float32, 1, 0, 1, 4) }},
	} {
		err := tensor.Catch(c.f)
		if !errors.As(err, &tErr) || tErr.Op == "" {
			t.Errorf("%s: got %v, want *tensor.Error", c.name, err)
		}
	}
	bf := tensor.Full(be, tensor.BFloat16, 0, 1, 2, 2, 4)
	if err := tensor.Catch(func() { tensor.Attention(bf, bf, bf, tensor.AttentionOptions{}) }); !errors.Is(err, tensor.ErrUnsupported) {
		t.Errorf("bf16 on the CPU: got %v, want ErrUnsupported", err)
	}

	cache := tensor.NewKVCache(be, tensor.Float32, 1, 4, 2, 3)
	cache.Append(f32(1, 3, 2, 3), f32(1, 3, 2, 3))
	if err := tensor.Catch(func() { cache.Append(f32(1, 2, 2, 3), f32(1, 2, 2, 3)) }); !errors.As(err, &tErr) {
		t.Errorf("overflow: got %v, want *tensor.Error", err)
	}
	if cache.Len() != 3 {
		t.Errorf("a failed Append changed the length to %d", cache.Len())
	}
	for name, f := range map[string]func(){
		"append heads":    func() { cache.Append(f32(1, 1, 1, 3), f32(1, 1, 1, 3)) },
		"append k≠v":      func() { cache.Append(f32(1, 1, 2, 3), f32(1, 1, 2, 2)) },
		"append batch":    func() { cache.Append(f32(2, 1, 2, 3), f32(2, 1, 2, 3)) },
		"truncate beyond": func() { cache.Truncate(4) },
		"truncate below":  func() { cache.Truncate(-1) },
	} {
		if err := tensor.Catch(f); !errors.As(err, &tErr) {
			t.Errorf("%s: got %v, want *tensor.Error", name, err)
		}
	}
	cache.Append(f32(1, 1, 2, 3), f32(1, 1, 2, 3)) // fills it exactly
	cache.Release()
	cache.Release()
	if err := tensor.Catch(func() { cache.Append(f32(1, 1, 2, 3), f32(1, 1, 2, 3)) }); !errors.As(err, &tErr) {
		t.Errorf("append after release: got %v, want *tensor.Error", err)
	}
}

// BenchmarkAttention measures causal attention with grouped heads in
// float32: a training step (forward and backward) at B=4, T=256, Hq=8,
// Hkv=4, D=64, the forward alone, and decoding one token against a cache of
// 256.
func BenchmarkAttention(b *testing.B) {
	const B, T, Hq, Hkv, D = 4, 256, 8, 4, 64
	rng := tensor.NewRNG(1)
	q := tensor.Randn(be, tensor.Float32, rng, 1, B, T, Hq, D).SetRequiresGrad(true)
	k := tensor.Randn(be, tensor.Float32, rng, 1, B, T, Hkv, D).SetRequiresGrad(true)
	v := tensor.Randn(be, tensor.Float32, rng, 1, B, T, Hkv, D).SetRequiresGrad(true)
	opt := tensor.AttentionOptions{Causal: true}
	b.Run("train-fwd-bwd", func(b *testing.B) {
		for b.Loop() {
			out := tensor.Attention(q, k, v, opt)
			out.BackwardWith(tensor.Full(be, tensor.Float32, 1, B, T, Hq, D))
			out.Release()
			q.ZeroGrad()
			k.ZeroGrad()
			v.ZeroGrad()
		}
		b.ReportMetric(float64(B*T)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("forward", func(b *testing.B) {
		tensor.NoGrad(func() {
			for b.Loop() {
				tensor.Attention(q, k, v, opt).Release()
			}
		})
		b.ReportMetric(float64(B*T)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("decode-1-of-256", func(b *testing.B) {
		cache := tensor.NewKVCache(be, tensor.Float32, B, T, Hkv, D)
		defer cache.Release()
		tensor.NoGrad(func() {
			keys, values := cache.Append(k.Slice(1, 0, T-1), v.Slice(1, 0, T-1))
			keys.Release()
			values.Release()
			q1, k1, v1 := q.Slice(1, 0, 1).Contiguous(), k.Slice(1, 0, 1).Contiguous(), v.Slice(1, 0, 1).Contiguous()
			for b.Loop() {
				cache.Truncate(T - 1)
				keys, values := cache.Append(k1, v1)
				tensor.Attention(q1, keys, values, opt).Release()
				keys.Release()
				values.Release()
			}
		})
		b.ReportMetric(float64(B)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}

// TestAttentionMaskFromGraph builds the mask from a parameter and lets the
// loss reach it by another path too: Backward must keep the mask alive until
// the attention gradient has used it, and send the mask no gradient.
func TestAttentionMaskFromGraph(t *testing.T) {
	q, k, v := param(1, 1, 3, 2, 2), param(2, 1, 3, 1, 2), param(3, 1, 3, 1, 2)
	p := param(4, 3, 3)
	mask := p.Scale(0.1)
	loss := tensor.Attention(q, k, v, tensor.AttentionOptions{Causal: true, Mask: mask}).Sum().Add(mask.Sum())
	if err := tensor.Catch(loss.Backward); err != nil {
		t.Fatal(err)
	}
	for i, g := range p.Grad().Float64s() {
		if math.Abs(g-0.1) > 1e-15 {
			t.Errorf("mask parameter gradient[%d] = %g, want 0.1 (from the sum only)", i, g)
		}
	}
	if q.Grad() == nil || k.Grad() == nil || v.Grad() == nil {
		t.Error("q, k or v got no gradient")
	}
}
