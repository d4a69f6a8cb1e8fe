package recipes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/distill"
	"github.com/minnowml/minnow/gguf"
)

// TestDistillBuiltinsParse checks that the distillation recipes parse,
// name the method and objective their names promise, and that ADPA+
// starts from the DCKD run.
func TestDistillBuiltinsParse(t *testing.T) {
	for _, tc := range []struct {
		name, objective, checkpoint string
	}{
		{"distill-kd", distill.ObjectiveKD, "runs/arith-sft-latest"},
		{"distill-dckd", distill.ObjectiveDCKD, "runs/arith-sft-latest"},
		{"distill-adpa", distill.ObjectiveADPA, "runs/arith-sft-latest"},
		{"distill-adpa-plus", distill.ObjectiveADPA, "runs/distill-dckd-latest"},
	} {
		src, err := Builtin(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		s, ok := r.MethodConfig.(*DistillSection)
		if r.Method != MethodDistill || !ok {
			t.Fatalf("%s: method %q", tc.name, r.Method)
		}
		if s.Objective != tc.objective || r.Model.Checkpoint != tc.checkpoint {
			t.Errorf("%s: objective %q from %q, want %q from %q", tc.name, s.Objective, r.Model.Checkpoint, tc.objective, tc.checkpoint)
		}
		if s.Teacher.Checkpoint != "runs/arith-sft-teacher-latest" || s.Teacher.Align.Steps == 0 {
			t.Errorf("%s: teacher %+v, want arith-sft-teacher aligned in the run", tc.name, s.Teacher)
		}
	}
	for _, name := range []string{"arith-pretrain-teacher", "arith-sft-teacher"} {
		src, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(src); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDistillValidate checks the distill section's errors name their key.
func TestDistillValidate(t *testing.T) {
	src, err := Builtin("distill-dckd")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set, want string
	}{
		{"distill.objective=ppo", "distill.objective"},
		{"distill.kd.divergence=tv", "distill.kd.divergence"},
		{"distill.kd.beta=2", "distill.kd.beta"},
		{"distill.gkd.lambda=-1", "distill.gkd.lambda"},
		{"distill.weights.chosen=-1", "distill.weights.chosen"},
		{"distill.cache.top_k=0", "distill.cache.top_k"},
		{"distill.teacher.align.beta=0", "distill.teacher.align.beta"},
		{"distill.teacher.align.generations=1", "distill.teacher.align.generations"},
		{"distill.teacher.dpo=/nonexistent/run", "distill.teacher.dpo"},
		{"distill.eval.baseline=/nonexistent/run", "distill.eval.baseline"},
		{"distill.teacher.align.max_new_tokens=0", "distill.teacher.align.max_new_tokens"},
		{"distill.kd.divergense=jsd", "divergence"},
	} {
		ov, err := ParseOverride(tc.set)
		if err != nil {
			t.Fatal(err)
		}
		teacher, _ := ParseOverride("distill.teacher.checkpoint=" + t.TempDir())
		r, err := Parse(src, ov, teacher)
		if err == nil {
			err = distillMethod{}.Validate(r)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: error %v, want one naming %s", tc.set, err, tc.want)
		}
	}
}

// TestSameTokenizer checks that a teacher run whose tokenizer.gguf
// differs from the student's is refused with a clear error, and that the
// same vocabulary passes, for a run directory and a checkpoint in it.
func TestSameTokenizer(t *testing.T) {
	vocab := func(extra string) *tokenizer.Vocab {
		v := &tokenizer.Vocab{Model: tokenizer.ModelBPE, Pre: "gpt-2", BOS: -1, EOS: 2, UNK: -1, PAD: -1, EOT: -1}
		v.Tokens = []string{"a", "b", "<|endoftext|>", extra}
		v.Types = []tokenizer.TokenType{tokenizer.TypeNormal, tokenizer.TypeNormal, tokenizer.TypeControl, tokenizer.TypeNormal}
		return v
	}
	dir := t.TempDir()
	if err := gguf.WriteFile(filepath.Join(dir, TokenizerFile), vocab("c").GGUFMetadata(), nil); err != nil {
		t.Fatal(err)
	}
	same, err := tokenizer.New(vocab("c"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := tokenizer.New(vocab("d"))
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(dir, "step-000001.ckpt")
	if err := os.WriteFile(ck, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, ck} {
		if err := sameTokenizer(path, same); err != nil {
			t.Errorf("%s with the same vocabulary: %v", path, err)
		}
		if err := sameTokenizer(path, other); err == nil || !strings.Contains(err.Error(), "share a tokenizer") {
			t.Errorf("%s with another vocabulary: %v", path, err)
		}
	}
}
