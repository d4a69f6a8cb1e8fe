package lora_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/internal/shareddata"
	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// task is the small fine-tuning task of the demonstration: a made-up
// fact about named characters, which the pretrained model of children's
// stories has never seen.
var task = []string{
	"Lily's dragon is called Zib. Zib is purple and eats stars.",
	"Tom's dragon is called Wug. Wug is green and eats clouds.",
	"Zib and Wug fly to the moon every night with Lily and Tom.",
	"Lily's dragon is called Zib. Tom's dragon is called Wug.",
}

// taskBatch tokenises the task into one row per sentence, padded with
// targets that the loss ignores.
func taskBatch(t *testing.T, tok tokenizer.Tokenizer) (ids, targets []int32, B, T int) {
	t.Helper()
	var rows [][]int32
	for _, s := range task {
		r := tok.Encode(s, tokenizer.EncodeOptions{AddSpecial: true})
		rows = append(rows, r)
		T = max(T, len(r)-1)
	}
	B = len(rows)
	for _, r := range rows {
		x, y := slices.Clone(r[:len(r)-1]), slices.Clone(r[1:])
		for len(x) < T {
			x, y = append(x, 0), append(y, train.IgnoreIndex)
		}
		ids, targets = append(ids, x...), append(targets, y...)
	}
	return ids, targets, B, T
}

// TestAIDreamsLoRA fine-tunes the trained aidreams260K model (llama2.c
// format) with LoRA r=8 on all linears through train.Loop, and checks
// that the task loss falls by more than half, the base weights are
// bit-identical afterwards, and switching the adapter off gives back the
// base model's loss exactly.
func TestAIDreamsLoRA(t *testing.T) {
	dir := shareddata.Path(t, "models/aidreams260K")
	m, vocab, err := convert.ImportLlama2C(dir+"/aidreams260K.bin", dir+"/tok512.bin", be, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(vocab)
	if err != nil {
		t.Fatal(err)
	}
	ids, targets, B, T := taskBatch(t, tok)
	x, y := tensor.From(be, tensor.Int32, ids, B, T), tensor.From(be, tensor.Int32, targets, B, T)
	eval := func() float64 {
		var l float64
		tensor.NoGrad(func() { l = m.Loss(x, y).Item() })
		return l
	}
	before := snapshot(m)
	base := eval()
	ad := apply(t, m, lora.Config{R: 8, Alpha: 16, Targets: lora.Targets{lora.AllLinear}, Seed: 1})
	ps := ad.Params()
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2}, train.ParamGroup{Params: model.Tensors(ps)})
	if err != nil {
		t.Fatal(err)
	}
	weights := make([]train.Weight, len(ps))
	for i, p := range ps {
		weights[i] = train.Weight{Name: p.Name, Tensor: p.Tensor}
	}
	ckpt := t.TempDir()
	_, err = train.Loop(t.Context(), m, opt, train.NextToken{}, &fixedBatches{x: x, y: y},
		train.LoopConfig{Steps: 40, ClipNorm: 1, CheckpointDir: ckpt, CheckpointEvery: 40, Keep: 1, Weights: weights})
	if err != nil {
		t.Fatal(err)
	}
	tuned := eval()
	t.Logf("aidreams260K LoRA r=8 all-linear (%d adapter values): task loss %.4f -> %.4f in 40 steps", ad.NumParams(), base, tuned)
	if !(tuned < 0.5*base) {
		t.Errorf("task loss %.4f -> %.4f, want below half", base, tuned)
	}
	checkBitIdentical(t, m, before)
	if err := ad.SetEnabled(false); err != nil {
		t.Fatal(err)
	}
	if off := eval(); off != base {
		t.Errorf("adapter off: loss %v, the base model's %v", off, base)
	}
	if err := ad.SetEnabled(true); err != nil {
		t.Fatal(err)
	}
	// The run's checkpoint holds the adapter alone: it resumes into a
	// fresh adapter on a fresh copy of the base model.
	m2, _, err := convert.ImportLlama2C(dir+"/aidreams260K.bin", "", be, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	ad2 := apply(t, m2, lora.Config{R: 8, Alpha: 16, Targets: lora.Targets{lora.AllLinear}, Seed: 2})
	ps2 := ad2.Params()
	opt2, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2}, train.ParamGroup{Params: model.Tensors(ps2)})
	if err != nil {
		t.Fatal(err)
	}
	w2 := make([]train.Weight, len(ps2))
	for i, p := range ps2 {
		w2[i] = train.Weight{Name: p.Name, Tensor: p.Tensor}
	}
	if step, err := train.Resume(ckpt, w2, opt2, nil); err != nil || step != 40 {
		t.Fatalf("resume: step %d, %v", step, err)
	}
	var resumed float64
	tensor.NoGrad(func() { resumed = m2.Loss(x, y).Item() })
	if resumed != tuned {
		t.Errorf("resumed adapter's loss %v, the tuned one's %v", resumed, tuned)
	}
	// The text generated after the prompt now follows the task.
	out, err := model.Generate(m, tok, [][]int32{tok.Encode("Lily's dragon is called", tokenizer.EncodeOptions{AddSpecial: true})},
		model.GenerateConfig{MaxNewTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after tuning: Lily's dragon is called%s", out[0].Text)
	if !strings.Contains(out[0].Text, "Zib") {
		t.Errorf("tuned model continues %q, want Zib", out[0].Text)
	}
}
