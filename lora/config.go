package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/minnowml/minnow/model"
)

// Config says which linear layers get adapters and how they are shaped and
// initialised. Recipes embed it under the key lora:
//
//	lora: {r: 16, alpha: 32, targets: all-linear}
type Config struct {
	// R is the rank of every adapter unless an override changes it; it
	// must be positive.
	R int `yaml:"r" json:"r"`
	// Alpha scales the adapters' output by Alpha/R (Alpha/√R with
	// RSLoRA); 0 means R, a scale of 1.
	Alpha float64 `yaml:"alpha" json:"alpha"`
	// Dropout is the probability with which each input feature of an
	// adapter is zeroed while gradients are recorded (training); it is in
	// [0, 1).
	Dropout float64 `yaml:"dropout" json:"dropout"`
	// Targets chooses the layers: "all-linear", kinds (q, k, v, o, gate,
	// up, down, qkv, output, or llama.cpp's attn_q, …, and Hugging Face's
	// q_proj, …), or glob patterns over layer names. Empty means
	// all-linear. In YAML it is a list or one comma-separated string.
	Targets Targets `yaml:"targets" json:"targets"`
	// RSLoRA scales by Alpha/√R instead of Alpha/R (rank-stabilised
	// LoRA), so that higher ranks keep learning.
	RSLoRA bool `yaml:"rslora" json:"rslora"`
	// Init is how A starts: "kaiming" (the default, uniform in
	// ±1/√in as PEFT draws it) or "gaussian" (normal with standard
	// deviation 1/R). B starts at zero either way.
	Init string `yaml:"init" json:"init"`
	// Overrides change the rank or alpha of the layers they match; when
	// several match a layer, the last one wins.
	Overrides []Override `yaml:"overrides" json:"overrides"`
	// Seed drives A's initialisation and the dropout masks.
	Seed uint64 `yaml:"seed" json:"seed"`
}

// Override sets the rank or alpha of some of the adapted layers.
type Override struct {
	// Match selects layers as a Targets entry does (a kind or a glob
	// pattern over layer names).
	Match string `yaml:"match" json:"match"`
	// R replaces the rank when positive.
	R int `yaml:"r" json:"r"`
	// Alpha replaces alpha when positive.
	Alpha float64 `yaml:"alpha" json:"alpha"`
}

// Targets lists target specifications; see Config.Targets.
type Targets []string

// UnmarshalYAML accepts a sequence of strings or one string whose
// comma-separated parts are the targets. It returns an error for any other
// node or an empty entry.
func (t *Targets) UnmarshalYAML(n *yaml.Node) error {
	var list []string
	switch n.Kind {
	case yaml.ScalarNode:
		list = strings.Split(n.Value, ",")
	case yaml.SequenceNode:
		if err := n.Decode(&list); err != nil {
			return err
		}
	default:
		return fmt.Errorf("line %d: targets must be a string or a list of strings", n.Line)
	}
	return t.set(list)
}

// UnmarshalJSON accepts a list of strings or one comma-separated string.
// It returns an error for other JSON or an empty entry.
func (t *Targets) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return t.set(strings.Split(s, ","))
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("lora: targets must be a string or a list of strings")
	}
	return t.set(list)
}

func (t *Targets) set(list []string) error {
	if len(list) == 1 && strings.TrimSpace(list[0]) == "" {
		// An empty string, or JSON null, means the default.
		*t = nil
		return nil
	}
	out := make(Targets, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			return errors.New("lora: empty target in targets")
		}
		out = append(out, s)
	}
	*t = out
	return nil
}

// AllLinear is the target of every linear layer except the output head.
const AllLinear = "all-linear"

// kindAliases maps the short and Hugging Face names of a layer kind to the
// llama.cpp kinds that model.Linears reports. q, k and v also select
// GPT-2's fused projection, which computes all three.
var kindAliases = map[string][]string{
	"q": {"attn_q", "attn_qkv"}, "k": {"attn_k", "attn_qkv"}, "v": {"attn_v", "attn_qkv"},
	"o": {"attn_output"}, "gate": {"ffn_gate"}, "up": {"ffn_up"}, "down": {"ffn_down"},
	"qkv": {"attn_qkv"}, "output": {"output"},
	"q_proj": {"attn_q"}, "k_proj": {"attn_k"}, "v_proj": {"attn_v"}, "o_proj": {"attn_output"},
	"gate_proj": {"ffn_gate"}, "up_proj": {"ffn_up"}, "down_proj": {"ffn_down"}, "lm_head": {"output"},
	"c_attn": {"attn_qkv"}, "c_fc": {"ffn_up"},
}

var llamaCppKinds = []string{"attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// matches reports whether the target spec selects layer l. It returns an
// error for a malformed glob pattern.
func matches(spec string, l model.NamedLinear) (bool, error) {
	switch {
	case spec == AllLinear:
		return l.Kind != "output", nil
	case kindAliases[spec] != nil:
		return slices.Contains(kindAliases[spec], l.Kind), nil
	case slices.Contains(llamaCppKinds, spec):
		return l.Kind == spec, nil
	}
	ok, err := path.Match(spec, l.Name)
	if err != nil {
		return false, fmt.Errorf("lora: target %q: %w", spec, err)
	}
	return ok, nil
}

// layerSpec is one layer to adapt with its rank and alpha.
type layerSpec struct {
	Name  string  `json:"name"`
	R     int     `json:"r"`
	Alpha float64 `json:"alpha"`
}

// validate checks the config's values.
func (c Config) validate() error {
	switch {
	case c.R <= 0:
		return fmt.Errorf("lora: r is %d, want a positive rank", c.R)
	case !(c.Alpha >= 0):
		return fmt.Errorf("lora: alpha is %g, want a number >= 0 (0 for r)", c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("lora: dropout is %g, want a probability in [0, 1)", c.Dropout)
	case c.Init != "" && c.Init != "kaiming" && c.Init != "gaussian":
		return fmt.Errorf("lora: init %q is unknown (want kaiming or gaussian)", c.Init)
	}
	for i, o := range c.Overrides {
		if o.Match == "" || o.R < 0 || !(o.Alpha >= 0) {
			return fmt.Errorf("lora: override %d: want a match, r >= 0 and alpha >= 0, got %q, %d, %g", i, o.Match, o.R, o.Alpha)
		}
	}
	return nil
}

// resolve returns the layers of ls that c selects, with their ranks and
// alphas, in the model's order. It returns an error when the config is
// invalid, a target or an override selects no layer (a typo must not train
// nothing), or a pattern is malformed.
func (c Config) resolve(ls []model.NamedLinear) ([]layerSpec, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	targets := c.Targets
	if len(targets) == 0 {
		targets = Targets{AllLinear}
	}
	used := make([]bool, len(targets))
	usedO := make([]bool, len(c.Overrides))
	var specs []layerSpec
	for _, l := range ls {
		chosen := false
		for i, t := range targets {
			ok, err := matches(t, l)
			if err != nil {
				return nil, err
			}
			if ok {
				chosen, used[i] = true, true
			}
		}
		if !chosen {
			continue
		}
		s := layerSpec{Name: l.Name, R: c.R, Alpha: c.Alpha}
		for i, o := range c.Overrides {
			ok, err := matches(o.Match, l)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			usedO[i] = true
			if o.R > 0 {
				s.R = o.R
			}
			if o.Alpha > 0 {
				s.Alpha = o.Alpha
			}
		}
		if s.Alpha == 0 {
			s.Alpha = float64(s.R)
		}
		specs = append(specs, s)
	}
	for i, ok := range used {
		if !ok {
			return nil, fmt.Errorf("lora: target %q matches no linear layer of the model", targets[i])
		}
	}
	for i, ok := range usedO {
		if !ok {
			return nil, fmt.Errorf("lora: override %d (%q) matches no adapted layer", i, c.Overrides[i].Match)
		}
	}
	return specs, nil
}
