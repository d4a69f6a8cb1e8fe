package rl

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestConfigsDecodeFromYAML: the configs recipes embed decode from
// snake_case YAML with unknown keys rejected.
func TestConfigsDecodeFromYAML(t *testing.T) {
	const doc = `
grpo:
  num_generations: 4
  scale_rewards: none
  std_epsilon: 0.001
  epsilon_low: 0.2
  epsilon_high: 0.28
  beta: 0.04
  num_iterations: 2
  loss_type: dr_grpo
  max_completion_length: 64
  mask_truncated_completions: true
  dynamic_sampling: true
  max_resample_rounds: 2
  temperature_scaled_logprobs: true
sampling: {temperature: 0.7, top_p: 0.9, top_k: 20, stop_strings: ["\n\n"], stop_tokens: [2], seed: 5}
prompts_per_step: 16
micro_batch: 8
clip_norm: 1
accuracy_reward: answer_match
sample_every: 10
`
	var c GRPOTrainerConfig
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := GRPOTrainerConfig{GRPO: GRPOConfig{NumGenerations: 4, ScaleRewards: ScaleNone, StdEpsilon: 0.001, EpsilonLow: 0.2,
		EpsilonHigh: 0.28, Beta: 0.04, NumIterations: 2, LossType: LossDrGRPO, MaxCompletionLength: 64, MaskTruncatedCompletions: true,
		DynamicSampling: true, MaxResampleRounds: 2, TemperatureScaledLogProbs: true},
		Sampling:       SamplingConfig{Temperature: 0.7, TopP: 0.9, TopK: 20, StopStrings: []string{"\n\n"}, StopTokens: []int32{2}, Seed: 5},
		PromptsPerStep: 16, MicroBatch: 8, ClipNorm: 1, AccuracyReward: "answer_match", SampleEvery: 10}
	got, _ := yaml.Marshal(c)
	exp, _ := yaml.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("decoded\n%s\nwant\n%s", got, exp)
	}

	others := []struct {
		doc string
		v   any
	}{
		{"{dpo: {loss_type: ipo, beta: 0.5, label_smoothing: 0.1, simpo_gamma: 1}, batch_pairs: 4, clip_norm: 1, seed: 3}", &DPOTrainerConfig{}},
		{"{levels: [{name: short, budget: 32, lambda: 0.5}], form: gate, prompt_template: '{level}: {prompt}', level_column: lvl}", &TLDRConfig{}},
		{"[{kind: format, weight: 0.5, format: {pattern: x, full_match: true, name: f}}, {kind: answer_match, answer_match: {column: a, extract: [boxed], tolerance: 0.1}}, {kind: soft_overlong, soft_overlong: {max_length: 10, cache: 2}}, {kind: external, external: {name: e, command: [sh], dir: /tmp, timeout_s: 3}}]", &[]RewardConfig{}},
		{"{start_id: 1, end_id: 2, temperature: 1.5}", &ThinkingTemperature{}},
	}
	for _, o := range others {
		dec := yaml.NewDecoder(strings.NewReader(o.doc))
		dec.KnownFields(true)
		if err := dec.Decode(o.v); err != nil {
			t.Errorf("%s: %v", o.doc, err)
		}
	}
	dec = yaml.NewDecoder(strings.NewReader("grpo: {epsilon: 0.2}"))
	dec.KnownFields(true)
	if err := dec.Decode(&GRPOTrainerConfig{}); err == nil {
		t.Error("unknown key: no error")
	}
}
