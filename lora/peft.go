package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/safetensors"
	"github.com/minnowml/minnow/tensor"
)

// The files of a PEFT adapter folder.
const (
	PEFTConfigFile  = "adapter_config.json"
	PEFTWeightsFile = "adapter_model.safetensors"
)

// peftPrefix is what PEFT's PeftModelForCausalLM puts before the
// transformers module names in saved adapters.
const peftPrefix = "base_model.model."

// peftConfig is the part of PEFT's LoraConfig that minnow reads and
// writes; PEFT fills in its defaults for the keys left out.
type peftConfig struct {
	PeftType       string             `json:"peft_type"`
	TaskType       string             `json:"task_type,omitempty"`
	BaseModel      string             `json:"base_model_name_or_path,omitempty"`
	R              int                `json:"r"`
	LoraAlpha      float64            `json:"lora_alpha"`
	LoraDropout    float64            `json:"lora_dropout"`
	TargetModules  json.RawMessage    `json:"target_modules,omitempty"`
	UseRSLoRA      bool               `json:"use_rslora"`
	UseDoRA        bool               `json:"use_dora"`
	RankPattern    map[string]int     `json:"rank_pattern"`
	AlphaPattern   map[string]float64 `json:"alpha_pattern"`
	Bias           string             `json:"bias"`
	FanInFanOut    bool               `json:"fan_in_fan_out"`
	InitLoraWeight bool               `json:"init_lora_weights"`
	InferenceMode  bool               `json:"inference_mode"`
	ModulesToSave  []string           `json:"modules_to_save"`
}

// hfModule returns the transformers module name of a linear layer of a
// model of type modelType, such as "model.layers.0.self_attn.q_proj", or
// false when it has none.
func hfModule(modelType string, l model.NamedLinear) (string, bool) {
	if l.Kind == "output" {
		return "lm_head", true
	}
	if l.Block < 0 {
		return "", false
	}
	n := fmt.Sprint(l.Block)
	if modelType == "gpt2" {
		sub := map[string]string{"attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}[l.Kind]
		return "transformer.h." + n + "." + sub, sub != ""
	}
	sub := map[string]string{"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
		"attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}[l.Kind]
	return "model.layers." + n + "." + sub, sub != ""
}

// moduleKey returns the shortest suffix of a module name that PEFT's
// target_modules matching tells apart from the other kinds of the
// architecture: "q_proj", but "attn.c_proj" for GPT-2, whose MLP has a
// c_proj too.
func moduleKey(modelType, module string) string {
	parts := strings.Split(module, ".")
	if modelType == "gpt2" && len(parts) >= 2 && parts[len(parts)-1] == "c_proj" {
		return strings.Join(parts[len(parts)-2:], ".")
	}
	return parts[len(parts)-1]
}

// permutedRows returns the number of heads whose rows of B must be
// permuted between Hugging Face's rotate-half layout and minnow's
// adjacent pairs (the importer's Q/K permutation), or 0.
func permutedRows(cfg model.Config, kind string) int {
	if cfg.ModelType != "llama" && cfg.ModelType != "mistral" {
		return 0
	}
	switch kind {
	case "attn_q":
		return cfg.NumAttentionHeads
	case "attn_k":
		return cfg.KVHeads()
	}
	return 0
}

// halvesToPairs reorders the rows of t [heads·hd, ...] from rotate-half
// order to adjacent pairs; pairsToHalves undoes it.
func halvesToPairs(t *tensor.Tensor, heads int) *tensor.Tensor {
	rows, cols := t.Dim(0), t.Dim(1)
	return t.Reshape(heads, 2, rows/heads/2, cols).Transpose(1, 2).Reshape(rows, cols)
}

func pairsToHalves(t *tensor.Tensor, heads int) *tensor.Tensor {
	rows, cols := t.Dim(0), t.Dim(1)
	return t.Reshape(heads, rows/heads/2, 2, cols).Transpose(1, 2).Reshape(rows, cols)
}

// PEFTOptions carries what SavePEFT records besides the adapter.
type PEFTOptions struct {
	// BaseModel is written as base_model_name_or_path, the Hugging Face
	// model id or folder PEFT loads the base from.
	BaseModel string
}

// SavePEFT writes the adapter to dir (created if needed) in PEFT's layout,
// adapter_config.json and adapter_model.safetensors, for base model m, the
// model the adapter is attached to. B rows of q_proj and k_proj are
// permuted back to Hugging Face's layout for Llama and Mistral. Layers
// whose rank or alpha differ from the config's are listed in rank_pattern
// and alpha_pattern under their full module names, and target_modules
// lists short names only for kinds adapted in every block. It returns an
// error when a layer has no Hugging Face name or a file cannot be written.
func (a *Adapter) SavePEFT(dir string, m model.Model, opt PEFTOptions) error {
	mc := m.Config()
	r, alpha := a.cfg.R, a.cfg.Alpha
	if alpha == 0 {
		alpha = float64(r)
	}
	pc := peftConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModel: opt.BaseModel, R: r, LoraAlpha: alpha,
		LoraDropout: a.cfg.Dropout, UseRSLoRA: a.cfg.RSLoRA, RankPattern: map[string]int{}, AlphaPattern: map[string]float64{},
		Bias: "none", FanInFanOut: mc.ModelType == "gpt2", InitLoraWeight: true, InferenceMode: true}
	adapted := map[string]bool{}
	for _, l := range a.layers {
		adapted[l.Name] = true
	}
	// A key may stand for all its modules only when every one is adapted,
	// or PEFT would adapt the rest too.
	complete, modules := map[string]bool{}, map[string][]string{}
	for _, l := range model.Linears(m) {
		mod, ok := hfModule(mc.ModelType, l)
		if !ok {
			continue
		}
		key := moduleKey(mc.ModelType, mod)
		if _, seen := complete[key]; !seen {
			complete[key] = true
		}
		if adapted[l.Name] {
			modules[key] = append(modules[key], mod)
		} else {
			complete[key] = false
		}
	}
	var targets []string
	for _, key := range slices.Sorted(maps.Keys(modules)) {
		if complete[key] {
			targets = append(targets, key)
		} else {
			targets = append(targets, modules[key]...)
		}
	}
	tm, err := json.Marshal(targets)
	if err != nil {
		return fmt.Errorf("lora: save peft: %w", err)
	}
	pc.TargetModules = tm
	byName := map[string]model.NamedLinear{}
	for _, l := range model.Linears(m) {
		byName[l.Name] = l
	}
	var named []safetensors.Named
	var temps []*tensor.Tensor
	defer func() {
		for _, t := range temps {
			t.Release()
		}
	}()
	for _, l := range a.layers {
		mod, ok := hfModule(mc.ModelType, byName[l.Name])
		if !ok {
			return fmt.Errorf("lora: save peft: layer %s has no Hugging Face module name", l.Name)
		}
		if l.R != r {
			pc.RankPattern[mod] = l.R
		}
		if l.Alpha != alpha {
			pc.AlphaPattern[mod] = l.Alpha
		}
		b := l.B
		if h := permutedRows(mc, l.Kind); h > 0 {
			if err := tensor.Catch(func() { tensor.NoGrad(func() { b = pairsToHalves(l.B, h) }) }); err != nil {
				return fmt.Errorf("lora: save peft: %s: %w", l.Name, err)
			}
			temps = append(temps, b)
		}
		named = append(named,
			safetensors.Named{Name: peftPrefix + mod + ".lora_A.weight", Tensor: l.A},
			safetensors.Named{Name: peftPrefix + mod + ".lora_B.weight", Tensor: b})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lora: save peft: %w", err)
	}
	js, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return fmt.Errorf("lora: save peft: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, PEFTConfigFile), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("lora: save peft: %w", err)
	}
	if err := safetensors.Write(filepath.Join(dir, PEFTWeightsFile), named, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("lora: save peft: %w", err)
	}
	return nil
}

// patternValue returns the value of the first key of pats, longest keys
// first, that matches module as PEFT matches rank_pattern and
// alpha_pattern keys: the key is a regular expression that must match a
// dot-separated suffix of the module name.
func patternValue[V any](pats map[string]V, module string) (V, bool, error) {
	keys := slices.SortedFunc(maps.Keys(pats), func(a, b string) int { return len(b) - len(a) })
	for _, k := range keys {
		re, err := regexp.Compile(`^(.*\.)?(` + k + `)$`)
		if err != nil {
			var zero V
			return zero, false, fmt.Errorf("pattern %q: %w", k, err)
		}
		if re.MatchString(module) {
			return pats[k], true, nil
		}
	}
	var zero V
	return zero, false, nil
}

// LoadPEFT reads a PEFT LoRA adapter folder (adapter_config.json and
// adapter_model.safetensors) and attaches it to m, freezing m's parameters
// as Apply does. Every adapted module must be a linear layer of m; rank
// comes from each lora_A's shape, alpha from alpha_pattern or lora_alpha,
// and q_proj and k_proj lora_B rows are permuted as the Hugging Face
// importer permutes those weights (Llama, Mistral). It returns an error
// when a file is missing or malformed, the adapter is not plain LoRA (DoRA,
// trained biases, modules_to_save), a tensor names a module m lacks or has
// the wrong shape, or a layer already has an adapter; on error no adapter
// stays attached.
func LoadPEFT(dir string, m model.Model) (*Adapter, error) {
	fail := func(err error) (*Adapter, error) { return nil, fmt.Errorf("lora: load peft %s: %w", dir, err) }
	js, err := os.ReadFile(filepath.Join(dir, PEFTConfigFile))
	if err != nil {
		return fail(err)
	}
	var pc peftConfig
	if err := json.Unmarshal(js, &pc); err != nil {
		return fail(fmt.Errorf("%s: %w", PEFTConfigFile, err))
	}
	switch {
	case pc.PeftType != "LORA":
		return fail(fmt.Errorf("peft_type %q is not LORA", pc.PeftType))
	case pc.UseDoRA:
		return fail(errors.New("DoRA adapters are not supported"))
	case pc.Bias != "" && pc.Bias != "none":
		return fail(fmt.Errorf("bias %q: adapters with trained biases are not supported", pc.Bias))
	case len(pc.ModulesToSave) > 0:
		return fail(fmt.Errorf("modules_to_save %v: fully trained modules are not supported", pc.ModulesToSave))
	case pc.R <= 0 || !(pc.LoraAlpha > 0):
		return fail(fmt.Errorf("r %d and lora_alpha %g must be positive", pc.R, pc.LoraAlpha))
	}
	f, err := safetensors.Open(filepath.Join(dir, PEFTWeightsFile))
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	mc := m.Config()
	byModule := map[string]model.NamedLinear{}
	for _, l := range model.Linears(m) {
		if mod, ok := hfModule(mc.ModelType, l); ok {
			byModule[mod] = l
		}
	}
	found := map[string]bool{}
	for _, name := range f.Names() {
		mod, ok := strings.CutPrefix(name, peftPrefix)
		var ab string
		if ok {
			mod, ab, ok = strings.Cut(mod, ".lora_")
		}
		if !ok || (ab != "A.weight" && ab != "B.weight") {
			return fail(fmt.Errorf("tensor %q is not a LoRA A or B weight", name))
		}
		if _, ok := byModule[mod]; !ok {
			return fail(fmt.Errorf("tensor %q adapts module %q, which the %s model lacks", name, mod, mc.ModelType))
		}
		found[mod] = true
	}
	if len(found) == 0 {
		return fail(errors.New("no LoRA tensors"))
	}
	var specs []layerSpec
	var mods []string
	for _, l := range model.Linears(m) {
		mod, _ := hfModule(mc.ModelType, l)
		if !found[mod] {
			continue
		}
		ai, okA := f.Info(peftPrefix + mod + ".lora_A.weight")
		_, okB := f.Info(peftPrefix + mod + ".lora_B.weight")
		if !okA || !okB || len(ai.Shape) != 2 {
			return fail(fmt.Errorf("module %s lacks lora_A or lora_B, or lora_A is not a matrix", mod))
		}
		s := layerSpec{Name: l.Name, R: ai.Shape[0], Alpha: pc.LoraAlpha}
		want := pc.R
		if r, ok, err := patternValue(pc.RankPattern, mod); err != nil {
			return fail(fmt.Errorf("rank_pattern: %w", err))
		} else if ok {
			want = r
		}
		if s.R != want {
			return fail(fmt.Errorf("module %s: lora_A has rank %d, the config gives %d", mod, s.R, want))
		}
		if al, ok, err := patternValue(pc.AlphaPattern, mod); err != nil {
			return fail(fmt.Errorf("alpha_pattern: %w", err))
		} else if ok {
			s.Alpha = al
		}
		specs = append(specs, s)
		mods = append(mods, mod)
	}
	cfg := Config{R: pc.R, Alpha: pc.LoraAlpha, Dropout: pc.LoraDropout, RSLoRA: pc.UseRSLoRA}
	for _, s := range specs {
		cfg.Targets = append(cfg.Targets, s.Name)
	}
	ad, err := attach(m, cfg, specs, false)
	if err != nil {
		return fail(err)
	}
	if err := ad.readPEFT(f, mods, mc); err != nil {
		ad.Remove()
		return fail(err)
	}
	return ad, nil
}

// readPEFT copies each layer's A and B from f, permuting B's rows where the
// importer permutes the weight's.
func (a *Adapter) readPEFT(f *safetensors.File, mods []string, mc model.Config) error {
	for i, l := range a.layers {
		be, dt := l.A.Backend(), l.A.DType()
		ta, err := f.Tensor(be, dt, peftPrefix+mods[i]+".lora_A.weight")
		if err != nil {
			return err
		}
		tb, err := f.Tensor(be, dt, peftPrefix+mods[i]+".lora_B.weight")
		if err != nil {
			ta.Release()
			return err
		}
		ts := []*tensor.Tensor{ta, tb}
		if h := permutedRows(mc, l.Kind); h > 0 && len(tb.Shape()) == 2 && tb.Dim(0)%(2*h) == 0 {
			if err := tensor.Catch(func() { tensor.NoGrad(func() { ts[1] = halvesToPairs(tb, h) }) }); err != nil {
				return fmt.Errorf("%s: %w", mods[i], err)
			}
			tb.Release()
		}
		ps := []model.NamedParam{{Name: mods[i] + ".lora_A.weight", Tensor: l.A}, {Name: mods[i] + ".lora_B.weight", Tensor: l.B}}
		if err := fill(ps, ts); err != nil {
			return err
		}
	}
	return nil
}
