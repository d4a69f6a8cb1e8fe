package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/gguf"
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
	args := append([]string{"run", "arith-lora", "--quiet", "--out", run, "--set", "model.checkpoint=" + pre, "--set", "export.adapter=true"}, tinySetsFor(t, "arith-lora")...)
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
	// convert's llama.cpp tests load adapter files; here the recipe must
	// write one with an A and a B per adapted layer.
	af, err := gguf.Open(filepath.Join(run, recipes.AdapterGGUFFile))
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	if typ, _ := af.Metadata.String("general.type"); typ != "adapter" || len(af.Tensors)%2 != 0 || len(af.Tensors) == 0 {
		t.Errorf("adapter.gguf: general.type %q, %d tensors", typ, len(af.Tensors))
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

// TestRecipeModelSources: model.checkpoint takes a Hugging Face folder
// (with its tokenizer.json) and a GGUF file (with its vocabulary) as it
// takes a run directory, here by fine-tuning the transformers test model
// and then the GGUF file that run exported.
func TestRecipeModelSources(t *testing.T) {
	dir := t.TempDir()
	hf, err := filepath.Abs("../../convert/testdata/hf/llama-gqa")
	if err != nil {
		t.Fatal(err)
	}
	sets := append(tinySetsFor(t, "arith-sft"), "--set", "export.gguf=f32", "--set", "data.seq=127", "--set", "data.arith.max_digits=2")
	first := filepath.Join(dir, "from-hf")
	if code, _, errOut := runCLI(append([]string{"run", "arith-sft", "--quiet", "--out", first, "--set", "model.checkpoint=" + hf}, sets...)...); code != 0 {
		t.Fatalf("from a Hugging Face folder: exit %d: %s", code, errOut)
	}
	gg := filepath.Join(first, "model-f32.gguf")
	second := filepath.Join(dir, "from-gguf")
	if code, _, errOut := runCLI(append([]string{"run", "arith-sft", "--quiet", "--out", second, "--set", "model.checkpoint=" + gg, "--set", "train.steps=1"}, sets...)...); code != 0 {
		t.Fatalf("from a GGUF file: exit %d: %s", code, errOut)
	}
	// The GGUF file holds the first run's final weights exactly (f32), so
	// the second run starts where the first ended.
	be := cpu.New(1)
	want, err := recipes.LoadCheckpoint(first)
	if err != nil {
		t.Fatal(err)
	}
	got, err := recipes.LoadCheckpoint(gg)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := recipes.LoadModel(be, want)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := recipes.LoadModel(be, got)
	if err != nil {
		t.Fatal(err)
	}
	ids := tensor.FromInt32([]int32{5, 9, 12, 7}, 1, 4).To(be)
	if d := maxAbsDiff(logits(t, a, ids), logits(t, b, ids)); d != 0 {
		t.Errorf("model from the exported GGUF differs from the run's by %g", d)
	}
}
