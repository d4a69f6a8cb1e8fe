package recipes

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/distill"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/rl"
	"github.com/minnowml/minnow/train"
)

// alignTeacher aligns a copy of the SFT teacher ref with DPO on pairs of
// its own samples (see DistillAlign), logs the steps to
// TeacherDPOMetricsFile, saves it to path and returns it. It returns an
// error when sampling, the reference log-probs, a step or the save fails.
func (e *Env) alignTeacher(ctx context.Context, s *DistillSection, tok tokenizer.Tokenizer, ref model.Model,
	problems []data.Problem, path string) (model.Model, error) {
	a := s.Teacher.Align
	ck, err := LoadCheckpoint(s.Teacher.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("distill.teacher.checkpoint: %w", err)
	}
	policy, _, err := LoadModel(e.Backend, ck)
	if err != nil {
		return nil, fmt.Errorf("distill.teacher.checkpoint: %w", err)
	}
	ps := problems
	if a.Prompts > 0 && a.Prompts < len(ps) {
		ps = ps[:a.Prompts]
	}
	pairs, err := alignPairs(a, tok, ref, ps, a.MaxNewTokens, e.Recipe.Seed)
	if err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("distill.teacher.align: no preference pair of %d prompts fits the teacher's context of %d tokens", len(ps), ref.Config().MaxPositionEmbeddings)
	}
	chosen, rejected, err := rl.PrecomputeRefLogps(rl.ModelReference{Model: ref}, pairs, 16)
	if err != nil {
		return nil, fmt.Errorf("distill: teacher alignment: %w", err)
	}
	decay, keep := model.DecaySplit(policy.Params())
	opt, err := train.NewAdamW(train.AdamWConfig{LR: a.LR}, train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
	if err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(e.Dir, TeacherDPOMetricsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := &rl.DPOTrainer{Policy: policy, Opt: opt, Pairs: pairs, Ref: rl.RefLogps{Chosen: chosen, Rejected: rejected},
		Metrics: f, Config: rl.DPOTrainerConfig{DPO: rl.DPOConfig{Beta: a.Beta}, BatchPairs: a.BatchPairs, ClipNorm: 1, Seed: e.Recipe.Seed}}
	var last rl.DPOMetric
	for step := 1; step <= a.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if last, err = tr.Step(step); err != nil {
			return nil, fmt.Errorf("distill: teacher alignment: %w", err)
		}
	}
	e.extra("teacher DPO", fmt.Sprintf("%d pairs, %d steps, final loss %.3f, reward accuracy %.2f, margin %.3f",
		len(pairs), a.Steps, last.Loss, last.Accuracy, last.Margin))
	if err := SaveModel(path, policy, TokenizerFile, map[string]string{"distill": "teacher aligned with DPO"}); err != nil {
		return nil, err
	}
	return policy, nil
}

// alignPairs samples a.Generations answers per problem from the teacher
// and pairs, in each group with a right and a wrong answer, the shortest
// right over the longest wrong (rl.PairsFromGroups); a group that agrees
// pairs the dataset answer over distill.RejectedArith's. A pair that
// does not fit the teacher's context is left out.
func alignPairs(a DistillAlign, tok tokenizer.Tokenizer, teacher model.Model, ps []data.Problem, maxNew int, seed uint64) ([]rl.Pair, error) {
	prompts := arithPromptIDs(tok, ps)
	pids := make([]uint64, len(ps))
	for i := range pids {
		pids[i] = uint64(i)
	}
	G := a.Generations
	ctx := teacher.Config().MaxPositionEmbeddings
	var pairs []rl.Pair
	const chunk = 16
	for lo := 0; lo < len(ps); lo += chunk {
		hi := min(lo+chunk, len(ps))
		roll, err := rl.Generate(teacher, tok, prompts[lo:hi], pids[lo:hi], 0, G, maxNew,
			rl.SamplingConfig{Temperature: a.Temperature, Seed: seed, StopStrings: []string{"\n\n"}}, nil)
		if err != nil {
			return nil, fmt.Errorf("distill: teacher alignment: %w", err)
		}
		for i := lo; i < hi; i++ {
			g := (i - lo) * G
			sub := rl.Rollout{Prompts: roll.Prompts[g : g+G], Completions: roll.Completions[g : g+G]}
			rewards := make([]float64, G)
			for j := range G {
				if ps[i].Correct(roll.Texts[g+j]) {
					rewards[j] = 1
				}
			}
			got, err := rl.PairsFromGroups(sub, rewards, G)
			if err != nil {
				return nil, err
			}
			if len(got) == 0 {
				p, err := datasetPair(tok, ps[i])
				if err != nil {
					return nil, err
				}
				got = []rl.Pair{p}
			}
			for _, p := range got {
				if ctx <= 0 || len(p.Prompt)+max(len(p.Chosen), len(p.Rejected)) <= ctx {
					pairs = append(pairs, p)
				}
			}
		}
	}
	return pairs, nil
}

// datasetPair tokenizes the dataset answer to p over its wrong, rambling
// variant as one preference pair.
func datasetPair(tok tokenizer.Tokenizer, p data.Problem) (rl.Pair, error) {
	split := func(completion string) ([]int32, []int32, error) {
		ids, trainable, err := data.TokenizeSFT(data.PromptCompletion{Prompt: ArithPrompt(p.Question), Completion: completion}, tok, nil)
		if err != nil {
			return nil, nil, err
		}
		start := 0
		for start < len(trainable) && !trainable[start] {
			start++
		}
		return ids[:start], ids[start:], nil
	}
	prompt, chosen, err := split(p.Target())
	if err != nil {
		return rl.Pair{}, err
	}
	_, rejected, err := split(distill.RejectedArith(p))
	return rl.Pair{Prompt: prompt, Chosen: chosen, Rejected: rejected}, err
}

// distillEvalRow is one model's line of the held-out comparison.
type distillEvalRow struct {
	Model    string  `json:"model"`
	Accuracy float64 `json:"accuracy"`
	// WinRate is distill.WinRate against the baseline's answers (the
	// first row).
	WinRate float64 `json:"win_rate"`
	// Length is the mean answer length in bytes.
	Length float64 `json:"length"`
}

// DistillEvalFile holds the held-out comparison of a distill run.
const DistillEvalFile = "distill-eval.json"

// distillEval answers distill.eval.prompts fresh problems greedily with
// the baseline (distill.eval.baseline, else the starting student), the
// trained student and, when asked, the teachers, and records each one's
// accuracy and win rate against the baseline in DistillEvalFile, the
// summary and metrics.jsonl.
func (e *Env) distillEval(s *DistillSection, tok tokenizer.Tokenizer, trained model.Model, step int) error {
	n := s.Eval.Prompts
	if n == 0 {
		return nil
	}
	a := *e.Recipe.Data.Arith
	if a.Seed == 0 {
		a.Seed = e.Recipe.Seed
	}
	// The held-out seed of sample.arith and the RL evaluations, so every
	// run of the task is scored on the same problems.
	ps, err := data.GenerateArith(a.config(), a.Seed+arithHeldOutSeed, n)
	if err != nil {
		return fmt.Errorf("distill.eval: %w", err)
	}
	basePath, baseName := e.Recipe.Model.Checkpoint, "student (start)"
	if s.Eval.Baseline != "" {
		basePath, baseName = s.Eval.Baseline, "baseline "+s.Eval.Baseline
	}
	ck, err := LoadCheckpoint(basePath)
	if err != nil {
		return fmt.Errorf("distill.eval: %w", err)
	}
	start, _, err := LoadModel(e.Backend, ck)
	if err != nil {
		return fmt.Errorf("distill.eval: %w", err)
	}
	models := []struct {
		name string
		m    model.Model
	}{{baseName, start}, {"student (trained)", trained}}
	dpo := s.Teacher.DPO
	if aligned := filepath.Join(e.Dir, TeacherDPOFile); dpo == "" && fileExists(aligned) {
		dpo = aligned
	}
	for _, t := range []struct{ name, path string }{{"SFT teacher", s.Teacher.Checkpoint}, {"DPO teacher", dpo}} {
		if !s.Eval.Teachers || t.path == "" {
			continue
		}
		tk, err := LoadCheckpoint(t.path)
		if err != nil {
			return fmt.Errorf("distill.eval: %s: %w", t.name, err)
		}
		m, _, err := LoadModel(e.Backend, tk)
		if err != nil {
			return fmt.Errorf("distill.eval: %s: %w", t.name, err)
		}
		models = append(models, struct {
			name string
			m    model.Model
		}{t.name, m})
	}
	var base []string
	var rows []distillEvalRow
	for i, m := range models {
		ans, err := studentAnswers(m.m, tok, ps, s.Eval.MaxNewTokens, 0, e.Recipe.Seed)
		if err != nil {
			return err
		}
		if i == 0 {
			base = ans
		}
		win, acc := distill.WinRate(ps, ans, base)
		l := 0.0
		for _, x := range ans {
			l += float64(len(strings.TrimSpace(x)))
		}
		rows = append(rows, distillEvalRow{Model: m.name, Accuracy: acc, WinRate: win, Length: l / float64(len(ans))})
		e.extra("held-out "+m.name, fmt.Sprintf("accuracy %.3f, win rate vs %s %.3f, mean length %.1f", acc, models[0].name, win, l/float64(len(ans))))
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(e.Dir, DistillEvalFile, append(b, '\n')); err != nil {
		return err
	}
	return e.writeMetric(map[string]any{"step": step, "eval_accuracy": rows[1].Accuracy, "eval_win_rate": rows[1].WinRate,
		"eval_baseline_accuracy": rows[0].Accuracy})
}
