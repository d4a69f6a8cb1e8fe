package tokenizer

import "errors"

// newBPE is being written; until then it reports that.
func newBPE(v *Vocab) (Tokenizer, error) { return nil, errors.New("tokenizer: BPE not yet implemented") }
