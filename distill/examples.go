package distill

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
)

// Example is one record of a distillation data file (JSONL): a prompt
// with a dataset completion, or with a chosen and a rejected response,
// and optionally the student's own response (ADPA's y_s).
type Example struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion,omitempty"`
	Chosen     string `json:"chosen,omitempty"`
	Rejected   string `json:"rejected,omitempty"`
	Student    string `json:"student,omitempty"`
}

// ReadExamples reads a JSONL file of Example records. It returns an error
// naming the line for malformed JSON, an unknown field, a record without
// a prompt or without any response, and for a file without records.
func ReadExamples(path string) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("distill: %w", err)
	}
	defer f.Close()
	var out []Example
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var ex Example
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ex); err != nil {
			return nil, fmt.Errorf("distill: %s:%d: %w", path, line, err)
		}
		if ex.Prompt == "" || ex.Completion == "" && ex.Chosen == "" && ex.Rejected == "" && ex.Student == "" {
			return nil, fmt.Errorf("distill: %s:%d: a record needs a prompt and a completion, chosen, rejected or student response", path, line)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("distill: %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("distill: %s holds no records", path)
	}
	return out, nil
}

// Tokenize turns examples into cache sequences, one per response, with
// Example the record's index: the prompt and the response concatenated as
// SFT does (data.TokenizeSFT, with tmpl for chat records, or plain with
// an EOS appended when tmpl is nil), the response starting at the first
// trainable token. Sequences longer than maxLen (when positive) are cut.
// It returns an error naming the record when tokenization fails or leaves
// no response token.
func Tokenize(exs []Example, tok tokenizer.Tokenizer, tmpl *tokenizer.ChatTemplate, maxLen int) ([]Seq, error) {
	if tok == nil {
		return nil, errors.New("distill: tokenize: no tokenizer")
	}
	var out []Seq
	for i, ex := range exs {
		for _, r := range []struct {
			role Role
			text string
		}{{RoleData, ex.Completion}, {RoleChosen, ex.Chosen}, {RoleRejected, ex.Rejected}, {RoleStudent, ex.Student}} {
			if r.text == "" {
				continue
			}
			ids, trainable, err := data.TokenizeSFT(data.PromptCompletion{Prompt: ex.Prompt, Completion: r.text}, tok, tmpl)
			if err != nil {
				return nil, fmt.Errorf("distill: record %d (%s): %w", i+1, r.role, err)
			}
			start := 0
			for start < len(trainable) && !trainable[start] {
				start++
			}
			if maxLen > 0 && len(ids) > maxLen {
				ids = ids[:maxLen]
			}
			if start < 1 || start >= len(ids) {
				return nil, fmt.Errorf("distill: record %d (%s): no response token within %d tokens after a prompt", i+1, r.role, len(ids))
			}
			out = append(out, Seq{Example: int32(i), Role: r.role, IDs: ids, Start: start})
		}
	}
	return out, nil
}
