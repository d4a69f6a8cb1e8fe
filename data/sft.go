package data

import (
	"fmt"

	"github.com/minnowml/minnow/data/tokenizer"
)

// sftIgnore is the target id that losses skip; it equals train.IgnoreIndex,
// which this package cannot import without a cycle.
const sftIgnore = -100

// TokenizeSFT turns a PromptCompletion or Chat example into token ids and,
// for each id, whether the model is to learn to produce it: the completion
// (with EOS) or every assistant message (with its end-of-turn marker, so
// the model learns to stop) is trainable; prompt, system and user tokens
// are not.
//
// A Chat needs tmpl. A PromptCompletion with tmpl is rendered as a user
// turn followed by an assistant turn; with a nil tmpl it is the plain
// concatenation BOS (when the vocabulary adds one) + prompt + completion +
// EOS.
//
// The text is encoded span by span (prompt and completion, or each span of
// ChatTemplate.RenderSpans) and the pieces are concatenated. Encoding the
// whole text at once can tokenize differently where two spans meet, since
// a merge may cross the boundary; encoding separately is chosen because it
// makes every token belong to exactly one span, so the loss mask is exact
// and never trains on a token that is partly prompt. Chat templates put
// their boundaries at special markers, where both ways agree.
//
// It returns an error for another example type, a Chat without tmpl, a
// template rendering error, a vocabulary without EOS for the plain
// concatenation, or an example that yields no trainable token.
func TokenizeSFT(ex Example, tok tokenizer.Tokenizer, tmpl *tokenizer.ChatTemplate) (ids []int32, trainable []bool, err error) {
	if tok == nil {
		return nil, nil, fmt.Errorf("data: sft: no tokenizer")
	}
	var msgs []tokenizer.Message
	switch e := ex.(type) {
	case PromptCompletion:
		if tmpl == nil {
			return plainSFT(e, tok)
		}
		msgs = []tokenizer.Message{{Role: tokenizer.RoleUser, Content: e.Prompt},
			{Role: tokenizer.RoleAssistant, Content: e.Completion}}
	case *PromptCompletion:
		return TokenizeSFT(*e, tok, tmpl)
	case Chat:
		if tmpl == nil {
			return nil, nil, fmt.Errorf("data: sft: a chat example needs a chat template")
		}
		for _, m := range e.Messages {
			msgs = append(msgs, tokenizer.Message(m))
		}
	case *Chat:
		return TokenizeSFT(*e, tok, tmpl)
	case Problem:
		// A worked problem (GSM8K, the arithmetic task) is a prompt and its
		// full worked answer ending in "#### N", as the reward checks it.
		return TokenizeSFT(PromptCompletion{Prompt: e.Question, Completion: e.Target()}, tok, tmpl)
	case *Problem:
		return TokenizeSFT(*e, tok, tmpl)
	default:
		return nil, nil, fmt.Errorf("data: sft: %T examples cannot be fine-tuned on (want prompt_completion, chat or problem)", ex)
	}
	spans, err := tmpl.RenderSpans(msgs, false)
	if err != nil {
		return nil, nil, fmt.Errorf("data: sft: %w", err)
	}
	for _, s := range spans {
		// The rendered text writes special tokens (and any BOS) as text,
		// so it is parsed for them and nothing is added.
		piece := tok.Encode(s.Text, tokenizer.EncodeOptions{ParseSpecial: true})
		ids = append(ids, piece...)
		for range piece {
			trainable = append(trainable, s.Assistant)
		}
	}
	return checkTrainable(ids, trainable)
}

// plainSFT tokenizes a PromptCompletion without a template.
func plainSFT(e PromptCompletion, tok tokenizer.Tokenizer) ([]int32, []bool, error) {
	v := tok.Vocab()
	if v.EOS < 0 {
		return nil, nil, fmt.Errorf("data: sft: the vocabulary has no EOS token to end completions with")
	}
	var ids []int32
	var trainable []bool
	if v.AddBOS && v.BOS >= 0 {
		ids, trainable = append(ids, v.BOS), append(trainable, false)
	}
	// Prompt and completion are user text: special-token text in them stays
	// ordinary text, as it would at inference.
	for _, p := range []struct {
		text  string
		train bool
	}{{e.Prompt, false}, {e.Completion, true}} {
		piece := tok.Encode(p.text, tokenizer.EncodeOptions{})
		ids = append(ids, piece...)
		for range piece {
			trainable = append(trainable, p.train)
		}
	}
	ids, trainable = append(ids, v.EOS), append(trainable, true)
	return checkTrainable(ids, trainable)
}

// checkTrainable rejects examples with nothing to learn: the first token
// is never predicted, so at least one later token must be trainable.
func checkTrainable(ids []int32, trainable []bool) ([]int32, []bool, error) {
	for i := 1; i < len(trainable); i++ {
		if trainable[i] {
			return ids, trainable, nil
		}
	}
	return nil, nil, fmt.Errorf("data: sft: the example has no trainable token (no assistant message or empty completion)")
}

// SFTSequence is one tokenized fine-tuning example, as TokenizeSFT returns
// it: IDs and, parallel to them, whether each token is trained on.
type SFTSequence struct {
	IDs       []int32
	Trainable []bool
}

// PackedRow is one training row of seqLen tokens that holds one or more
// whole examples followed by padding.
type PackedRow struct {
	// IDs are the input tokens.
	IDs []int32
	// Targets[t] is the token after IDs[t], or -100 (ignored) where that
	// token is not trainable, is padding, or starts another document.
	Targets []int32
	// DocLens are the lengths of the documents within IDs, in order,
	// padding counting as a document of its own; they add up to seqLen.
	DocLens []int
	// Positions restart at 0 with every document.
	Positions []int32
}

// PackSFT packs seqs greedily, in order, into rows of seqLen input tokens:
// each row holds seqLen+1 tokens (the last is only a target), an example
// goes into the current row when it fits whole and otherwise starts a new
// row, and the rest of a row is filled with pad. No example is ever split,
// so no document loses its context to a row boundary.
//
// An example longer than seqLen+1 tokens is rejected rather than
// truncated: truncation could cut away every trainable token or the EOS
// the model must learn to stop at, so the caller decides (filter, or raise
// seqLen). It returns an error for that, for seqLen below 1, for an
// example with fewer than two tokens (nothing to predict) and for IDs and
// Trainable of different lengths.
func PackSFT(seqs []SFTSequence, seqLen int, pad int32) ([]PackedRow, error) {
	if seqLen < 1 {
		return nil, fmt.Errorf("data: pack: sequence length %d", seqLen)
	}
	for i, s := range seqs {
		switch {
		case len(s.IDs) != len(s.Trainable):
			return nil, fmt.Errorf("data: pack: example %d has %d ids and %d trainable flags", i, len(s.IDs), len(s.Trainable))
		case len(s.IDs) < 2:
			return nil, fmt.Errorf("data: pack: example %d has %d tokens, need at least 2", i, len(s.IDs))
		case len(s.IDs) > seqLen+1:
			return nil, fmt.Errorf("data: pack: example %d has %d tokens, more than sequence length %d + 1", i, len(s.IDs), seqLen)
		}
	}
	var rows []PackedRow
	var cur []SFTSequence
	used := 0
	for _, s := range seqs {
		if used+len(s.IDs) > seqLen+1 {
			rows = append(rows, packRow(cur, seqLen, pad))
			cur, used = nil, 0
		}
		cur = append(cur, s)
		used += len(s.IDs)
	}
	if len(cur) > 0 {
		rows = append(rows, packRow(cur, seqLen, pad))
	}
	return rows, nil
}

// packRow lays docs out in one row of seqLen+1 tokens; they fit.
func packRow(docs []SFTSequence, seqLen int, pad int32) PackedRow {
	n := seqLen + 1
	tokens := make([]int32, 0, n)
	train := make([]bool, 0, n)
	doc := make([]int, 0, n)
	for d, s := range docs {
		tokens = append(tokens, s.IDs...)
		train = append(train, s.Trainable...)
		for range s.IDs {
			doc = append(doc, d)
		}
	}
	for len(tokens) < n {
		tokens, train, doc = append(tokens, pad), append(train, false), append(doc, len(docs))
	}
	r := PackedRow{IDs: tokens[:seqLen], Targets: make([]int32, seqLen), Positions: make([]int32, seqLen)}
	var pos int32
	for t := range seqLen {
		if t > 0 && doc[t] != doc[t-1] {
			r.DocLens = append(r.DocLens, int(pos))
			pos = 0
		}
		r.Positions[t] = pos
		pos++
		r.Targets[t] = sftIgnore
		if doc[t+1] == doc[t] && train[t+1] {
			r.Targets[t] = tokens[t+1]
		}
	}
	r.DocLens = append(r.DocLens, int(pos))
	return r
}
