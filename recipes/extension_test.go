package recipes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor/cpu"
)

// freezeExt trains only the parameters whose name has a prefix, and
// writes a file when the run finishes, as LoRA and export extensions do.
type freezeExt struct{}

type freezeConfig struct {
	Prefix string `yaml:"prefix"`
	Note   string `yaml:"note"`
}

func (freezeExt) Section() string { return "tfreeze" }
func (freezeExt) NewConfig() any  { return &freezeConfig{Note: "done"} }
func (freezeExt) Validate(r *Recipe, cfg any) error {
	if cfg.(*freezeConfig).Prefix == "" {
		return rangeErr("tfreeze.prefix", `""`, "a parameter name prefix")
	}
	return nil
}

func (freezeExt) PrepareModel(e *Env, m model.Model, cfg any) ([]model.NamedParam, error) {
	var keep []model.NamedParam
	for _, p := range m.Params() {
		if strings.HasPrefix(p.Name, cfg.(*freezeConfig).Prefix) {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("tfreeze.prefix: no parameter matches")
	}
	return keep, nil
}

func (freezeExt) Finish(ctx context.Context, e *Env, cfg any, s *Summary) error {
	path := filepath.Join(e.Dir, "finished.txt")
	if s.Extra == nil {
		s.Extra = map[string]string{}
	}
	s.Extra["finished"] = path
	return os.WriteFile(path, []byte(cfg.(*freezeConfig).Note), 0o644)
}

// TestExtensions: an extension's section is strict and validated, its
// ModelPreparer decides what trains and is checkpointed, its Finisher
// runs after the method, and a recipe without the section runs neither.
func TestExtensions(t *testing.T) {
	RegisterExtension(freezeExt{})
	t.Cleanup(func() {
		registryMu.Lock()
		delete(extensions, "tfreeze")
		registryMu.Unlock()
	})
	for _, bad := range []Extension{freezeExt{}, sectionExt("train"), sectionExt("")} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterExtension(%q) did not panic", bad.Section())
				}
			}()
			RegisterExtension(bad)
		}()
	}

	src := `name: x
model: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 64}
tokenizer: {train: {vocab_size: 300}}
data: {arith: {n: 100}, batch: 2, seq: 64}
train: {steps: 2, schedule: {kind: constant, peak_lr: 0.01}}
tfreeze: {prefix: output_norm}
`
	checkRecipeEdits(t, src, []recipeEdit{
		{"ok", "", "", ""},
		{"unknown-key", "{prefix: output_norm}", "{prefx: output_norm}", `tfreeze.prefx: unknown key "prefx"; did you mean "prefix"?`},
		{"validate", "{prefix: output_norm}", "{note: x}", `tfreeze.prefix: "" is out of range (allowed: a parameter name prefix)`},
	})
	for _, on := range []bool{true, false} {
		text := src
		if !on {
			text = strings.Replace(src, "tfreeze: {prefix: output_norm}\n", "", 1)
		}
		r, err := Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if on {
			if b, err := r.Marshal(); err != nil || !strings.Contains(string(b), "tfreeze:\n  prefix: output_norm\n  note: done\n") {
				t.Fatalf("Marshal lost the extension's section: %v\n%s", err, b)
			}
		}
		r.Out = t.TempDir()
		sum, err := Run(context.Background(), cpu.New(2), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := LoadCheckpoint(r.Out)
		if err != nil {
			t.Fatal(err)
		}
		_, finished := sum.Extra["finished"]
		md, _ := os.ReadFile(filepath.Join(r.Out, SummaryFile))
		if on && (len(c.Tensors) != 1 || c.Tensors[0].Name != "output_norm.weight" || !finished || !strings.Contains(string(md), "| finished |")) {
			t.Fatalf("with the section: checkpoint holds %d tensors (%v), extra %v", len(c.Tensors), c.Tensors[0].Name, sum.Extra)
		}
		if !on && (len(c.Tensors) < 3 || finished) {
			t.Fatalf("without the section: checkpoint holds %d tensors, extra %v", len(c.Tensors), sum.Extra)
		}
	}
	// An override to null removes the section.
	off, err := ParseOverride("tfreeze=null")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse([]byte(src), off)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Extensions["tfreeze"]; ok {
		t.Error("--set tfreeze=null left the section on")
	}
}

// sectionExt is an extension with a given section, for collisions.
type sectionExt string

func (s sectionExt) Section() string           { return string(s) }
func (sectionExt) NewConfig() any              { return &freezeConfig{} }
func (sectionExt) Validate(*Recipe, any) error { return nil }

// selfDecoding takes a list or one comma-separated string, as lora.Targets
// does; the key checker must leave its forms to it.
type selfDecoding []string

func (s *selfDecoding) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = strings.Split(n.Value, ",")
		return nil
	}
	var l []string
	err := n.Decode(&l)
	*s = l
	return err
}

type targetsConfig struct {
	Targets selfDecoding `yaml:"targets"`
}

func TestExtensionSelfDecodingField(t *testing.T) {
	RegisterExtension(targetsExt{})
	t.Cleanup(func() {
		registryMu.Lock()
		delete(extensions, "ttargets")
		registryMu.Unlock()
	})
	base := "name: x\nmodel: {checkpoint: x}\ndata: {batch: 1, seq: 1}\ntrain: {steps: 1}\n"
	for _, sec := range []string{"ttargets:\n  targets: q,k", "ttargets: {targets: [q, k]}"} {
		r, err := Parse([]byte(base + sec + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", sec, err)
		}
		if got := r.Extensions["ttargets"].(*targetsConfig).Targets; len(got) != 2 || got[1] != "k" {
			t.Fatalf("%s decoded to %v", sec, got)
		}
	}
	if _, err := Parse([]byte(base + "ttargets: {target: q}\n")); err == nil || !strings.Contains(err.Error(), `did you mean "targets"?`) {
		t.Fatalf("unknown key in the section: %v", err)
	}
}

type targetsExt struct{}

func (targetsExt) Section() string             { return "ttargets" }
func (targetsExt) NewConfig() any              { return &targetsConfig{} }
func (targetsExt) Validate(*Recipe, any) error { return nil }
