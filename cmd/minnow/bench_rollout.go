package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/rl"
	"github.com/minnowml/minnow/tensor"
)

// rolloutBenchCmd times one GRPO step's halves on the SmolLM-135M-shaped
// model: generating G completions per prompt, then the policy's forward
// and backward passes of the GRPO loss over them.
func rolloutBenchCmd() *cli.Command {
	return &cli.Command{
		Name:  "rollout",
		Usage: "a GRPO step of a SmolLM-135M-shaped llama with random weights: rollouts (8 prompts x G=8, 128 new tokens) and training",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "prompts", Value: 8},
			&cli.IntFlag{Name: "g", Value: 8, Usage: "completions per prompt"},
			&cli.IntFlag{Name: "prompt-len", Value: 32, Usage: "prompt tokens"},
			&cli.IntFlag{Name: "new", Value: 128, Usage: "tokens generated per completion"},
			&cli.IntFlag{Name: "micro-batch", Value: 8, Usage: "completions per training pass (bounds the logits' memory)"},
		}, smolFlags()...),
		Action: func(c *cli.Context) error {
			if c.Int("prompts") < 1 || c.Int("g") < 1 || c.Int("prompt-len") < 1 || c.Int("new") < 1 || c.Int("micro-batch") < 0 {
				return usageErr{errors.New("--prompts, --g, --prompt-len and --new must be positive and --micro-batch not negative")}
			}
			cfg, err := smolConfig(c)
			if err != nil {
				return err
			}
			m, err := model.New(cfg, backend(c), tensor.Float32, 1)
			if err != nil {
				return err
			}
			prompts := make([][]int32, c.Int("prompts"))
			for i := range prompts {
				for j := range c.Int("prompt-len") {
					prompts[i] = append(prompts[i], int32((i*131+j*17+1)%cfg.VocabSize))
				}
			}
			res, err := rl.BenchRollout(m, rl.BenchConfig{Prompts: prompts, G: c.Int("g"), NewTokens: c.Int("new"),
				MicroBatch: c.Int("micro-batch"), Seed: 1})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "RESULT rollout_tokens_per_s=%.1f train_tokens_per_s=%.1f generation_share=%.3f\n",
				res.RolloutTokensPerS, res.TrainTokensPerS, res.GenerationShare)
			return nil
		},
	}
}
