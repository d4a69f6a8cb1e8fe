package model_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/train"
)

// Example_trainResumeSample walks the whole library path: train a
// tokenizer, tokenize a corpus into shards, pretrain a small Llama with
// checkpoints, resume it into a fresh model, and sample from it.
func Example_trainResumeSample() {
	be := cpu.New(2)
	dir, _ := os.MkdirTemp("", "minnow-example")
	defer os.RemoveAll(dir)
	corpus := filepath.Join(dir, "corpus.txt")
	os.WriteFile(corpus, []byte(strings.Repeat("to be, or not to be, that is the question.\n", 300)), 0o644)

	// A byte-level BPE vocabulary trained on the corpus, and token shards.
	vocab, _ := tokenizer.TrainFiles(tokenizer.TrainConfig{VocabSize: 300, Special: []string{"<|endoftext|>"}}, corpus)
	tok, _ := tokenizer.New(vocab)
	shardDir := filepath.Join(dir, "shards")
	data.BuildShards(shardDir, []string{corpus}, tok, data.ShardOptions{})
	shards, _ := data.OpenShards(shardDir)
	defer shards.Close()
	newBatches := func() train.Batches {
		st, _ := shards.Stream(data.StreamOptions{Batch: 4, Seq: 32, Shuffle: true, Seed: 1})
		b, _ := train.StreamBatches(st, be, 4, 32)
		return b
	}

	// A small Llama with the optimizer's usual groups.
	cfg := model.Config{ModelType: "llama", VocabSize: len(vocab.Tokens), HiddenSize: 64, IntermediateSize: 128,
		NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, TieWordEmbeddings: true}
	build := func(seed uint64) (model.Model, *train.AdamW, []train.Weight) {
		m, err := model.New(cfg, be, tensor.Float32, seed)
		if err != nil {
			panic(err)
		}
		var weights []train.Weight
		for _, p := range m.Params() {
			weights = append(weights, train.Weight{Name: p.Name, Tensor: p.Tensor})
		}
		decay, keep := model.DecaySplit(m.Params())
		opt, _ := train.NewAdamW(train.AdamWConfig{LR: 3e-3, WeightDecay: 0.1},
			train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
		return m, opt, weights
	}

	// Train 40 steps with a checkpoint at the end.
	ckpt := filepath.Join(dir, "run")
	m, opt, weights := build(1)
	sched, _ := train.ScheduleConfig{Kind: "cosine", PeakLR: 3e-3, WarmupSteps: 5}.Build(60)
	loopCfg := train.LoopConfig{Steps: 40, ClipNorm: 1, Schedule: sched, CheckpointDir: ckpt, Keep: 2, Weights: weights}
	first, err := train.Loop(context.Background(), m, opt, train.NextToken{}, newBatches(), loopCfg)
	if err != nil {
		panic(err)
	}

	// Resume into a model built from another seed and finish to step 60.
	m2, opt2, weights2 := build(99)
	batches := newBatches()
	step, err := train.Resume(ckpt, weights2, opt2, batches)
	if err != nil {
		panic(err)
	}
	loopCfg.Steps, loopCfg.Weights = 60, weights2
	last, err := train.Loop(context.Background(), m2, opt2, train.NextToken{}, batches, loopCfg)
	if err != nil {
		panic(err)
	}
	fmt.Printf("resumed at step %d; loss at 40 below 1: %v; at 60 below loss at 40: %v\n", step, first.Loss < 1, last.Loss < first.Loss)

	// Greedy sampling continues the memorised line.
	prompt := tok.Encode("to be, or not", tokenizer.EncodeOptions{})
	out, _ := model.Generate(m2, tok, [][]int32{prompt}, model.GenerateConfig{MaxNewTokens: 12, StopStrings: []string{"\n"}})
	fmt.Printf("%q\n", out[0].Text)
	// Output:
	// resumed at step 40; loss at 40 below 1: true; at 60 below loss at 40: true
	// " to be, that is the question."
}
