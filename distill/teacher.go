package distill

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// CacheConfig says how teacher signals are computed.
type CacheConfig struct {
	// TopK is the number of the teacher's most likely tokens stored per
	// position (50, as the reference code; capped at the vocabulary).
	TopK int `yaml:"top_k"`
	// Temperature divides the teacher's logits (1); a KD loss must use
	// the same.
	Temperature float64 `yaml:"temperature"`
	// Batch is the number of sequences per teacher forward pass (8).
	Batch int `yaml:"batch"`
}

// DefaultCacheConfig returns top-50 at temperature 1, 8 sequences a pass.
func DefaultCacheConfig() CacheConfig { return CacheConfig{TopK: 50, Temperature: 1, Batch: 8} }

// Validate returns an error naming the field (by its yaml key) that is
// out of range.
func (c CacheConfig) Validate() error {
	if c.TopK < 1 {
		return fmt.Errorf("top_k: %d is out of range (allowed: 1 or more)", c.TopK)
	}
	if !(c.Temperature > 0) || math.IsInf(c.Temperature, 0) {
		return fmt.Errorf("temperature: %v is out of range (allowed: above 0)", c.Temperature)
	}
	if c.Batch < 1 {
		return fmt.Errorf("batch: %d is out of range (allowed: 1 or more)", c.Batch)
	}
	return nil
}

// BuildCache runs teacher once over every sequence (its IDs, Start, Role
// and Example set; the signals are filled in) and, when ref is not nil,
// the reference teacher too, and returns the cache with vocab's
// fingerprint. The top-K is the teacher's (for ADPA, the DPO teacher's);
// the reference's log-probs are read at the same tokens. It returns an
// error when the config is invalid, a model's vocabulary differs from the
// tokenizer's, a sequence is malformed or too long, or a forward pass
// fails.
func BuildCache(teacher, ref model.Model, vocab tokenizer.Vocab, seqs []Seq, cfg CacheConfig) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("distill: cache: %w", err)
	}
	if teacher == nil {
		return nil, errors.New("distill: cache: no teacher")
	}
	v := len(vocab.Tokens)
	for name, m := range map[string]model.Model{"teacher": teacher, "reference teacher": ref} {
		if m != nil && m.Config().VocabSize != v {
			return nil, fmt.Errorf("distill: cache: the %s has a vocabulary of %d, the tokenizer %d: teacher and student must share a tokenizer",
				name, m.Config().VocabSize, v)
		}
	}
	k := min(cfg.TopK, v)
	c := &Cache{Header: Header{Tokenizer: TokenizerID(vocab), Vocab: v, K: k, Temperature: cfg.Temperature, Reference: ref != nil},
		Seqs: seqs}
	maxLen := teacher.Config().MaxPositionEmbeddings
	for i := range seqs {
		s := &seqs[i]
		if s.Start < 1 || s.Start >= len(s.IDs) {
			return nil, fmt.Errorf("distill: cache: sequence %d: response starts at %d of %d ids", i, s.Start, len(s.IDs))
		}
		if maxLen > 0 && len(s.IDs) > maxLen {
			return nil, fmt.Errorf("distill: cache: sequence %d has %d tokens, the teacher's context is %d", i, len(s.IDs), maxLen)
		}
	}
	for lo := 0; lo < len(seqs); lo += cfg.Batch {
		batch := seqs[lo:min(lo+cfg.Batch, len(seqs))]
		tl, err := hostLogits(teacher, batch)
		if err != nil {
			return nil, fmt.Errorf("distill: cache: teacher: %w", err)
		}
		var rl [][]float32
		if ref != nil {
			if rl, err = hostLogits(ref, batch); err != nil {
				return nil, fmt.Errorf("distill: cache: reference teacher: %w", err)
			}
		}
		for b := range batch {
			var r []float32
			if ref != nil {
				r = rl[b]
			}
			fillSignals(&batch[b], tl[b], r, v, k, cfg.Temperature)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// hostLogits runs m without gradients over seqs right-padded to a common
// length, and returns each sequence's logits [len(IDs)·V] on the host.
// Right padding needs no mask: causal attention keeps it out of the real
// positions.
func hostLogits(m model.Model, seqs []Seq) ([][]float32, error) {
	T := 0
	for _, s := range seqs {
		T = max(T, len(s.IDs))
	}
	ids := make([]int32, len(seqs)*T)
	for b, s := range seqs {
		copy(ids[b*T:], s.IDs)
	}
	var all []float32
	err := tensor.Catch(func() {
		tensor.NoGrad(func() {
			be := m.Params()[0].Tensor.Backend()
			x := tensor.From(be, tensor.Int32, ids, len(seqs), T)
			logits := m.Forward(x, model.ForwardOptions{})
			all = logits.Float32s()
			logits.Release()
			x.Release()
		})
	})
	if err != nil {
		return nil, err
	}
	V := len(all) / (len(seqs) * T)
	out := make([][]float32, len(seqs))
	for b, s := range seqs {
		out[b] = all[b*T*V : (b*T+len(s.IDs))*V]
	}
	return out, nil
}

// logSoftmax returns log softmax(x/τ) in float64.
func logSoftmax(x []float32, tau float64) []float64 {
	out := make([]float64, len(x))
	mx := math.Inf(-1)
	for i, v := range x {
		out[i] = float64(v) / tau
		mx = max(mx, out[i])
	}
	s := 0.0
	for _, v := range out {
		s += math.Exp(v - mx)
	}
	lse := mx + math.Log(s)
	for i := range out {
		out[i] -= lse
	}
	return out
}

// fillSignals sets s's top-K signals from the teacher's logits (and the
// reference's, when ref is not nil) of its positions, [len(IDs)·V]: the
// response token i is predicted by position Start-1+i.
func fillSignals(s *Seq, logits, ref []float32, v, k int, tau float64) {
	n := s.Len()
	s.Index = make([]int32, n*k)
	s.LogP = make([]float32, n*k)
	s.Rest = make([]float32, n)
	if ref != nil {
		s.RefLogP = make([]float32, n*k)
	} else {
		s.RefLogP = nil
	}
	order := make([]int, v)
	for i := range n {
		pos := s.Start - 1 + i
		lp := logSoftmax(logits[pos*v:(pos+1)*v], tau)
		for j := range order {
			order[j] = j
		}
		// A stable sort by descending log-prob breaks ties by token id,
		// so the cache is the same on every run.
		sort.SliceStable(order, func(a, b int) bool { return lp[order[a]] > lp[order[b]] })
		var rlp []float64
		if ref != nil {
			rlp = logSoftmax(ref[pos*v:(pos+1)*v], tau)
		}
		mass := 0.0
		for j := range k {
			t := order[j]
			s.Index[i*k+j] = int32(t)
			s.LogP[i*k+j] = float32(lp[t])
			mass += math.Exp(lp[t])
			if ref != nil {
				s.RefLogP[i*k+j] = float32(rlp[t])
			}
		}
		s.Rest[i] = float32(max(0, 1-mass))
	}
}
