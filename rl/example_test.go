package rl_test

import (
	"context"
	"os"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/rl"
	"github.com/minnowml/minnow/train"
)

// Example_grpo wires a GRPO run on GSM8K-style prompts: an answer-match
// reward plus DAPO's soft overlong punishment, clip-higher, dynamic
// sampling and a k3 penalty against the frozen base of a LoRA policy.
// (Compiled, not run: it needs a model, a tokenizer and a LoRA adapter.)
func Example_grpo() {
	var (
		policy  model.Model         // e.g. a model with lora.Apply'd adapters
		adapter rl.Switch           // the *lora.Adapter
		tok     tokenizer.Tokenizer // the model's tokenizer
		opt     *train.AdamW        // over the adapter's parameters
	)
	one := 1.0
	rewards, err := rl.BuildRewards([]rl.RewardConfig{
		{Kind: rl.RewardAnswerMatch, Weight: &one},
		{Kind: rl.RewardSoftOverlong, Overlong: rl.OverlongConfig{MaxLength: 256, Cache: 64}},
	}, nil)
	if err != nil {
		panic(err)
	}
	prompts := []rl.Prompt{{ID: 0, Text: "Q: 2+3?\nA:", IDs: tok.Encode("Q: 2+3?\nA:", tokenizer.EncodeOptions{}),
		Columns: map[string]string{"answer": "5"}}}
	tr := &rl.GRPOTrainer{Policy: policy, Tok: tok, Opt: opt, Rewards: rewards, Prompts: prompts,
		Ref: rl.AdapterOffReference{Policy: policy, Adapter: adapter}, Metrics: os.Stdout,
		Config: rl.GRPOTrainerConfig{
			GRPO: rl.GRPOConfig{NumGenerations: 8, EpsilonLow: 0.2, EpsilonHigh: 0.28, Beta: 0.04,
				LossType: rl.LossDAPO, MaxCompletionLength: 256, DynamicSampling: true},
			Sampling:       rl.SamplingConfig{Temperature: 1, TopP: 0.95, StopStrings: []string{"\n\n"}, Seed: 1},
			PromptsPerStep: 8, MicroBatch: 16, ClipNorm: 1, SampleEvery: 10,
		}}
	for step := 1; step <= 100; step++ {
		if _, err := tr.Step(context.Background(), step); err != nil {
			panic(err)
		}
	}
}
