package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/recipes"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// TestLoRARecipe runs arith-lora at tiny size on a tiny arith-pretrain
// model and checks what the lora: and export: sections promise: the step
// checkpoints hold only adapters (and resume), the finished run holds the
// adapters in both formats and the merged model, generate reads the
// merged model, and the exported GGUF file is that model.
func TestLoRARecipe(t *testing.T) {
	dir := t.TempDir()
	pre, run := filepath.Join(dir, "pre"), filepath.Join(dir, "lora")
	if code, _, errOut := runCLI(append([]string{"run", "arith-pretrain", "--quiet", "--out", pre}, tinySetsFor(t, "arith-pretrain")...)...); code != 0 {
		t.Fatalf("arith-pretrain: exit %d: %s", code, errOut)
	}
	args := append([]string{"run", "arith-lora", "--quiet", "--out", run, "--set", "model.checkpoint=" + pre}, tinySetsFor(t, "arith-lora")...)
	if code, _, errOut := runCLI(append(args, "--set", "train.steps=2")...); code != 0 {
		t.Fatalf("arith-lora: exit %d: %s", code, errOut)
	}
	// A second call with more steps resumes from the adapter-only
	// checkpoint of step 2.
	if code, _, errOut := runCLI(args...); code != 0 {
		t.Fatalf("arith-lora resumed: exit %d: %s", code, errOut)
	}
	be := cpu.New(1)
	step, err := recipes.LoadCheckpoint(filepath.Join(run, "step-000004.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, nt := range step.Tensors {
		if !strings.HasSuffix(nt.Name, ".lora_a") && !strings.HasSuffix(nt.Name, ".lora_b") {
			t.Fatalf("step checkpoint holds %s; want adapters only", nt.Name)
		}
	}
	for _, f := range []string{recipes.AdapterFile, filepath.Join(recipes.PEFTDir, lora.PEFTConfigFile), filepath.Join(recipes.PEFTDir, lora.PEFTWeightsFile), "model-q8_0.gguf"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Error(err)
		}
	}

	// The merged model equals the pretrained base with the saved adapter.
	baseCk, err := recipes.LoadCheckpoint(pre)
	if err != nil {
		t.Fatal(err)
	}
	base, _, err := recipes.LoadModel(be, baseCk)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.Load(filepath.Join(run, recipes.AdapterFile), base)
	if err != nil {
		t.Fatal(err)
	}
	if ad.NumParams() == 0 {
		t.Fatal("empty adapter")
	}
	mergedCk, err := recipes.LoadCheckpoint(run)
	if err != nil {
		t.Fatal(err)
	}
	merged, _, err := recipes.LoadModel(be, mergedCk)
	if err != nil {
		t.Fatal(err)
	}
	ids := tensor.FromInt32([]int32{5, 9, 12, 7, 3, 30}, 1, 6).To(be)
	want := logits(t, base, ids)
	if d := maxAbsDiff(want, logits(t, merged, ids)); d > 1e-5 {
		t.Errorf("merged model vs base+adapter: max logit difference %g", d)
	}
	if err := ad.SetEnabled(false); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(want, logits(t, base, ids)); d == 0 {
		t.Error("the trained adapter does not change the model")
	}
	imported, _, err := convert.ImportGGUF(filepath.Join(run, "model-q8_0.gguf"), be)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(want, logits(t, imported, ids)); d > 0.5 {
		t.Errorf("exported Q8_0 model vs merged: max logit difference %g", d)
	}
	if code, out, errOut := runCLI("generate", "--run", run, "--prompt", "What is 2 + 3?\n", "--temperature", "0", "--max-new", "4"); code != 0 || out == "" {
		t.Errorf("generate --run on a LoRA run: exit %d, %q, %s", code, out, errOut)
	}
}

func logits(t *testing.T, m model.Model, ids *tensor.Tensor) []float32 {
	t.Helper()
	var out []float32
	if err := tensor.Catch(func() {
		tensor.NoGrad(func() { out = m.Forward(ids, model.ForwardOptions{}).Float32s() })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, float64(abs32(a[i]-b[i])))
	}
	return d
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
