package convert

import (
	"math"
	"strconv"
	"testing"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// llama.cpp's CPU GELU does not evaluate the formula in float32: ggml
// defines GGML_GELU_FP16, so ggml_vec_gelu_f32 rounds its input to float16
// and reads a float16 table of GELU values (inputs at or beyond ±10 pass
// through or give 0). That rounding alone moves a GPT-2's logits by about
// 1e-3, over the 1e-4 the export is held to. gpt2Reference is a plain Go
// GPT-2 forward that can apply the same rounding, so the test can check
// the export to 1e-4 against it, after checking the reference itself
// against minnow's forward with the exact GELU.

// geluTanh is GPT-2's GELU (tanh form), as ggml_gelu_f32 computes it.
func geluTanh(x float32) float32 {
	const sqrt2OverPi, coefA = 0.79788456080286535587989211986876, 0.044715
	return 0.5 * x * (1 + float32(math.Tanh(float64(sqrt2OverPi*x*(1+coefA*x*x)))))
}

// geluGGML is ggml's table-driven float32 GELU.
func geluGGML(x float32) float32 {
	switch {
	case x <= -10:
		return 0
	case x >= 10:
		return x
	}
	h := tensor.F16ToFloat32(tensor.F16FromFloat32(x))
	return tensor.F16ToFloat32(tensor.F16FromFloat32(geluTanh(h)))
}

// gpt2Reference returns the logits [T][vocab] of a GPT-2 model m for ids,
// computed with plain loops from its parameters and the given GELU.
func gpt2Reference(t *testing.T, m model.Model, ids []int32, gelu func(float32) float32) [][]float64 {
	t.Helper()
	cfg := m.Config()
	w := map[string][]float32{}
	for _, p := range m.Params() {
		w[p.Name] = p.Tensor.Float32s()
	}
	C, H, T := cfg.HiddenSize, cfg.NumAttentionHeads, len(ids)
	D := C / H
	eps := float32(cfg.LayerNormEpsilon)
	// linear returns x·W^T + b for W [out, in].
	linear := func(x []float32, name string) []float32 {
		wt, b := w[name+".weight"], w[name+".bias"]
		out := make([]float32, len(wt)/len(x))
		for o := range out {
			// Accumulating in float64 keeps the sum within an ulp of
			// what ggml's blocked float32 sums give.
			var s float64
			for i, xi := range x {
				s += float64(xi) * float64(wt[o*len(x)+i])
			}
			if b != nil {
				s += float64(b[o])
			}
			out[o] = float32(s)
		}
		return out
	}
	norm := func(x []float32, name string) []float32 {
		var mean, vr float32
		for _, v := range x {
			mean += v
		}
		mean /= float32(len(x))
		for _, v := range x {
			vr += (v - mean) * (v - mean)
		}
		vr /= float32(len(x))
		inv := 1 / float32(math.Sqrt(float64(vr+eps)))
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = (v-mean)*inv*w[name+".weight"][i] + w[name+".bias"][i]
		}
		return out
	}
	xs := make([][]float32, T)
	for p, id := range ids {
		xs[p] = make([]float32, C)
		for i := range C {
			xs[p][i] = w["token_embd.weight"][int(id)*C+i] + w["position_embd.weight"][p*C+i]
		}
	}
	for l := range cfg.NumHiddenLayers {
		blk := "blk." + strconv.Itoa(l) + "."
		qkv := make([][]float32, T)
		for p := range T {
			qkv[p] = linear(norm(xs[p], blk+"attn_norm"), blk+"attn_qkv")
		}
		for p := range T {
			att := make([]float32, C)
			for h := range H {
				scores := make([]float64, p+1)
				top := math.Inf(-1)
				for k := 0; k <= p; k++ {
					var s float32
					for d := range D {
						s += qkv[p][h*D+d] * qkv[k][C+h*D+d]
					}
					scores[k] = float64(s) / math.Sqrt(float64(D))
					top = math.Max(top, scores[k])
				}
				var sum float64
				for k := range scores {
					scores[k] = math.Exp(scores[k] - top)
					sum += scores[k]
				}
				for k := range scores {
					for d := range D {
						att[h*D+d] += float32(scores[k]/sum) * qkv[k][2*C+h*D+d]
					}
				}
			}
			o := linear(att, blk+"attn_output")
			for i := range C {
				xs[p][i] += o[i]
			}
		}
		for p := range T {
			u := linear(norm(xs[p], blk+"ffn_norm"), blk+"ffn_up")
			for i := range u {
				u[i] = gelu(u[i])
			}
			d := linear(u, blk+"ffn_down")
			for i := range C {
				xs[p][i] += d[i]
			}
		}
	}
	out := "output"
	if w["output.weight"] == nil {
		out = "token_embd"
	}
	rows := make([][]float64, T)
	for p := range T {
		logits := linear(norm(xs[p], "output_norm"), out)
		rows[p] = make([]float64, len(logits))
		for i, v := range logits {
			rows[p][i] = float64(v)
		}
	}
	return rows
}
