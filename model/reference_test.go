package model

import (
	"math"
	"strconv"
	"testing"

	"github.com/minnowml/minnow/tensor"
)

// refForward is a plain float64 forward pass of one sequence written from
// the architectures' descriptions with loops over host slices, reading the
// parameters by their GGUF names. It is the independent check that the
// models wire their layers as Llama, Qwen2 and GPT-2 do.
func refForward(m Model, ids []int32) [][]float64 {
	cfg := m.Config()
	w := map[string][]float64{}
	for _, p := range m.Params() {
		w[p.Name] = p.Tensor.Float64s()
	}
	C, H, KV, D := cfg.HiddenSize, cfg.NumAttentionHeads, cfg.KVHeads(), cfg.HeadSize()
	gpt2 := cfg.ModelType == "gpt2"
	// matvec returns W·x (+ b) for W stored [out, in].
	matvec := func(name string, x []float64) []float64 {
		W, b := w[name+".weight"], w[name+".bias"]
		out := make([]float64, len(W)/len(x))
		for o := range out {
			for i, xi := range x {
				out[o] += W[o*len(x)+i] * xi
			}
			if b != nil {
				out[o] += b[o]
			}
		}
		return out
	}
	norm := func(name string, x []float64) []float64 {
		g, b := w[name+".weight"], w[name+".bias"]
		var mean, sq float64
		if gpt2 {
			for _, v := range x {
				mean += v
			}
			mean /= float64(len(x))
		}
		for _, v := range x {
			sq += (v - mean) * (v - mean)
		}
		eps := cfg.RMSNormEps
		if gpt2 {
			eps = cfg.LayerNormEpsilon
		}
		r := 1 / math.Sqrt(sq/float64(len(x))+eps)
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = (v - mean) * r * g[i]
			if b != nil {
				out[i] += b[i]
			}
		}
		return out
	}
	// rope turns each head of x at position pos: Llama pairs (2i, 2i+1),
	// Qwen2 pairs (i, i+D/2).
	rope := func(x []float64, heads, pos int) {
		for h := range heads {
			for i := range D / 2 {
				a, b := h*D+2*i, h*D+2*i+1
				if cfg.ModelType == "qwen2" {
					a, b = h*D+i, h*D+i+D/2
				}
				ang := float64(pos) * math.Pow(cfg.RopeTheta, -float64(2*i)/float64(D))
				s, c := math.Sincos(ang)
				x[a], x[b] = x[a]*c-x[b]*s, x[a]*s+x[b]*c
			}
		}
	}
	T := len(ids)
	xs := make([][]float64, T)
	for t, id := range ids {
		xs[t] = append([]float64(nil), w["token_embd.weight"][int(id)*C:][:C]...)
		if gpt2 {
			for i := range C {
				xs[t][i] += w["position_embd.weight"][t*C+i]
			}
		}
	}
	for l := range cfg.NumHiddenLayers {
		blk := "blk." + strconv.Itoa(l) + "."
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			h := norm(blk+"attn_norm", xs[t])
			if gpt2 {
				qkv := matvec(blk+"attn_qkv", h)
				qs[t], ks[t], vs[t] = qkv[:H*D], qkv[H*D:(H+KV)*D], qkv[(H+KV)*D:]
			} else {
				qs[t], ks[t], vs[t] = matvec(blk+"attn_q", h), matvec(blk+"attn_k", h), matvec(blk+"attn_v", h)
				rope(qs[t], H, t)
				rope(ks[t], KV, t)
			}
		}
		for t := range T {
			att := make([]float64, H*D)
			for h := range H {
				g := h / (H / KV)
				scores := make([]float64, t+1)
				mx := math.Inf(-1)
				for j := range t + 1 {
					for d := range D {
						scores[j] += qs[t][h*D+d] * ks[j][g*D+d]
					}
					scores[j] /= math.Sqrt(float64(D))
					mx = max(mx, scores[j])
				}
				var z float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					z += scores[j]
				}
				for j := range scores {
					for d := range D {
						att[h*D+d] += scores[j] / z * vs[j][g*D+d]
					}
				}
			}
			for i, v := range matvec(blk+"attn_output", att) {
				xs[t][i] += v
			}
		}
		for t := range T {
			h := norm(blk+"ffn_norm", xs[t])
			var act []float64
			if gpt2 {
				act = matvec(blk+"ffn_up", h)
				for i, v := range act {
					act[i] = 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
				}
			} else {
				gate, up := matvec(blk+"ffn_gate", h), matvec(blk+"ffn_up", h)
				act = make([]float64, len(gate))
				for i := range gate {
					act[i] = gate[i] / (1 + math.Exp(-gate[i])) * up[i]
				}
			}
			for i, v := range matvec(blk+"ffn_down", act) {
				xs[t][i] += v
			}
		}
	}
	head := "output"
	if w["output.weight"] == nil {
		head = "token_embd"
	}
	logits := make([][]float64, T)
	for t := range T {
		logits[t] = matvec(head, norm("output_norm", xs[t]))
	}
	return logits
}

func TestForwardMatchesReference(t *testing.T) {
	ids := []int32{3, 1, 4, 1, 5, 9}
	for _, name := range names() {
		cfg := tiny()[name]
		cfg.AttentionBias = name == "llama" // Llama's attention_bias adds biases to q, k, v and output
		m := build(t, cfg, tensor.Float64, 11)
		// Give biases and norm gains values, so that skipping one shows.
		for i, p := range m.Params() {
			if p.Tensor.Rank() == 1 {
				*p.Slot = tensor.Randn(be, tensor.Float64, tensor.NewRNG(uint64(100+i)), 0.5, p.Tensor.Shape()...)
			}
		}
		var got []float64
		tensor.NoGrad(func() { got = m.Forward(idsOf(ids, 1, len(ids)), ForwardOptions{}).Float64s() })
		want := refForward(m, ids)
		V := cfg.VocabSize
		for ti := range want {
			for v := range V {
				if d := math.Abs(got[ti*V+v] - want[ti][v]); d > 1e-9 {
					t.Fatalf("%s: token %d logit %d: %g, reference %g", name, ti, v, got[ti*V+v], want[ti][v])
				}
			}
		}
	}
}
