package recipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// SFT is the supervised fine-tuning objective: the mean cross-entropy over
// the trainable targets, with the batch's Positions and Mask passed to the
// model so that packed examples neither see each other nor take positions
// from their neighbours.
type SFT struct{}

// Loss returns the mean cross-entropy of m's logits on b against b's
// targets. A batch with Positions or Mask needs m to be a model.Model;
// without them it falls back to m.Loss. It returns an error when the model
// cannot take the packing inputs, or the *tensor.Error an op panicked
// with.
func (SFT) Loss(m train.Model, b train.Batch) (*tensor.Tensor, error) {
	var loss *tensor.Tensor
	if b.Positions == nil && b.Mask == nil {
		err := tensor.Catch(func() { loss = m.Loss(b.IDs, b.Targets) })
		return loss, err
	}
	mm, ok := m.(model.Model)
	if !ok {
		return nil, fmt.Errorf("recipes: sft: a packed batch needs a model.Model, got %T", m)
	}
	err := tensor.Catch(func() {
		logits := mm.Forward(b.IDs, model.ForwardOptions{Positions: b.Positions, Mask: b.Mask})
		_, loss = tensor.CrossEntropy(logits, b.Targets)
	})
	return loss, err
}

// packedBatches serves PackedRows as batches of whole rows.
type packedBatches struct {
	rows  []data.PackedRow
	be    tensor.Backend
	dt    tensor.DType
	batch int
	s     *data.Sampler
}

// packedCursor is the resumption state; Rows guards against a cursor of
// another data set.
type packedCursor struct {
	Rows   int         `json:"rows"`
	Cursor data.Cursor `json:"cursor"`
}

// PackedBatches returns an endless source of batch rows each, drawn from
// rows epoch after epoch in an order shuffled by seed (or in order without
// shuffle). Every batch carries the positions and the additive document
// mask (of dtype dt, the model's) that keep the packed examples apart;
// train them with SFT. Its cursor is JSON. It returns an error when rows is
// empty, batch is not positive, be is nil or the rows differ in length.
func PackedBatches(rows []data.PackedRow, be tensor.Backend, dt tensor.DType, batch int, seed uint64, shuffle bool) (train.Batches, error) {
	if be == nil {
		return nil, fmt.Errorf("recipes: packed batches: no backend")
	}
	if batch < 1 {
		return nil, fmt.Errorf("recipes: packed batches: batch size %d", batch)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("recipes: packed batches: no rows")
	}
	for i, r := range rows {
		if len(r.IDs) != len(rows[0].IDs) || len(r.Targets) != len(r.IDs) {
			return nil, fmt.Errorf("recipes: packed batches: row %d has %d ids and %d targets, row 0 %d ids",
				i, len(r.IDs), len(r.Targets), len(rows[0].IDs))
		}
	}
	s, err := data.NewSampler(int64(len(rows)), seed, shuffle)
	if err != nil {
		return nil, err
	}
	return &packedBatches{rows: rows, be: be, dt: dt, batch: batch, s: s}, nil
}

// Next returns the next batch. It returns an error when a row's document
// lengths are inconsistent, as nn.DocumentMask reports.
func (p *packedBatches) Next() (train.Batch, error) {
	T := len(p.rows[0].IDs)
	ids := make([]int32, 0, p.batch*T)
	tg := make([]int32, 0, p.batch*T)
	lens := make([][]int, 0, p.batch)
	for range p.batch {
		r := p.rows[p.s.Next()]
		ids = append(ids, r.IDs...)
		tg = append(tg, r.Targets...)
		lens = append(lens, r.DocLens)
	}
	// DocumentMask builds the positions too; they equal the rows' own.
	mask, pos, err := nn.DocumentMask(p.be, p.dt, lens)
	if err != nil {
		return train.Batch{}, fmt.Errorf("recipes: packed batches: %w", err)
	}
	return train.Batch{IDs: tensor.From(p.be, tensor.Int32, ids, p.batch, T),
		Targets: tensor.From(p.be, tensor.Int32, tg, p.batch, T), Positions: pos, Mask: mask}, nil
}

// Cursor returns the position of the next batch as JSON.
func (p *packedBatches) Cursor() ([]byte, error) {
	return json.Marshal(packedCursor{Rows: len(p.rows), Cursor: p.s.Cursor()})
}

// Seek moves to a position Cursor returned. It returns an error when the
// cursor is malformed or was saved over a different number of rows.
func (p *packedBatches) Seek(cursor []byte) error {
	var c packedCursor
	if err := json.Unmarshal(cursor, &c); err != nil {
		return fmt.Errorf("recipes: packed batches: cursor: %w", err)
	}
	if c.Rows != len(p.rows) {
		return fmt.Errorf("recipes: packed batches: cursor of %d rows for %d", c.Rows, len(p.rows))
	}
	return p.s.Seek(c.Cursor)
}

// sftBatches reads the JSONL examples of files (data.jsonl, or the
// generated data.arith examples), tokenizes them with loss
// only on completion and assistant tokens, packs them into rows of
// data.seq tokens, and returns packed batch sources for training and, with
// a validation fraction, for evaluation (a seeded selection of rows). Errors
// name the file and example.
func (r *Recipe) sftBatches(be tensor.Backend, tok tokenizer.Tokenizer, files []string) (batches, eval train.Batches, err error) {
	d := r.Data
	var tmpl *tokenizer.ChatTemplate
	if d.ChatTemplate != "" {
		t, err := tokenizer.ChatTemplateByName(d.ChatTemplate)
		if err != nil {
			return nil, nil, fmt.Errorf("data.chat_template: %w", err)
		}
		tmpl = &t
	}
	var seqs []data.SFTSequence
	for i, path := range files {
		exs, _, err := data.Load(path, data.ReadOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("data.jsonl[%d]: %w", i, err)
		}
		for j, ex := range exs {
			ids, trainable, err := data.TokenizeSFT(ex, tok, tmpl)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: example %d: %w", path, j+1, err)
			}
			seqs = append(seqs, data.SFTSequence{IDs: ids, Trainable: trainable})
		}
	}
	pad := tok.Vocab().EOS
	if pad < 0 {
		pad = 0 // padding is never a target, so any id serves
	}
	rows, err := data.PackSFT(seqs, d.Seq, pad)
	if err != nil {
		return nil, nil, err // "data: pack: ...", which names the section already
	}
	trainRows, valRows := rows, []data.PackedRow(nil)
	if d.ValFraction > 0 {
		if trainRows, valRows, err = data.Split(rows, d.ValFraction, r.Seed); err != nil {
			return nil, nil, fmt.Errorf("data.val_fraction: %w", err)
		}
	}
	if batches, err = PackedBatches(trainRows, be, tensor.Float32, d.Batch, r.Seed, d.Shuffle); err != nil {
		return nil, nil, err
	}
	if r.Train.EvalEvery > 0 && len(valRows) > 0 {
		if eval, err = PackedBatches(valRows, be, tensor.Float32, d.Batch, r.Seed, false); err != nil {
			return nil, nil, err
		}
	}
	return batches, eval, nil
}

func init() {
	Register(sftMethod{})
}

// sftMethod fine-tunes on prompt/completion or chat examples with the
// loss on completion and assistant tokens only.
type sftMethod struct{}

func (sftMethod) Name() string { return MethodSFT }

func (sftMethod) Description() string {
	return "supervised fine-tuning: loss on completions of data.jsonl or data.arith, examples packed"
}

func (sftMethod) Section() string { return "" }

func (sftMethod) NewConfig() any { return nil }

func (sftMethod) Validate(r *Recipe) error {
	d := r.Data
	if len(d.JSONL) == 0 && d.Arith == nil {
		return errors.New("data.jsonl: list at least one JSONL file of prompt/completion or chat examples, or generate them with data.arith")
	}
	if len(d.Text) > 0 {
		return errors.New("data.text: method sft reads data.jsonl, not text")
	}
	if r.Tokenizer.Train != nil {
		return errors.New("tokenizer.train: method sft fine-tunes with the model's own tokenizer; give tokenizer.path or model.checkpoint")
	}
	if d.ChatTemplate != "" {
		if _, err := tokenizer.ChatTemplateByName(d.ChatTemplate); err != nil {
			return fmt.Errorf("data.chat_template: %w", err)
		}
	}
	if r.Train.EvalEvery > 0 && r.Train.EvalBatches <= 0 && d.ValFraction > 0 {
		return rangeErr("train.eval_batches", r.Train.EvalBatches, "a positive cap, since packed SFT batches repeat endlessly")
	}
	return nil
}

func (sftMethod) Run(ctx context.Context, e *Env) (Summary, error) {
	tok, err := e.Tokenizer()
	if err != nil {
		return *e.sum, err
	}
	m, cfg, cfgJSON, err := e.Model(len(tok.Vocab().Tokens))
	if err != nil {
		return *e.sum, err
	}
	files, err := e.JSONLFiles()
	if err != nil {
		return *e.sum, err
	}
	batches, eval, err := e.Recipe.sftBatches(e.Backend, tok, files)
	if err != nil {
		return *e.sum, err
	}
	return e.Train(ctx, TrainJob{Model: m, Objective: SFT{}, Batches: batches, Eval: eval,
		Config: cfgJSON, Arch: cfg.ModelType})
}
