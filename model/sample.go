package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// This file holds the host-side sampling of one next token from one row of
// logits: greedy or temperature sampling with top-k, top-p and min-p
// filters, and the random numbers that drive it.

// sampler draws tokens from rows of logits as a GenerateConfig describes.
// It keeps scratch buffers across calls, so each goroutine needs its own.
type sampler struct {
	temperature float64
	topK        int
	topP, minP  float64

	// w holds each token's weight exp((x - max)/T), 1 for the most likely
	// token, so a weight is that token's probability relative to the top.
	w []float64
	// ids holds the surviving candidates; scratch serves top-k's heap and
	// the nucleus's survivors.
	ids, scratch []int32
}

// draw is one sampled token with its log-probabilities.
type draw struct {
	tok int32
	// policy is log softmax(x)[tok], the model's own distribution at
	// temperature 1 without filters.
	policy float64
	// sample is the log-probability of tok under the distribution it was
	// drawn from: temperature-scaled, filtered and renormalised (0 when
	// greedy, which picks its token with certainty).
	sample float64
}

func newSampler(cfg GenerateConfig) *sampler {
	return &sampler{temperature: cfg.Temperature, topK: cfg.TopK, topP: cfg.TopP, minP: cfg.MinP}
}

// sample draws a token from one row of logits with u, uniform in [0, 1),
// as the only randomness. It returns an error when a logit is NaN or +Inf
// or every logit is -Inf, since no distribution is defined then.
func (s *sampler) sample(x []float32, u float64) (draw, error) {
	best, mx := -1, math.Inf(-1)
	for i, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 1) {
			return draw{}, fmt.Errorf("the logit of token %d is %g", i, f)
		}
		if f > mx {
			best, mx = i, f
		}
	}
	if best < 0 {
		return draw{}, fmt.Errorf("all %d logits are -Inf", len(x))
	}
	// The policy's log-normaliser, summed in float64 so that the
	// log-probabilities match a float32 log-softmax to its own precision.
	sum := 0.0
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	logZ := mx + math.Log(sum)
	if s.temperature == 0 {
		// The first index of the largest logit, so ties break the same way
		// every run.
		return draw{tok: int32(best), policy: float64(x[best]) - logZ}, nil
	}

	ids := s.filter(x, mx)
	kept := 0.0
	for _, id := range ids {
		kept += s.w[id]
	}
	// Inverse CDF over the candidates in their order; rounding can leave
	// the target past the last cumulative sum, which then takes the last
	// candidate of positive weight.
	target, cum, tok := u*kept, 0.0, int32(best)
	for _, id := range ids {
		if s.w[id] == 0 {
			continue
		}
		tok = id
		if cum += s.w[id]; target < cum {
			break
		}
	}
	return draw{tok: tok, policy: float64(x[tok]) - logZ, sample: math.Log(s.w[tok] / kept)}, nil
}

// filter sets the weights of the logits x (whose maximum is mx) at the
// sampler's temperature and returns the tokens that survive top-k, top-p
// and min-p, in rank order when a filter sorted them and by id otherwise.
func (s *sampler) filter(x []float32, mx float64) []int32 {
	V := len(x)
	s.w = grow(s.w, V)
	s.ids = grow(s.ids, V)
	for i, v := range x {
		s.w[i] = math.Exp((float64(v) - mx) / s.temperature)
		s.ids[i] = int32(i)
	}
	ids, sorted := s.ids, false
	if s.topK > 0 && s.topK < V {
		ids = s.topKOf(ids, s.topK)
		sorted = true
	}
	if s.topP > 0 && s.topP < 1 {
		ids = s.nucleus(ids, sorted)
	}
	if s.minP > 0 {
		// Every filter keeps the most likely token, whose weight is 1, so
		// the threshold minP·p_max is minP in weights.
		kept := ids[:0]
		for _, id := range ids {
			if s.w[id] >= s.minP {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	return ids
}

// ranksAbove reports whether token a comes before token b in the order of
// decreasing weight, ties going to the lower id, which makes every filter
// deterministic.
func (s *sampler) ranksAbove(a, b int32) bool {
	wa, wb := s.w[a], s.w[b]
	return wa > wb || (wa == wb && a < b)
}

// topKOf returns the k best of ids in rank order. A min-heap of the best k
// so far costs O(V log k) at worst and about O(V) on real logits, where
// few tokens beat the heap's weakest member; sorting all V would not.
func (s *sampler) topKOf(ids []int32, k int) []int32 {
	h := s.scratch[:0]
	// below reports whether heap entry i ranks below entry j (min-heap).
	below := func(i, j int) bool { return s.ranksAbove(h[j], h[i]) }
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			c := l
			if r := l + 1; r < len(h) && below(r, l) {
				c = r
			}
			if !below(c, i) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for _, id := range ids {
		if len(h) < k {
			h = append(h, id)
			for i := len(h) - 1; i > 0 && below(i, (i-1)/2); i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
			continue
		}
		if s.ranksAbove(id, h[0]) {
			h[0] = id
			down(0)
		}
	}
	s.scratch = h
	out := append(ids[:0], h...)
	s.sortByRank(out)
	return out
}

// nucleus returns the shortest prefix of ids, in rank order, whose weights
// reach topP of their total. ids is sorted when the caller says so;
// otherwise only the tokens above a weight threshold are sorted, which is
// exact: once the tokens with weight >= thr hold topP of the mass, the
// nucleus lies among them, because every token outside weighs less than
// each of them. The threshold falls until that holds (0 admits all).
func (s *sampler) nucleus(ids []int32, sorted bool) []int32 {
	total := 0.0
	for _, id := range ids {
		total += s.w[id]
	}
	want := s.topP * total
	if !sorted {
		for thr := 1e-3; ; thr *= 1e-3 {
			if thr < 1e-30 {
				thr = 0
			}
			kept, mass := s.scratch[:0], 0.0
			for _, id := range ids {
				if s.w[id] >= thr {
					kept = append(kept, id)
					mass += s.w[id]
				}
			}
			s.scratch = kept
			if mass >= want || thr == 0 {
				// Moving the survivors to the front keeps ids' memory
				// reusable; their order is about to be rewritten anyway.
				ids = ids[:copy(ids, kept)]
				s.sortByRank(ids)
				break
			}
		}
	}
	cum := 0.0
	for i, id := range ids {
		cum += s.w[id]
		if cum >= want {
			return ids[:i+1]
		}
	}
	return ids
}

// sortByRank sorts ids by decreasing weight, ties by id.
func (s *sampler) sortByRank(ids []int32) {
	slices.SortFunc(ids, func(a, b int32) int {
		switch {
		case s.ranksAbove(a, b):
			return -1
		case s.ranksAbove(b, a):
			return 1
		}
		return 0
	})
}

// grow returns buf resized to n, reallocating only when it is too small.
func grow[T any](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	return buf[:n]
}

// splitmix64 is the SplitMix64 finaliser: a bijection on uint64 that
// spreads every input bit over the whole output, so nearby seeds and
// indices give unrelated streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// rowKey returns the random stream key of prompt index i: seeds[i] when
// per-prompt seeds are given, else splitmix64(seed ^ splitmix64(i)).
func rowKey(seed uint64, seeds []uint64, i int) uint64 {
	if seeds != nil {
		return seeds[i]
	}
	return splitmix64(seed ^ splitmix64(uint64(i)))
}

// uniform returns the uniform number in [0, 1) that drives the draw of a
// row's token number step: the top 53 bits of the first output of PCG
// seeded with (key, step). It depends on nothing else, so neither the
// other prompts in the batch nor the order of the draws can change it.
func uniform(key uint64, step int) float64 {
	return float64(rand.NewPCG(key, uint64(step)).Uint64()>>11) / (1 << 53)
}
