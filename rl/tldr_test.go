package rl

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

var testLevels = []TLDRLevel{{Name: "short", Budget: 4, Lambda: 0.5}, {Name: "medium", Budget: 8, Lambda: 0.3}, {Name: "long", Budget: 16, Lambda: 0.1}}

func TestTLDRReward(t *testing.T) {
	am, _ := NewAnswerMatch(AnswerMatchConfig{})
	b := RewardBatch{
		Prompts:       []string{"", "", "", ""},
		Completions:   []string{"#### 3", "#### 3", "#### 4", "#### 3"},
		CompletionIDs: [][]int32{make([]int32, 2), make([]int32, 10), make([]int32, 2), make([]int32, 20)},
		Columns:       map[string][]string{"answer": {"3", "3", "3", "3"}, "level": {"short", "short", "medium", "long"}},
	}
	tests := []struct {
		form    string
		correct Reward
		want    []float64
	}{
		{TLDRPenalty, am, []float64{1 - 0.5*0.5, 1 - 0.5, -0.3 * 0.25, 1 - 0.1}},
		{TLDRPenalty, nil, []float64{-0.5 * 0.5, -0.5, -0.3 * 0.25, -0.1}},
		{TLDRGate, am, []float64{1, 0, 0, 0}},
		// |L-B|/B: 0.5, 1.5 (capped at 1), 0.75, 0.25.
		// Only right answers earn it.
		{TLDRTarget, am, []float64{1 - 0.5*0.5, 1 - 0.5, 0, 1 - 0.1*0.25}},
	}
	for _, tc := range tests {
		r, err := NewTLDRReward(TLDRConfig{Levels: testLevels, Form: tc.form}, tc.correct)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Score(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.want {
			if !near(got[i], tc.want[i], 1e-12) {
				t.Errorf("%s (%s): completion %d: %v, want %v", tc.form, r.Name(), i, got[i], tc.want[i])
			}
		}
	}
	r, _ := NewTLDRReward(TLDRConfig{Levels: testLevels}, nil)
	b.Columns["level"][0] = "tiny"
	if _, err := r.Score(context.Background(), b); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("unknown level: %v", err)
	}
	for _, form := range []string{TLDRGate, TLDRTarget} {
		if _, err := NewTLDRReward(TLDRConfig{Levels: testLevels, Form: form}, nil); err == nil {
			t.Errorf("%s without correctness: no error", form)
		}
	}
}

func TestTLDRConfig(t *testing.T) {
	c, err := TLDRConfig{Levels: testLevels}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Condition("What is 2+2?", testLevels[0]); got != "Think short.\nWhat is 2+2?" {
		t.Errorf("condition: %q", got)
	}
	// Levels are sampled uniformly and deterministically per key.
	counts := map[string]int{}
	for i := range 3000 {
		k := SampleKey(1, 7, uint64(i))
		l := c.SampleLevel(k)
		if c.SampleLevel(k) != l {
			t.Fatal("the same key sampled two levels")
		}
		counts[l.Name]++
	}
	for _, l := range testLevels {
		if counts[l.Name] < 900 || counts[l.Name] > 1100 {
			t.Errorf("level %s sampled %d times in 3000", l.Name, counts[l.Name])
		}
	}
	bad := []TLDRConfig{
		{},
		{Levels: []TLDRLevel{{Name: "a", Budget: 0}}},
		{Levels: []TLDRLevel{{Name: "a", Budget: 1}, {Name: "a", Budget: 2}}},
		{Levels: []TLDRLevel{{Name: "", Budget: 1}}},
		{Levels: []TLDRLevel{{Name: "a", Budget: 1, Lambda: -1}}},
		{Levels: testLevels, Form: "exp"},
		{Levels: testLevels, PromptTemplate: "no placeholders"},
	}
	for _, b := range bad {
		if _, err := b.WithDefaults(); err == nil {
			t.Errorf("%+v: no error", b)
		}
	}
}

func TestThinking(t *testing.T) {
	const start, end = 1, 2
	tests := []struct {
		gen     []int32
		startID int32
		n       int
		active  bool
	}{
		{nil, start, 0, false},
		{[]int32{5, 5}, start, 0, false},
		{[]int32{5, start}, start, 0, true},
		{[]int32{start, 5, 6}, start, 2, true},
		{[]int32{start, 5, end, 7}, start, 1, false},
		{[]int32{5, 6, 7}, -1, 3, true},
		{[]int32{5, end, 7}, -1, 1, false},
	}
	for _, tc := range tests {
		n, active := thinking(tc.gen, tc.startID, end)
		if n != tc.n || active != tc.active {
			t.Errorf("thinking(%v, %d) = %d, %v; want %d, %v", tc.gen, tc.startID, n, active, tc.n, tc.active)
		}
	}
}

func softmax64(x []float32) []float64 {
	lse := logSumExp(x)
	p := make([]float64, len(x))
	for i, v := range x {
		p[i] = math.Exp(float64(v) - lse)
	}
	return p
}

// TestThinkingTemperature: the end-of-thinking log-prob becomes ℓ/T before
// renormalising, so its probability rises with T, is unchanged at T = 1,
// is independent of a logit offset, and the processor is off after
// </think>.
func TestThinkingTemperature(t *testing.T) {
	base := []float32{0.5, -1, 2, 0.1, -0.3}
	const eot = 3
	lEOT := math.Log(softmax64(base)[eot])
	prev := 0.0
	for _, T := range []float64{0.5, 1, 2, 4} {
		x := slices.Clone(base)
		ThinkingTemperature{StartID: -1, EndID: eot, Temperature: T}.Process(0, []int32{0, 4}, x)
		p := softmax64(x)
		// Unnormalised eot weight exp(ℓ/T) beside the others' exp(ℓ_i).
		others := 1 - math.Exp(lEOT)
		want := math.Exp(lEOT/T) / (math.Exp(lEOT/T) + others)
		if !near(p[eot], want, 1e-6) {
			t.Errorf("T=%v: p(eot) %v, want %v", T, p[eot], want)
		}
		if p[eot] <= prev {
			t.Errorf("T=%v: p(eot) %v did not rise from %v", T, p[eot], prev)
		}
		prev = p[eot]
		// A logit offset changes nothing.
		y := slices.Clone(base)
		for i := range y {
			y[i] += 7
		}
		ThinkingTemperature{StartID: -1, EndID: eot, Temperature: T}.Process(0, nil, y)
		if q := softmax64(y); !near(q[eot], p[eot], 1e-6) {
			t.Errorf("T=%v: offset moved p(eot) from %v to %v", T, p[eot], q[eot])
		}
		if T == 1 && !near(p[eot], math.Exp(lEOT), 1e-6) {
			t.Errorf("T=1 changed p(eot): %v", p[eot])
		}
	}
	x := slices.Clone(base)
	ThinkingTemperature{StartID: -1, EndID: eot, Temperature: 3}.Process(0, []int32{0, eot, 1}, x)
	if !slices.Equal(x, base) {
		t.Errorf("processor active after </think>: %v", x)
	}
}

func TestBudgetForcing(t *testing.T) {
	const start, end, wait1, wait2 = 1, 2, 5, 6
	bf := &BudgetForcing{StartID: start, EndID: end, MaxThinking: 4, MinThinking: 2, Wait: []int32{wait1, wait2}}
	ninf := float32(math.Inf(-1))
	onlyOne := func(x []float32) int {
		k := -1
		for i, v := range x {
			if v != ninf {
				if k >= 0 {
					return -1
				}
				k = i
			}
		}
		return k
	}
	// At the budget the end is forced.
	x := []float32{0, 0, 0, 0, 0, 0, 0}
	bf.Process(0, []int32{start, 3, 3, 3, 3}, x)
	if onlyOne(x) != end {
		t.Errorf("at budget: %v", x)
	}
	// Before the minimum, an end the model prefers becomes Wait, token by
	// token.
	x = []float32{0, 0, 9, 0, 0, 0, 0}
	bf.Process(1, []int32{start, 3}, x)
	if onlyOne(x) != wait1 {
		t.Errorf("early end: %v, want wait1 forced", x)
	}
	x = []float32{0, 0, 9, 0, 0, 0, 0}
	bf.Process(1, []int32{start, 3, wait1}, x)
	if onlyOne(x) != wait2 {
		t.Errorf("second wait token: %v", x)
	}
	// An end the model does not prefer is just suppressed.
	x = []float32{0, 0, 1, 3, 0, 0, 0}
	bf.Process(2, []int32{start}, x)
	if x[end] != ninf || x[3] != 3 {
		t.Errorf("suppression: %v", x)
	}
	// Between minimum and budget, and outside thinking, nothing changes.
	for _, gen := range [][]int32{{start, 3, 3}, {start, 3, end}, {3}} {
		x = []float32{0, 1, 2, 3, 4, 5, 6}
		bf.Process(3, gen, x)
		if !slices.Equal(x, []float32{0, 1, 2, 3, 4, 5, 6}) {
			t.Errorf("gen %v changed logits: %v", gen, x)
		}
	}
}

// TestBudgetForcingClose: at the budget the Close sequence is forced
// token by token up to the end token, without repeating what the
// completion already ends with.
func TestBudgetForcingClose(t *testing.T) {
	const end, nl, x = 2, 10, 3
	cases := []struct {
		name  string
		close []int32
		gen   []int32
		want  []int32 // forced tokens, in order, until the end token
	}{
		{"nil", nil, []int32{x, x, x}, []int32{end}},
		{"newline", []int32{nl, end}, []int32{x, x, x}, []int32{nl, end}},
		{"newline written", []int32{nl, end}, []int32{x, x, nl}, []int32{end}},
		{"no end token", []int32{nl}, []int32{x, x, x}, []int32{nl, end}},
		{"after the end token", []int32{nl, end, x}, []int32{x, x, x}, []int32{nl, end}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bf := &BudgetForcing{StartID: -1, EndID: end, MaxThinking: 3, Close: c.close}
			gen := slices.Clone(c.gen)
			var got []int32
			for range 5 {
				logits := make([]float32, 12)
				bf.Process(0, gen, logits)
				k := slices.IndexFunc(logits, func(v float32) bool { return v == 0 })
				if slices.ContainsFunc(logits[k+1:], func(v float32) bool { return v == 0 }) {
					break // nothing forced: thinking is over
				}
				got = append(got, int32(k))
				gen = append(gen, int32(k))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("forced %v, want %v", got, c.want)
			}
		})
	}
}

// TestThinkingTemperatureMovesLength: in rollouts of a tiny model, a
// higher thinking temperature ends thinking sooner on average.
func TestThinkingTemperatureMovesLength(t *testing.T) {
	m := tinyModel(t, 16, 11)
	const eot = 7
	prompts := [][]int32{{1, 2}, {3}, {4, 5, 6}, {8}}
	ids := []uint64{0, 1, 2, 3}
	mean := func(T float64) float64 {
		r, err := Generate(m, nil, prompts, ids, 0, 8, 24, SamplingConfig{Seed: 2, StopTokens: []int32{eot}},
			ThinkingTemperature{StartID: -1, EndID: eot, Temperature: T})
		if err != nil {
			t.Fatal(err)
		}
		s := 0
		for _, c := range r.Completions {
			s += len(c)
		}
		return float64(s) / float64(len(r.Completions))
	}
	lo, mid, hi := mean(0.5), mean(1), mean(4)
	if !(lo > mid && mid > hi) {
		t.Errorf("mean lengths at T=0.5, 1, 4: %v, %v, %v; want decreasing", lo, mid, hi)
	}
}
