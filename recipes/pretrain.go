package recipes

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

func init() {
	Register(pretrainMethod{})
}

// pretrainMethod trains with the next-token loss on every token of
// data.text or data.arith.
type pretrainMethod struct{}

func (pretrainMethod) Name() string { return MethodPretrain }

func (pretrainMethod) Description() string {
	return "next-token loss on every token of data.text or data.arith"
}

func (pretrainMethod) Section() string { return "" }

func (pretrainMethod) NewConfig() any { return nil }

func (pretrainMethod) Validate(r *Recipe) error {
	d := r.Data
	if len(d.Text) == 0 && d.Arith == nil {
		return errors.New("data.text: list at least one text file, or generate text with data.arith")
	}
	if len(d.JSONL) > 0 || d.ChatTemplate != "" {
		return errors.New("data.jsonl and data.chat_template belong to method: sft; pretraining reads data.text")
	}
	return nil
}

func (pretrainMethod) Run(ctx context.Context, e *Env) (Summary, error) {
	tok, err := e.Tokenizer()
	if err != nil {
		return *e.sum, err
	}
	m, cfg, cfgJSON, err := e.Model(len(tok.Vocab().Tokens))
	if err != nil {
		return *e.sum, err
	}
	texts, err := e.TextFiles()
	if err != nil {
		return *e.sum, err
	}
	shards, err := buildShards(e.Dir, texts, tok)
	if err != nil {
		return *e.sum, err
	}
	defer shards.Close()
	batches, eval, err := e.Recipe.streams(e.Backend, shards)
	if err != nil {
		return *e.sum, err
	}
	return e.Train(ctx, TrainJob{Model: m, Objective: train.NextToken{}, Batches: batches, Eval: eval,
		Config: cfgJSON, Arch: cfg.ModelType})
}

// buildShards tokenizes texts into the run directory's shards (or reuses
// them) and opens them.
func buildShards(dir string, texts []string, tok tokenizer.Tokenizer) (*data.Shards, error) {
	shardDir := filepath.Join(dir, ShardDir)
	if _, err := data.BuildShards(shardDir, texts, tok, data.ShardOptions{}); err != nil {
		return nil, err
	}
	return data.OpenShards(shardDir)
}

// streams returns the training windows and, when the recipe evaluates, the
// held-out ones.
func (r *Recipe) streams(be tensor.Backend, shards *data.Shards) (batches, eval train.Batches, err error) {
	d := r.Data
	stream := func(part data.Part) (train.Batches, error) {
		st, err := shards.Stream(data.StreamOptions{Batch: d.Batch, Seq: d.Seq, ValFraction: d.ValFraction,
			Part: part, Shuffle: d.Shuffle && part == data.Train, Seed: r.Seed, OnePass: part == data.Validation})
		if err != nil {
			return nil, err // "data: ...", which names the section already
		}
		return train.StreamBatches(st, be, d.Batch, d.Seq)
	}
	if batches, err = stream(data.Train); err != nil {
		return nil, nil, err
	}
	if r.Train.EvalEvery > 0 {
		if eval, err = stream(data.Validation); err != nil {
			return nil, nil, err
		}
	}
	return batches, eval, nil
}
