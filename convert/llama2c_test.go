package convert

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/internal/shareddata"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// aidreams returns the paths of the shared llama2.c model and tokenizer.
func aidreams(t *testing.T) (ckpt, tok string) {
	return shareddata.Path(t, "models/aidreams260K/aidreams260K.bin"), shareddata.Path(t, "models/aidreams260K/tok512.bin")
}

// llama2cRef is a float64 llama2.c model read straight from the file in
// the order the format documents, independent of the importer's layout.
type llama2cRef struct {
	dim, hidden, layers, heads, kvHeads, vocab, seqLen           int
	emb, attNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3, norm, cls []float64
}

func readRef(t *testing.T, path string) *llama2cRef {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h [7]int32
	r := bytes.NewReader(raw)
	if err := binary.Read(r, binary.LittleEndian, &h); err != nil {
		t.Fatal(err)
	}
	m := &llama2cRef{dim: int(h[0]), hidden: int(h[1]), layers: int(h[2]), heads: int(h[3]), kvHeads: int(h[4]),
		vocab: int(max(h[5], -h[5])), seqLen: int(h[6])}
	next := func(n int) []float64 {
		f := make([]float32, n)
		if err := binary.Read(r, binary.LittleEndian, f); err != nil {
			t.Fatal(err)
		}
		out := make([]float64, n)
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
	D, H, L, kv := m.dim, m.hidden, m.layers, m.kvHeads*m.dim/m.heads
	m.emb = next(m.vocab * D)
	m.attNorm = next(L * D)
	m.wq, m.wk, m.wv, m.wo = next(L*D*D), next(L*kv*D), next(L*kv*D), next(L*D*D)
	m.ffnNorm = next(L * D)
	m.w1, m.w2, m.w3 = next(L*H*D), next(L*D*H), next(L*H*D)
	m.norm = next(D)
	next(m.seqLen * D / m.heads) // the two legacy RoPE tables
	m.cls = m.emb
	if h[5] < 0 {
		m.cls = next(m.vocab * D)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left after the weights", r.Len())
	}
	return m
}

// matvec returns w·x for w [rows, len(x)] stored row-major.
func matvec(w, x []float64, rows int) []float64 {
	out := make([]float64, rows)
	for i := range out {
		s := 0.0
		for j, v := range x {
			s += w[i*len(x)+j] * v
		}
		out[i] = s
	}
	return out
}

func rmsnorm(x, g []float64) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+1e-5)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * s * g[i]
	}
	return out
}

// forward returns the logits at every position of tokens, as llama2.c's
// run.c computes them one position at a time with a KV cache.
func (m *llama2cRef) forward(tokens []int32) [][]float64 {
	D, H, hs := m.dim, m.hidden, m.dim/m.heads
	kvDim := m.kvHeads * hs
	keys := make([][][]float64, m.layers)
	vals := make([][][]float64, m.layers)
	var logits [][]float64
	for pos, tok := range tokens {
		x := slices.Clone(m.emb[int(tok)*D : int(tok+1)*D])
		for l := range m.layers {
			xb := rmsnorm(x, m.attNorm[l*D:(l+1)*D])
			q := matvec(m.wq[l*D*D:(l+1)*D*D], xb, D)
			k := matvec(m.wk[l*kvDim*D:(l+1)*kvDim*D], xb, kvDim)
			v := matvec(m.wv[l*kvDim*D:(l+1)*kvDim*D], xb, kvDim)
			for i := 0; i < D; i += 2 {
				freq := 1 / math.Pow(10000, float64(i%hs)/float64(hs))
				sin, cos := math.Sincos(float64(pos) * freq)
				vecs := [][]float64{q}
				if i < kvDim {
					vecs = append(vecs, k)
				}
				for _, vec := range vecs {
					a, b := vec[i], vec[i+1]
					vec[i], vec[i+1] = a*cos-b*sin, a*sin+b*cos
				}
			}
			keys[l], vals[l] = append(keys[l], k), append(vals[l], v)
			att := make([]float64, D)
			for h := range m.heads {
				kh := h / (m.heads / m.kvHeads)
				scores := make([]float64, pos+1)
				mx := math.Inf(-1)
				for t := range scores {
					s := 0.0
					for i := range hs {
						s += q[h*hs+i] * keys[l][t][kh*hs+i]
					}
					scores[t] = s / math.Sqrt(float64(hs))
					mx = max(mx, scores[t])
				}
				sum := 0.0
				for t := range scores {
					scores[t] = math.Exp(scores[t] - mx)
					sum += scores[t]
				}
				for t := range scores {
					for i := range hs {
						att[h*hs+i] += scores[t] / sum * vals[l][t][kh*hs+i]
					}
				}
			}
			o := matvec(m.wo[l*D*D:(l+1)*D*D], att, D)
			for i := range x {
				x[i] += o[i]
			}
			xb = rmsnorm(x, m.ffnNorm[l*D:(l+1)*D])
			g := matvec(m.w1[l*H*D:(l+1)*H*D], xb, H)
			u := matvec(m.w3[l*H*D:(l+1)*H*D], xb, H)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			d := matvec(m.w2[l*D*H:(l+1)*D*H], g, D)
			for i := range x {
				x[i] += d[i]
			}
		}
		logits = append(logits, matvec(m.cls, rmsnorm(x, m.norm), m.vocab))
	}
	return logits
}

// TestImportLlama2CMatchesReference compares the imported model's logits
// with a float64 llama2.c forward written from the format's description.
func TestImportLlama2CMatchesReference(t *testing.T) {
	ckpt, tokPath := aidreams(t)
	m, v, err := ImportLlama2C(ckpt, tokPath, tensor.Default(), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if v == nil || len(v.Tokens) != 512 {
		t.Fatalf("vocabulary: %v", v)
	}
	if cfg := m.Config(); cfg.HiddenSize != 64 || cfg.IntermediateSize != 172 || cfg.NumHiddenLayers != 4 || !cfg.TieWordEmbeddings {
		t.Errorf("config %+v", cfg)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("Once upon a time, there was a little dream.", tokenizer.EncodeOptions{AddSpecial: true})
	ref := readRef(t, ckpt).forward(ids)
	got := forwardLogits(t, m, [][]int32{ids})
	d := 0.0
	for p, row := range ref {
		for i, want := range row {
			d = max(d, math.Abs(float64(got[p*len(row)+i])-want))
		}
	}
	t.Logf("%d tokens: max |logit - float64 reference| = %.3g", len(ids), d)
	if d > 1e-4 {
		t.Errorf("max logit difference %.3g > 1e-4", d)
	}
}

// TestImportLlama2CGenerates checks that greedy decoding is repeatable and
// not degenerate, and that the model finds its own text likely.
func TestImportLlama2CGenerates(t *testing.T) {
	ckpt, tokPath := aidreams(t)
	m, v, err := ImportLlama2C(ckpt, tokPath, tensor.Default(), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode("I dream of", tokenizer.EncodeOptions{AddSpecial: true})
	gen := func() model.Completion {
		out, err := model.Generate(m, tok, [][]int32{prompt}, model.GenerateConfig{MaxNewTokens: 64, StopTokens: []int32{}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	a, b := gen(), gen()
	if !slices.Equal(a.Tokens, b.Tokens) {
		t.Fatalf("greedy decoding differs between runs:\n%v\n%v", a.Tokens, b.Tokens)
	}
	distinct := map[int32]bool{}
	for _, id := range a.Tokens {
		distinct[id] = true
	}
	t.Logf("%q: %d distinct of %d tokens", a.Text, len(distinct), len(a.Tokens))
	if len(distinct) < 10 {
		t.Errorf("only %d distinct tokens in %v", len(distinct), a.Tokens)
	}
	seq := slices.Concat(prompt, a.Tokens)
	var loss float64
	err = tensor.Catch(func() {
		ids := tensor.FromInt32(seq[:len(seq)-1], 1, len(seq)-1)
		targets := tensor.FromInt32(seq[1:], 1, len(seq)-1)
		loss = m.Loss(ids, targets).Item()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss on its own greedy text: %.3f nats (uniform: %.3f)", loss, math.Log(512))
	if !(loss < 2) {
		t.Errorf("loss %.3f on its own text, want below 2", loss)
	}
}

func TestImportLlama2CErrors(t *testing.T) {
	ckpt, tokPath := aidreams(t)
	good, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	header := func(vals ...int32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 0)[:0]
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
		return b
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "header"},
		{"short header", good[:20], "header"},
		{"truncated", good[:len(good)-4], "bytes, but"},
		{"longer", append(slices.Clone(good), 0, 0, 0, 0), "bytes, but"},
		{"zero dim", header(0, 172, 4, 4, 4, 512, 128), "dim is 0"},
		{"huge", header(1<<30, 172, 4, 4, 4, 512, 128), "dim is"},
		{"heads", header(64, 172, 4, 3, 3, 512, 128), "do not split"},
		{"kv heads", header(64, 172, 4, 4, 3, 512, 128), "do not split"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := ImportLlama2C(path, tokPath, tensor.Default(), tensor.Float32)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming the file and saying %q", c.name, err, c.want)
		}
	}
	// A tokenizer larger than the model's vocabulary cannot be its own.
	small := slices.Clone(good)
	binary.LittleEndian.PutUint32(small[20:], uint32(256)) // vocab_size
	path := filepath.Join(dir, "small-vocab")
	if err := os.WriteFile(path, small[:len(small)-256*64*4], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ImportLlama2C(path, tokPath, tensor.Default(), tensor.Float32); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("tokenizer larger than the vocabulary: error %v", err)
	}
}
