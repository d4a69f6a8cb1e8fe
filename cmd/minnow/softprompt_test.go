package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/recipes"
)

// TestSoftPromptRecipe runs arith-prompt at tiny size on a tiny
// arith-pretrain model and checks what the soft_prompt: section promises:
// the step checkpoints hold only the prompt (and resume), the finished run
// holds the prompt and the unchanged base, generate reads both, and export
// refuses the run, since GGUF cannot carry the prompt.
func TestSoftPromptRecipe(t *testing.T) {
	dir := t.TempDir()
	pre, run := filepath.Join(dir, "pre"), filepath.Join(dir, "prompt")
	if code, _, errOut := runCLI(append([]string{"run", "arith-pretrain", "--quiet", "--out", pre}, tinySetsFor(t, "arith-pretrain")...)...); code != 0 {
		t.Fatalf("arith-pretrain: exit %d: %s", code, errOut)
	}
	args := append([]string{"run", "arith-prompt", "--quiet", "--out", run, "--set", "model.checkpoint=" + pre,
		"--set", "train.checkpoint_every=2", "--set", "soft_prompt.tokens=4"}, tinySetsFor(t, "arith-prompt")...)
	if code, _, errOut := runCLI(append(args, "--set", "train.steps=2")...); code != 0 {
		t.Fatalf("arith-prompt: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(args...); code != 0 {
		t.Fatalf("arith-prompt resumed: exit %d: %s", code, errOut)
	}
	step, err := recipes.LoadCheckpoint(filepath.Join(run, "step-000004.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, nt := range step.Tensors {
		names = append(names, nt.Name)
	}
	if len(names) != 1 || names[0] != "soft_prompt.embeddings" || step.Optimizer.Step != 4 {
		t.Fatalf("step checkpoint holds %v at optimizer step %d; want soft_prompt.embeddings alone at step 4", names, step.Optimizer.Step)
	}
	// The base stays as pretrained.
	baseCk, err := recipes.LoadCheckpoint(pre)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := recipes.LoadCheckpoint(filepath.Join(run, recipes.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(saved.Tensors) != len(baseCk.Tensors) {
		t.Fatalf("%s holds %d tensors, the base %d", recipes.ModelFile, len(saved.Tensors), len(baseCk.Tensors))
	}
	for i, nt := range saved.Tensors {
		if nt.Name != baseCk.Tensors[i].Name || !bytes.Equal(nt.Data, baseCk.Tensors[i].Data) {
			t.Errorf("%s changed in training", nt.Name)
		}
	}
	// generate puts the prompt first, so what it samples differs from the
	// base's samples with the same seed.
	gen := func(src string) string {
		code, out, errOut := runCLI("generate", "--run", src, "--prompt", "What is 2 + 3?\n", "--temperature", "1", "--seed", "3", "--max-new", "12")
		if code != 0 {
			t.Fatalf("generate --run %s: exit %d: %s", src, code, errOut)
		}
		return out
	}
	if withPrompt, base := gen(run), gen(pre); withPrompt == base {
		t.Errorf("generate gave %q with the soft prompt and without it", base)
	}
	if code, _, errOut := runCLI("export", "gguf", "--checkpoint", run, "--out", filepath.Join(dir, "m.gguf")); code == 0 || !strings.Contains(errOut, recipes.SoftPromptFile) {
		t.Errorf("export of a soft-prompt run: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI("export", "gguf", "--checkpoint", filepath.Join(run, recipes.ModelFile), "--out", filepath.Join(dir, "m.gguf")); code != 0 {
		t.Errorf("export of its base: exit %d: %s", code, errOut)
	}
}
