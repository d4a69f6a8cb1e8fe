package recipes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/distill"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// MethodDistill is the method: value of distillation recipes.
const MethodDistill = "distill"

// Files a distill run writes besides the usual ones.
const (
	// TeacherCacheFile holds the teacher signals the run trains on.
	TeacherCacheFile = "teacher.cache"
	// TeacherDPOFile is the teacher aligned with DPO in the run.
	TeacherDPOFile = "teacher-dpo.ckpt"
	// TeacherDPOMetricsFile logs that alignment's steps.
	TeacherDPOMetricsFile = "teacher-dpo.jsonl"
)

// DistillTeacher names the teachers of a distill run.
type DistillTeacher struct {
	// Checkpoint is the SFT teacher (a run directory or checkpoint),
	// which is ADPA's reference π_ref and the model DPO aligns.
	Checkpoint string `yaml:"checkpoint"`
	// DPO is the DPO-aligned teacher π_dpo. Empty means: aligned in this
	// run when align.steps is above 0, else the SFT teacher itself
	// (plain KD from an unaligned teacher).
	DPO string `yaml:"dpo"`
	// Align configures the in-run alignment.
	Align DistillAlign `yaml:"align"`
}

// DistillAlign configures the DPO alignment of the SFT teacher in a
// distill run (METHODS §4's loss, rl.DPOTrainer). The pairs are the
// teacher's own samples of the training prompts, a right answer over a
// wrong one (the shortest right over the longest wrong); a prompt whose
// samples all agree pairs the dataset answer with distill.RejectedArith's
// wrong, rambling one, our choice so that every prompt gives a pair.
type DistillAlign struct {
	// Steps is the number of DPO updates (0: no alignment).
	Steps int `yaml:"steps"`
	// Beta is DPO's β (0.1; the reference recipe's teacher used 0.01).
	Beta float64 `yaml:"beta"`
	// LR is the constant learning rate (5e-6): AdamW starts without
	// moments, so its first steps move every weight by about LR, and
	// larger rates broke the small arithmetic teacher.
	LR float64 `yaml:"lr"`
	// BatchPairs is the pairs per update (8).
	BatchPairs int `yaml:"batch_pairs"`
	// Generations is the samples per prompt the pairs come from (4).
	Generations int `yaml:"generations"`
	// Prompts caps the training prompts sampled (64; 0 means all).
	Prompts int `yaml:"prompts"`
	// Temperature is the sampling temperature (1).
	Temperature float64 `yaml:"temperature"`
	// MaxNewTokens caps each sampled answer (64).
	MaxNewTokens int `yaml:"max_new_tokens"`
}

// DistillStudentSamples configures ADPA's y_s, the responses the starting
// student generates to the training prompts before training.
type DistillStudentSamples struct {
	// Temperature is the sampling temperature (1; 0 is greedy).
	Temperature float64 `yaml:"temperature"`
	// MaxNewTokens caps each response (96).
	MaxNewTokens int `yaml:"max_new_tokens"`
}

// DistillEval configures the held-out comparison written at the end: the
// trained student's and the starting student's greedy answers to fresh
// problems, their accuracy, and the trained one's win rate under
// distill.JudgeArith.
type DistillEval struct {
	// Prompts is the number of fresh problems (100; 0 turns it off).
	Prompts int `yaml:"prompts"`
	// MaxNewTokens caps each answer (96).
	MaxNewTokens int `yaml:"max_new_tokens"`
	// Teachers adds the SFT and the DPO teacher to the comparison, so
	// that one table holds every model.
	Teachers bool `yaml:"teachers"`
	// Baseline is the model win rates are measured against (a run or
	// checkpoint); empty means the starting student, model.checkpoint.
	// ADPA+ starts from a DCKD student, so comparing it with the SFT
	// student needs this.
	Baseline string `yaml:"baseline"`
}

// DistillSection is the distill: section. Its keys:
//
//	distill:
//	  objective: dckd            # kd | gkd | dckd | adpa
//	  teacher: {checkpoint: runs/arith-sft-teacher-latest, dpo: "", align: {steps: 40}}
//	  cache: {top_k: 50, temperature: 1, batch: 8}
//	  cache_path: ""             # a cache from `minnow distill cache-teacher`
//	  kd: {divergence: forward_kl, beta: 0.5, temperature: 1, temperature_squared: false, prob_floor: 1.0e-8}
//	  gkd: {lambda: 0.5, sample_temperature: 0.9, max_new_tokens: 128}
//	  weights: {sft: 1, kd: 1, chosen: 1, rejected: 1, adpa: 1}
//	  adpa: {clamp_advantage: false, prob_floor: 1.0e-8}
//	  student: {temperature: 1, max_new_tokens: 96}
//	  eval: {prompts: 100, max_new_tokens: 96, teachers: false, baseline: ""}
//
// The student is model.checkpoint; ADPA+ is objective adpa with
// model.checkpoint a DCKD run.
type DistillSection struct {
	Objective string                `yaml:"objective"`
	Teacher   DistillTeacher        `yaml:"teacher"`
	Cache     distill.CacheConfig   `yaml:"cache"`
	CachePath string                `yaml:"cache_path"`
	KD        distill.KDConfig      `yaml:"kd"`
	GKD       distill.GKDConfig     `yaml:"gkd"`
	Weights   distill.Weights       `yaml:"weights"`
	ADPA      distill.ADPAConfig    `yaml:"adpa"`
	Student   DistillStudentSamples `yaml:"student"`
	Eval      DistillEval           `yaml:"eval"`
}

// config returns the distill.Config of the section.
func (s *DistillSection) config() distill.Config {
	return distill.Config{Objective: s.Objective, KD: s.KD, GKD: s.GKD, Weights: s.Weights, ADPA: s.ADPA}
}

type distillMethod struct{}

func init() { Register(distillMethod{}) }

func (distillMethod) Name() string { return MethodDistill }

func (distillMethod) Description() string {
	return "distillation from a teacher: KD, GKD, DCKD, ADPA (ADPA+ from a DCKD student), teacher signals cached (METHODS §3, §5)"
}

func (distillMethod) Section() string { return MethodDistill }

func (distillMethod) NewConfig() any {
	d := distill.DefaultConfig(distill.ObjectiveDCKD)
	return &DistillSection{Objective: distill.ObjectiveDCKD,
		Teacher: DistillTeacher{Align: DistillAlign{Beta: 0.1, LR: 5e-6, BatchPairs: 8, Generations: 4, Prompts: 64, Temperature: 1, MaxNewTokens: 64}},
		Cache:   distill.DefaultCacheConfig(), KD: d.KD, GKD: d.GKD, Weights: d.Weights, ADPA: d.ADPA,
		Student: DistillStudentSamples{Temperature: 1, MaxNewTokens: 96},
		Eval:    DistillEval{Prompts: 100, MaxNewTokens: 96}}
}

func (distillMethod) Validate(r *Recipe) error {
	s := r.MethodConfig.(*DistillSection)
	if err := s.config().Validate(); err != nil {
		return fmt.Errorf("distill.%w", err)
	}
	if err := s.Cache.Validate(); err != nil {
		return fmt.Errorf("distill.cache.%w", err)
	}
	if r.Data.Arith == nil {
		return errors.New("data.arith: method distill builds its preference triples from the arithmetic task; set data.arith")
	}
	if r.Model.Checkpoint == "" {
		return errors.New("model.checkpoint: method distill trains a student that starts from a checkpoint (its SFT run)")
	}
	if s.CachePath == "" && s.Teacher.Checkpoint == "" {
		return errors.New("distill.teacher.checkpoint: name the teacher's run or checkpoint, or give distill.cache_path")
	}
	if s.Objective == distill.ObjectiveADPA && s.CachePath == "" && s.Teacher.DPO == "" && s.Teacher.Align.Steps == 0 {
		return errors.New("distill.teacher.dpo: adpa needs a DPO-aligned teacher: name it, or align the teacher in the run with distill.teacher.align.steps")
	}
	a := s.Teacher.Align
	switch {
	case a.Steps < 0:
		return rangeErr("distill.teacher.align.steps", a.Steps, "0 (no alignment) or more")
	case !(a.Beta > 0):
		return rangeErr("distill.teacher.align.beta", a.Beta, "above 0")
	case !(a.LR > 0):
		return rangeErr("distill.teacher.align.lr", a.LR, "above 0")
	case a.BatchPairs < 1:
		return rangeErr("distill.teacher.align.batch_pairs", a.BatchPairs, "1 or more")
	case a.Generations < 2:
		return rangeErr("distill.teacher.align.generations", a.Generations, "2 or more")
	case a.Prompts < 0:
		return rangeErr("distill.teacher.align.prompts", a.Prompts, "0 (all) or more")
	case a.Temperature < 0:
		return rangeErr("distill.teacher.align.temperature", a.Temperature, "0 or more")
	case a.MaxNewTokens < 1:
		return rangeErr("distill.teacher.align.max_new_tokens", a.MaxNewTokens, "1 or more")
	case s.Student.Temperature < 0:
		return rangeErr("distill.student.temperature", s.Student.Temperature, "0 (greedy) or more")
	case s.Student.MaxNewTokens < 1:
		return rangeErr("distill.student.max_new_tokens", s.Student.MaxNewTokens, "1 or more")
	case s.Eval.Prompts < 0:
		return rangeErr("distill.eval.prompts", s.Eval.Prompts, "0 (off) or more")
	case s.Eval.MaxNewTokens < 1:
		return rangeErr("distill.eval.max_new_tokens", s.Eval.MaxNewTokens, "1 or more")
	case r.Train.EvalEvery > 0 && r.Data.ValFraction <= 0:
		return rangeErr("data.val_fraction", r.Data.ValFraction, "above 0 with train.eval_every, which evaluates on the held-out triples")
	case r.Train.EvalEvery > 0 && r.Train.EvalBatches <= 0:
		return rangeErr("train.eval_batches", r.Train.EvalBatches, "a positive cap, since the held-out batches repeat endlessly")
	}
	for _, p := range []struct{ key, path string }{{"distill.teacher.checkpoint", s.Teacher.Checkpoint},
		{"distill.teacher.dpo", s.Teacher.DPO}, {"distill.cache_path", s.CachePath}, {"distill.eval.baseline", s.Eval.Baseline}} {
		if p.path != "" && !fileExists(p.path) {
			return fmt.Errorf("%s: %s does not exist", p.key, p.path)
		}
	}
	return nil
}

func (distillMethod) Run(ctx context.Context, e *Env) (Summary, error) {
	s := e.Recipe.MethodConfig.(*DistillSection)
	tok, err := e.Tokenizer()
	if err != nil {
		return *e.sum, err
	}
	student, cfg, cfgJSON, err := e.Model(len(tok.Vocab().Tokens))
	if err != nil {
		return *e.sum, err
	}
	problems, err := e.ArithProblems()
	if err != nil {
		return *e.sum, err
	}
	c, teacher, err := e.distillCache(ctx, s, tok, student, problems)
	if err != nil {
		return *e.sum, err
	}
	dc := s.config()
	d := distill.NewData(c)
	items, err := distill.Items(c, dc.Roles())
	if err != nil {
		return *e.sum, err
	}
	trainItems, evalItems := items, [][]int(nil)
	if f := e.Recipe.Data.ValFraction; f > 0 && len(items) > 1 {
		n := min(max(1, int(f*float64(len(items)))), len(items)-1)
		trainItems, evalItems = items[:len(items)-n], items[len(items)-n:]
	}
	seed := e.Recipe.Seed
	if dc.GKD.Seed == 0 {
		dc.GKD.Seed = seed
	}
	lambda := 0.0
	if dc.Objective == distill.ObjectiveGKD {
		lambda = dc.GKD.Lambda
	}
	batches, err := d.Batches(trainItems, e.Backend, e.Recipe.Data.Batch, seed, e.Recipe.Data.Shuffle, lambda)
	if err != nil {
		return *e.sum, err
	}
	var eval train.Batches
	if e.Recipe.Train.EvalEvery > 0 && len(evalItems) > 0 {
		if eval, err = d.Batches(evalItems, e.Backend, e.Recipe.Data.Batch, seed, false, 0); err != nil {
			return *e.sum, err
		}
	}
	obj, err := distill.NewObjective(dc, d, teacher, tok)
	if err != nil {
		return *e.sum, err
	}
	e.extra("teacher signals", fmt.Sprintf("%d sequences, top-%d, %s", len(c.Seqs), c.Header.K, c.Header.Teacher))
	sum, err := e.Train(ctx, TrainJob{Model: student, Objective: obj, Batches: batches, Eval: eval,
		Config: cfgJSON, Arch: cfg.ModelType})
	if err != nil {
		return sum, err
	}
	if err := e.distillEval(s, tok, student, sum.Steps); err != nil {
		return *e.sum, err
	}
	return *e.sum, nil
}

// distillCache returns the run's teacher signals: distill.cache_path's,
// else the run directory's from an earlier attempt, else computed now
// (after aligning the teacher with DPO when the recipe asks). It also
// returns the live teacher gkd's on-policy steps need (nil otherwise).
func (e *Env) distillCache(ctx context.Context, s *DistillSection, tok tokenizer.Tokenizer, student model.Model,
	problems []data.Problem) (*distill.Cache, model.Model, error) {
	path := s.CachePath
	if path == "" {
		path = filepath.Join(e.Dir, TeacherCacheFile)
	}
	needTeacher := s.Objective == distill.ObjectiveGKD && s.GKD.Lambda > 0
	var c *distill.Cache
	if fileExists(path) {
		var err error
		if c, err = distill.Read(path); err != nil {
			return nil, nil, err
		}
		if err := c.CheckTokenizer(*tok.Vocab()); err != nil {
			return nil, nil, err
		}
		if !needTeacher {
			return c, nil, nil
		}
	}
	teachers, err := e.distillTeachers(ctx, s, tok, problems)
	if err != nil {
		return nil, nil, err
	}
	if c != nil {
		return c, teachers.dpo, nil
	}
	seqs, err := distillSeqs(s, tok, student, problems, e.Recipe.Seed)
	if err != nil {
		return nil, nil, err
	}
	var ref model.Model
	if s.Objective == distill.ObjectiveADPA {
		ref = teachers.ref
	}
	c, err = distill.BuildCache(teachers.dpo, ref, *tok.Vocab(), seqs, s.Cache)
	if err != nil {
		return nil, nil, err
	}
	c.Header.Teacher, c.Header.RefTeacher = teachers.dpoName, ""
	if ref != nil {
		c.Header.RefTeacher = teachers.refName
	}
	if err := distill.Write(path, c); err != nil {
		return nil, nil, err
	}
	if !needTeacher {
		teachers.dpo = nil
	}
	return c, teachers.dpo, nil
}

// teacherPair is a distill run's reference (SFT) and DPO teachers.
type teacherPair struct {
	ref, dpo         model.Model
	refName, dpoName string
}

// distillTeachers loads the SFT teacher and the DPO teacher (aligned now
// when the recipe asks), checking that they share the run's tokenizer.
func (e *Env) distillTeachers(ctx context.Context, s *DistillSection, tok tokenizer.Tokenizer, problems []data.Problem) (teacherPair, error) {
	var tp teacherPair
	load := func(key, path string) (model.Model, error) {
		if err := sameTokenizer(path, tok); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		ck, err := LoadCheckpoint(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		m, _, err := LoadModel(e.Backend, ck)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		return m, nil
	}
	var err error
	if tp.ref, err = load("distill.teacher.checkpoint", s.Teacher.Checkpoint); err != nil {
		return tp, err
	}
	tp.refName = s.Teacher.Checkpoint
	aligned := filepath.Join(e.Dir, TeacherDPOFile)
	switch {
	case s.Teacher.DPO != "":
		tp.dpo, err = load("distill.teacher.dpo", s.Teacher.DPO)
		tp.dpoName = s.Teacher.DPO
	case fileExists(aligned):
		// An earlier attempt of this run aligned the teacher already.
		var ck *checkpoint.Checkpoint
		if ck, err = LoadCheckpoint(aligned); err == nil {
			tp.dpo, _, err = LoadModel(e.Backend, ck)
		}
		tp.dpoName = aligned
	case s.Teacher.Align.Steps > 0:
		tp.dpo, err = e.alignTeacher(ctx, s, tok, tp.ref, problems, aligned)
		tp.dpoName = aligned
	default:
		tp.dpo, tp.dpoName = tp.ref, tp.refName
	}
	return tp, err
}

// sameTokenizer returns an error when the run or checkpoint at path was
// trained with a tokenizer other than tok: teacher and student must share
// one. A checkpoint with no tokenizer.gguf beside it is not checked here;
// the vocabulary sizes are compared when the cache is built.
func sameTokenizer(path string, tok tokenizer.Tokenizer) error {
	dir := path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
	}
	tf := filepath.Join(dir, TokenizerFile)
	if !fileExists(tf) {
		return nil
	}
	v, err := tokenizer.LoadVocab(tf)
	if err != nil {
		return err
	}
	if distill.TokenizerID(*v) != distill.TokenizerID(*tok.Vocab()) {
		return fmt.Errorf("%s is not the student's tokenizer: teacher and student must share a tokenizer", tf)
	}
	return nil
}

// distillSeqs tokenizes the preference triples of the problems: the
// dataset answer as chosen, distill.RejectedArith's as rejected, and for
// adpa the starting student's own sample as its response.
func distillSeqs(s *DistillSection, tok tokenizer.Tokenizer, student model.Model, problems []data.Problem, seed uint64) ([]distill.Seq, error) {
	var samples []string
	if s.Objective == distill.ObjectiveADPA {
		var err error
		if samples, err = studentAnswers(student, tok, problems, s.Student.MaxNewTokens, s.Student.Temperature, seed); err != nil {
			return nil, err
		}
	}
	exs := make([]distill.Example, len(problems))
	for i, p := range problems {
		exs[i] = distill.Example{Prompt: ArithPrompt(p.Question), Chosen: p.Target(), Rejected: distill.RejectedArith(p)}
		if samples != nil {
			// Tokenize skips empty responses; a space keeps the item
			// whole, its EOS marking the answer that stopped at once.
			exs[i].Student = samples[i]
			if exs[i].Student == "" {
				exs[i].Student = " "
			}
		}
	}
	seqs, err := distill.Tokenize(exs, tok, nil, student.Config().MaxPositionEmbeddings)
	if err != nil {
		return nil, fmt.Errorf("data.arith: %w", err)
	}
	return seqs, nil
}

// arithPromptIDs encodes problems' prompts as Sample does.
func arithPromptIDs(tok tokenizer.Tokenizer, problems []data.Problem) [][]int32 {
	v := tok.Vocab()
	out := make([][]int32, len(problems))
	for i, p := range problems {
		var ids []int32
		if v.AddBOS && v.BOS >= 0 {
			ids = append(ids, v.BOS)
		}
		out[i] = append(ids, tok.Encode(ArithPrompt(p.Question), tokenizer.EncodeOptions{})...)
	}
	return out
}

// studentAnswers generates m's answers to problems, in chunks that bound
// memory, stopping at a blank line as Sample does.
func studentAnswers(m model.Model, tok tokenizer.Tokenizer, problems []data.Problem, maxNew int, temp float64, seed uint64) ([]string, error) {
	prompts := arithPromptIDs(tok, problems)
	out := make([]string, 0, len(problems))
	const chunk = 64
	for lo := 0; lo < len(prompts); lo += chunk {
		part := prompts[lo:min(lo+chunk, len(prompts))]
		var cs []model.Completion
		var err error
		tensor.NoGrad(func() {
			cs, err = model.Generate(m, tok, part, model.GenerateConfig{MaxNewTokens: maxNew, Temperature: temp,
				StopStrings: []string{"\n\n"}, Seed: seed + uint64(lo)})
		})
		if err != nil {
			return nil, fmt.Errorf("distill: generating answers: %w", err)
		}
		for _, c := range cs {
			out = append(out, c.Text)
		}
	}
	return out, nil
}
