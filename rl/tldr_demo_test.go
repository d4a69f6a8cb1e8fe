package rl

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// tldrDemoSize sizes TestTLDRArith: the short version runs in go test,
// the full one (MINNOW_DEMO=1) is a larger run of the same code; the
// demonstration itself is the recipe chain of make demo-rl.
type tldrDemoSize struct {
	name                        string
	ops                         []data.ArithOp
	verbose                     float64
	digits, hidden, layers, ctx int
	train, held                 int
	sftSteps                    int
	sftLR                       float64
	rlSteps, prompts            int
	rlLR                        float64
	maxNew                      int
}

var (
	tldrShort = tldrDemoSize{name: "short", ops: []data.ArithOp{data.Add}, verbose: 0.5, digits: 2, hidden: 64, layers: 2, ctx: 112, train: 1500, held: 100,
		sftSteps: 600, sftLR: 3e-3, rlSteps: 30, prompts: 8, rlLR: 1e-4, maxNew: 72}
	tldrFull = tldrDemoSize{name: "full", ops: []data.ArithOp{data.Add, data.Sub}, verbose: 0.8, digits: 3, hidden: 128, layers: 4, ctx: 160, train: 4000, held: 200,
		sftSteps: 1000, sftLR: 2e-3, rlSteps: 150, prompts: 8, rlLR: 5e-5, maxNew: 120}
)

// tldrLevels are the demonstration's levels: budgets at the SFT model's
// lengths or above, so the penalty min(1, L/B) is not saturated and each
// token saved counts, with a steeper slope for the shorter levels.
func tldrLevels(maxNew int) TLDRConfig {
	return TLDRConfig{Levels: []TLDRLevel{
		{Name: "short", Budget: maxNew, Lambda: 0.4},
		{Name: "medium", Budget: maxNew, Lambda: 0.15},
		{Name: "long", Budget: maxNew, Lambda: 0}}}
}

// verboseArith is a tiny Llama supervised on verbose worked solutions
// with a random length level in every prompt, with its data.
type verboseArith struct {
	m           model.Model
	tok         tokenizer.Tokenizer
	enc         func(string) []int32
	train, held []data.Problem
	tl          TLDRConfig
	sz          tldrDemoSize
	sftTime     time.Duration
}

// verboseSFT caches the SFT weights of each size, so that the tests that
// start from them pay for the training once.
var verboseSFT = map[int][][]float32{}

// demoSize is the short size, or the demonstration's with MINNOW_DEMO=1.
func demoSize() tldrDemoSize {
	if os.Getenv("MINNOW_DEMO") == "1" {
		return tldrFull
	}
	return tldrShort
}

// newVerboseArith builds the data, tokenizer and model of sz and trains it
// with SFT (or loads the cached weights): a tiny Llama trained from
// scratch on deliberately verbose worked solutions
// (data.ArithConfig.Verbose), with a random length level named in every
// prompt so that the tags are familiar but mean nothing yet.
func newVerboseArith(t *testing.T, sz tldrDemoSize) *verboseArith {
	t.Helper()
	start := time.Now()
	cfg := data.ArithConfig{Ops: sz.ops, MinDigits: 1, MaxDigits: sz.digits, Verbose: sz.verbose}
	probs, err := data.GenerateArith(cfg, 11, sz.train+sz.held)
	if err != nil {
		t.Fatal(err)
	}
	train, held := probs[:sz.train], probs[sz.train:]
	tl, err := tldrLevels(sz.maxNew).WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var corpus strings.Builder
	for i, p := range probs {
		corpus.WriteString(tl.Condition(arithPrompt(p), tl.Levels[i%3]) + arithCompletion(p) + "\n")
	}
	v, err := tokenizer.Train(strings.NewReader(corpus.String()), tokenizer.TrainConfig{VocabSize: 320, Special: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.Config{ModelType: "llama", VocabSize: len(v.Tokens), HiddenSize: sz.hidden,
		IntermediateSize: 2 * sz.hidden, NumHiddenLayers: sz.layers, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		MaxPositionEmbeddings: sz.ctx, TieWordEmbeddings: true}, tensor.Default(), tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(s string) []int32 { return tok.Encode(s, tokenizer.EncodeOptions{}) }
	a := &verboseArith{m: m, tok: tok, enc: enc, train: train, held: held, tl: tl, sz: sz}
	if w, ok := verboseSFT[sz.hidden]; ok {
		for i, p := range m.Params() {
			p.Tensor.CopyFrom(tensor.From(p.Tensor.Backend(), p.Tensor.DType(), w[i], p.Tensor.Shape()...))
		}
		return a
	}
	// SFT with a random level per example: the tags carry no length
	// information, so only RL can give them meaning.
	opt := adamFor(t, m, sz.sftLR)
	const batch = 16
	for s := range sz.sftSteps {
		var ps, cs [][]int32
		n := 0
		for i := range batch {
			k := (s*batch + i) % len(train)
			lv := tl.SampleLevel(SampleKey(7, uint64(s), uint64(i)))
			ps = append(ps, enc(tl.Condition(arithPrompt(train[k]), lv)))
			c := append(enc(arithCompletion(train[k])), v.EOS)
			cs = append(cs, c)
			n += len(c)
		}
		lp, err := CompletionLogProbs(m, ps, cs, LogProbOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// A cosine decay to a tenth steadies the end of SFT.
		lr := sz.sftLR * (0.55 + 0.45*math.Cos(math.Pi*float64(s)/float64(sz.sftSteps)))
		lp.Values.Sum().Scale(-1 / float64(n)).Backward()
		if err := opt.Step(lr, 1); err != nil {
			t.Fatal(err)
		}
	}
	var w [][]float32
	for _, p := range m.Params() {
		w = append(w, p.Tensor.Float32s())
	}
	verboseSFT[sz.hidden] = w
	a.sftTime = time.Since(start)
	return a
}

// heldAt returns the held-out prompts, conditioned on lv when it is not
// nil.
func (a *verboseArith) heldAt(lv *TLDRLevel) []Prompt {
	var out []Prompt
	for i, p := range a.held {
		text := arithPrompt(p)
		if lv != nil {
			text = a.tl.Condition(text, *lv)
		}
		out = append(out, Prompt{ID: uint64(i), Text: text, IDs: a.enc(text), Columns: map[string]string{"answer": p.Answer}})
	}
	return out
}

// TestTLDRArith is the Go-level short version of the TLDR demonstration
// (make demo-rl runs the recipes): the verbose SFT model (newVerboseArith) is trained with GRPO on the TLDR
// reward. The short version checks that the short level's held-out
// length falls by a tenth with accuracy within 10 points, and that
// temperature scaling of "####" (the end of the worked steps) shortens
// completions monotonically. With MINNOW_DEMO=1 it
// runs the demonstration's size, logs its table and also requires the
// levels to order their lengths.
func TestTLDRArith(t *testing.T) {
	if testing.Short() {
		t.Skip("about 40 s of training")
	}
	start := time.Now()
	a := newVerboseArith(t, demoSize())
	m, tok, enc, tl, sz, train := a.m, a.tok, a.enc, a.tl, a.sz, a.train
	sftTime := a.sftTime
	am, err := NewAnswerMatch(AnswerMatchConfig{Extract: []string{ExtractGSM8K}})
	if err != nil {
		t.Fatal(err)
	}
	acc := Rewards{{Reward: am, Weight: 1}}
	type row struct{ acc, length float64 }
	evalLevels := func() map[string]row {
		out := map[string]row{}
		var all row
		for _, lv := range tl.Levels {
			res, err := Evaluate(context.Background(), m, tok, a.heldAt(&lv), acc, sz.maxNew, SamplingConfig{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			out[lv.Name] = row{res.Reward, res.Length}
			all.acc += res.Reward / 3
			all.length += res.Length / 3
		}
		out["all"] = all
		return out
	}
	before := evalLevels()
	var prompts []Prompt
	for i, p := range train {
		prompts = append(prompts, Prompt{ID: uint64(i), Text: arithPrompt(p), IDs: enc(arithPrompt(p)), Columns: map[string]string{"answer": p.Answer}})
	}
	lenR, err := NewTLDRReward(tl, nil)
	if err != nil {
		t.Fatal(err)
	}
	cond, err := tl.Conditioner(5, enc)
	if err != nil {
		t.Fatal(err)
	}
	tr := &GRPOTrainer{Policy: m, Tok: tok, Opt: adamFor(t, m, sz.rlLR), Condition: cond,
		Rewards: Rewards{{Reward: am, Weight: 1}, {Reward: lenR, Weight: 1}}, Prompts: prompts,
		Config: GRPOTrainerConfig{GRPO: GRPOConfig{NumGenerations: 8, MaxCompletionLength: sz.maxNew},
			Sampling: SamplingConfig{Seed: 5, Temperature: 0.8}, PromptsPerStep: sz.prompts, ClipNorm: 1}}
	for s := 1; s <= sz.rlSteps; s++ {
		if _, err := tr.Step(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	after := evalLevels()
	// Temperature scaling of the end-of-thinking token on the unconditioned
	// prompts of the TLDR model, near-greedy.
	eot := enc("####")[0]
	var tsLens []float64
	var ts strings.Builder
	for _, T := range []float64{0.5, 1, 2, 4} {
		res, err := Evaluate(context.Background(), m, tok, a.heldAt(&tl.Levels[2]), acc, sz.maxNew,
			SamplingConfig{Temperature: 0.05, Seed: 1}, ThinkingTemperature{StartID: -1, EndID: eot, Temperature: T})
		if err != nil {
			t.Fatal(err)
		}
		tsLens = append(tsLens, res.Length)
		fmt.Fprintf(&ts, " T=%g: length %.1f, accuracy %.3f;", T, res.Length, res.Reward)
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "\n| model | level | held-out accuracy | mean length |\n|---|---|---|---|\n")
	for _, name := range []string{"all", "short", "medium", "long"} {
		fmt.Fprintf(&tab, "| SFT | %s | %.3f | %.1f |\n", name, before[name].acc, before[name].length)
	}
	for _, name := range []string{"all", "short", "medium", "long"} {
		fmt.Fprintf(&tab, "| TLDR | %s | %.3f | %.1f |\n", name, after[name].acc, after[name].length)
	}
	t.Logf("%s\ntemperature scaling of \"####\" (long level):%s\nSFT %v, total %v", tab.String(), ts.String(),
		sftTime.Round(time.Second), time.Since(start).Round(time.Second))
	b, sh := before["all"], after["short"]
	cut := 1 - sh.length/b.length
	if !(cut >= 0.1) || !(sh.acc >= b.acc-0.1) {
		t.Errorf("short level: length %.1f -> %.1f (cut %.0f%%), accuracy %.3f -> %.3f; want a cut of 10%% and accuracy within 10 points",
			b.length, sh.length, 100*cut, b.acc, sh.acc)
	}
	// Levels need more steps than the short version takes to separate.
	if sz.name == "full" && !(after["short"].length < after["medium"].length && after["medium"].length < after["long"].length) {
		t.Errorf("level lengths %.1f, %.1f, %.1f are not in order", after["short"].length, after["medium"].length, after["long"].length)
	}
	for i := 1; i < len(tsLens); i++ {
		if !(tsLens[i] <= tsLens[i-1]) {
			t.Errorf("thinking temperature lengths %v do not fall as the temperature rises", tsLens)
			break
		}
	}
}

// TestDPOArithConcise is the Go-level short version of the DPO
// demonstration on the verbose SFT model: in each group of 8 samples of a training problem the
// shortest right completion is preferred to the longest wrong one, and DPO
// on those pairs must prefer the chosen completion of held-out pairs
// (fresh problems) above 90% of the time (80% in the short version).
func TestDPOArithConcise(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s of training")
	}
	start := time.Now()
	a := newVerboseArith(t, demoSize())
	am, err := NewAnswerMatch(AnswerMatchConfig{Extract: []string{ExtractGSM8K}})
	if err != nil {
		t.Fatal(err)
	}
	long := a.tl.Levels[2]
	pairsOf := func(probs []data.Problem, step int) []Pair {
		const G = 8
		var out []Pair
		for lo := 0; lo < len(probs); lo += 32 {
			part := probs[lo:min(lo+32, len(probs))]
			var ps [][]int32
			var ids []uint64
			rb := RewardBatch{Columns: map[string][]string{}}
			for i, p := range part {
				ps = append(ps, a.enc(a.tl.Condition(arithPrompt(p), long)))
				ids = append(ids, uint64(lo+i))
				for range G {
					rb.Prompts = append(rb.Prompts, "")
					rb.Columns["answer"] = append(rb.Columns["answer"], p.Answer)
				}
			}
			r, err := Generate(a.m, a.tok, ps, ids, step, G, a.sz.maxNew, SamplingConfig{Seed: 3, Temperature: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rb.Completions, rb.CompletionIDs = r.Texts, r.Completions
			sc, err := Rewards{{Reward: am, Weight: 1}}.Score(context.Background(), rb)
			if err != nil {
				t.Fatal(err)
			}
			pairs, err := PairsFromGroups(r, sc.Total, G)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pairs...)
		}
		return out
	}
	n := min(len(a.train), 40*a.sz.prompts)
	if a.sz.name == "full" {
		n = min(len(a.train), 80*a.sz.prompts)
	}
	trainPairs, heldPairs := pairsOf(a.train[:n], 1), pairsOf(a.held, 2)
	steps := 40
	if a.sz.name == "full" {
		steps = 150
	}
	loss, st := trainDPO(t, a.m, trainPairs, heldPairs, steps)
	res, err := Evaluate(context.Background(), a.m, a.tok, a.heldAt(&long), Rewards{{Reward: am, Weight: 1}}, a.sz.maxNew, SamplingConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d train and %d held-out pairs; held-out loss %.3f, preference accuracy %.3f, margin %.3f; greedy accuracy %.3f, length %.1f; %v",
		len(trainPairs), len(heldPairs), loss, st.Accuracy, st.Margin, res.Reward, res.Length, time.Since(start).Round(time.Second))
	want := 0.8
	if a.sz.name == "full" {
		want = 0.9
	}
	if !(st.Accuracy > want) || !(loss < math.Ln2) {
		t.Errorf("held-out preference accuracy %.3f, loss %.3f; want above %.2f and below log 2", st.Accuracy, loss, want)
	}
}

// TestVerboseArith: the verbose worked solutions the demonstrations train
// on pose the same problems with the same answers as plain ones, only
// longer, so that shortening them costs no accuracy.
func TestVerboseArith(t *testing.T) {
	for _, v := range []float64{0.5, 1} {
		cfg := data.ArithConfig{Ops: []data.ArithOp{data.Add, data.Sub}}
		plain, err := data.GenerateArith(cfg, 3, 200)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Verbose = v
		verbose, err := data.GenerateArith(cfg, 3, 200)
		if err != nil {
			t.Fatal(err)
		}
		longer := 0
		for i := range plain {
			p, q := plain[i], verbose[i]
			if p.Question != q.Question || p.Answer != q.Answer {
				t.Fatalf("verbose %v, problem %d: %q = %s, plain %q = %s", v, i, q.Question, q.Answer, p.Question, p.Answer)
			}
			// Every plain line stays, in order.
			rest := q.Solution
			for _, line := range strings.Split(p.Solution, "\n") {
				k := strings.Index(rest, line)
				if k < 0 {
					t.Fatalf("verbose %v, problem %d: %q lost the step %q", v, i, q.Solution, line)
				}
				rest = rest[k+len(line):]
			}
			if len(q.Solution) > len(p.Solution) {
				longer++
			}
		}
		if v == 1 && longer != len(plain) || longer < len(plain)/2 {
			t.Errorf("verbose %v: %d of %d solutions longer", v, longer, len(plain))
		}
	}
	if _, err := data.NewArith(data.ArithConfig{Verbose: 1.5}, 1); err == nil {
		t.Error("verbose 1.5 accepted")
	}
}
