package distill

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/rl"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// The objectives Config.Objective names.
const (
	ObjectiveKD   = "kd"
	ObjectiveGKD  = "gkd"
	ObjectiveDCKD = "dckd"
	ObjectiveADPA = "adpa"
)

// GKDConfig configures GKD's data source per step (METHODS §5).
type GKDConfig struct {
	// Lambda is the probability that a step trains on sequences the
	// student samples itself, with the teacher run live on them (0.5).
	Lambda float64 `yaml:"lambda"`
	// SampleTemperature is the student's sampling temperature (0.9).
	SampleTemperature float64 `yaml:"sample_temperature"`
	// MaxNewTokens caps the sampled responses (128).
	MaxNewTokens int `yaml:"max_new_tokens"`
	// Seed keys the λ draws and the samples (0: the recipe's seed).
	Seed uint64 `yaml:"seed"`
}

// Weights are the loss weights of DCKD and ADPA (METHODS §3). The
// third-party DCKD recipe sets them all to 1.
type Weights struct {
	// SFT weighs the cross-entropy on the chosen response.
	SFT float64 `yaml:"sft"`
	// KD weighs DCKD's two KL constraints together.
	KD float64 `yaml:"kd"`
	// Chosen and Rejected weigh DCKD's KL on y_w and on y_l.
	Chosen   float64 `yaml:"chosen"`
	Rejected float64 `yaml:"rejected"`
	// ADPA weighs the advantage loss; it carries the scale a β on the
	// advantage would (METHODS §3: the code applies none).
	ADPA float64 `yaml:"adpa"`
}

// Config selects and configures a distillation objective.
type Config struct {
	// Objective is kd (divergence on cached sequences), gkd (kd with
	// on-policy student samples), dckd or adpa.
	Objective string `yaml:"objective"`
	// KD is the divergence of kd, gkd and dckd; dckd's default is
	// forward KL, as the reference code.
	KD KDConfig `yaml:"kd"`
	// GKD applies to objective gkd.
	GKD GKDConfig `yaml:"gkd"`
	// Weights apply to dckd and adpa.
	Weights Weights `yaml:"weights"`
	// ADPA applies to objective adpa.
	ADPA ADPAConfig `yaml:"adpa"`
}

// DefaultConfig returns the defaults of objective: METHODS §5's TRL
// values for kd and gkd (JSD β 0.5, λ 0.5, sampling temperature 0.9, 128
// tokens), forward KL and unit weights for dckd, and the raw advantage
// with unit weights for adpa.
func DefaultConfig(objective string) Config {
	c := Config{Objective: objective, KD: DefaultKDConfig(),
		GKD:     GKDConfig{Lambda: 0.5, SampleTemperature: 0.9, MaxNewTokens: 128},
		Weights: Weights{SFT: 1, KD: 1, Chosen: 1, Rejected: 1, ADPA: 1},
		ADPA:    ADPAConfig{ProbFloor: 1e-8}}
	if objective == ObjectiveDCKD {
		c.KD.Divergence = ForwardKL
	}
	return c
}

// Validate returns an error naming the first field (by its yaml path
// below the section) that is out of range.
func (c Config) Validate() error {
	switch c.Objective {
	case ObjectiveKD, ObjectiveGKD, ObjectiveDCKD, ObjectiveADPA:
	default:
		return fmt.Errorf("objective: %q is not one of kd, gkd, dckd, adpa", c.Objective)
	}
	if err := c.KD.Validate(); err != nil {
		return fmt.Errorf("kd.%w", err)
	}
	g := c.GKD
	if !(g.Lambda >= 0 && g.Lambda <= 1) {
		return fmt.Errorf("gkd.lambda: %v is out of range (allowed: 0 to 1)", g.Lambda)
	}
	if !(g.SampleTemperature > 0) {
		return fmt.Errorf("gkd.sample_temperature: %v is out of range (allowed: above 0)", g.SampleTemperature)
	}
	if g.MaxNewTokens < 1 {
		return fmt.Errorf("gkd.max_new_tokens: %d is out of range (allowed: 1 or more)", g.MaxNewTokens)
	}
	w := c.Weights
	for _, f := range []struct {
		name string
		v    float64
	}{{"sft", w.SFT}, {"kd", w.KD}, {"chosen", w.Chosen}, {"rejected", w.Rejected}, {"adpa", w.ADPA}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("weights.%s: %v is out of range (allowed: 0 or more)", f.name, f.v)
		}
	}
	if !(c.ADPA.ProbFloor > 0 && c.ADPA.ProbFloor < 0.5) {
		return fmt.Errorf("adpa.prob_floor: %v is out of range (allowed: above 0 and below 0.5)", c.ADPA.ProbFloor)
	}
	return nil
}

// Roles returns the roles of the sequences each training item of the
// objective groups, in row order: one sequence for kd and gkd (a dataset
// or teacher response), chosen and rejected for dckd, chosen and the
// student's own response for adpa.
func (c Config) Roles() []Role {
	switch c.Objective {
	case ObjectiveDCKD:
		return []Role{RoleChosen, RoleRejected}
	case ObjectiveADPA:
		return []Role{RoleChosen, RoleStudent}
	}
	return []Role{RoleData}
}

// Items groups the cache's sequences into training items by example, one
// sequence of each of roles per item, in example order. For a single role
// RoleData it also accepts chosen and teacher responses, so that KD can
// run on a preference cache. It returns an error when an example lacks a
// role or no item is complete.
func Items(c *Cache, roles []Role) ([][]int, error) {
	byEx := map[int32]map[Role]int{}
	var order []int32
	for i, s := range c.Seqs {
		m, ok := byEx[s.Example]
		if !ok {
			m = map[Role]int{}
			byEx[s.Example] = m
			order = append(order, s.Example)
		}
		if _, dup := m[s.Role]; !dup {
			m[s.Role] = i
		}
	}
	var items [][]int
	for _, ex := range order {
		m := byEx[ex]
		item := make([]int, 0, len(roles))
		for _, r := range roles {
			i, ok := m[r]
			if !ok && len(roles) == 1 && r == RoleData {
				for _, alt := range []Role{RoleTeacher, RoleChosen} {
					if i, ok = m[alt]; ok {
						break
					}
				}
			}
			if !ok {
				return nil, fmt.Errorf("distill: example %d of the cache has no %s response", ex, r)
			}
			item = append(item, i)
		}
		items = append(items, item)
	}
	if len(items) == 0 {
		return nil, errors.New("distill: the cache holds no sequences")
	}
	return items, nil
}

// pendingBatch is what Batches remembers about a batch it served.
type pendingBatch struct {
	seqs     []int // one cached sequence per row
	onPolicy bool
	key      uint64
}

// Data serves cached sequences to an Objective as batches. train.Batch
// carries only tensors, so Data remembers which cached sequences each
// batch it served holds, keyed by the batch's ids tensor, and the
// objective looks them up when it gets the batch.
type Data struct {
	Cache *Cache

	mu      sync.Mutex
	pending map[*tensor.Tensor]pendingBatch
}

// NewData returns a Data over c.
func NewData(c *Cache) *Data { return &Data{Cache: c, pending: map[*tensor.Tensor]pendingBatch{}} }

func (d *Data) take(ids *tensor.Tensor) (pendingBatch, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pending[ids]
	delete(d.pending, ids)
	return p, ok
}

// batches serves items of cached sequences.
type batches struct {
	d      *Data
	items  [][]int
	be     tensor.Backend
	batch  int
	s      *data.Sampler
	n      int64 // batches served, which keys the on-policy draw
	seed   uint64
	lambda float64
}

// batchCursor is the resumption state.
type batchCursor struct {
	Items   int         `json:"items"`
	Cursor  data.Cursor `json:"cursor"`
	Batches int64       `json:"batches"`
}

// Batches returns an endless, resumable source of batch items each,
// drawn epoch after epoch in an order shuffled by seed (or in order).
// Each batch stacks the items' sequences as rows, right-padded, with the
// response tokens as targets. With lambda > 0, each batch is marked
// on-policy with that probability, drawn from (seed, batch number), so
// that a resumed run draws the same. It returns an error when items is
// empty or names a sequence not in the cache, batch is not positive or be
// is nil.
func (d *Data) Batches(items [][]int, be tensor.Backend, batch int, seed uint64, shuffle bool, lambda float64) (train.Batches, error) {
	if be == nil || batch < 1 || len(items) == 0 {
		return nil, fmt.Errorf("distill: batches: %d items in batches of %d", len(items), batch)
	}
	for _, it := range items {
		for _, i := range it {
			if i < 0 || i >= len(d.Cache.Seqs) {
				return nil, fmt.Errorf("distill: batches: sequence %d of %d", i, len(d.Cache.Seqs))
			}
		}
	}
	s, err := data.NewSampler(int64(len(items)), seed, shuffle)
	if err != nil {
		return nil, err
	}
	return &batches{d: d, items: items, be: be, batch: batch, s: s, seed: seed, lambda: lambda}, nil
}

// Next returns the next batch.
func (b *batches) Next() (train.Batch, error) {
	var rows []int
	for range b.batch {
		rows = append(rows, b.items[b.s.Next()]...)
	}
	T := 0
	for _, r := range rows {
		T = max(T, len(b.d.Cache.Seqs[r].IDs))
	}
	ids := make([]int32, len(rows)*T)
	tg := make([]int32, len(rows)*T)
	for i, r := range rows {
		s := &b.d.Cache.Seqs[r]
		copy(ids[i*T:], s.IDs)
		for t := range T {
			tg[i*T+t] = train.IgnoreIndex
			if t >= s.Start-1 && t+1 < len(s.IDs) {
				tg[i*T+t] = s.IDs[t+1]
			}
		}
	}
	key := rl.SampleKey(b.seed, uint64(b.n))
	on := b.lambda > 0 && float64(key>>11)/(1<<53) < b.lambda
	b.n++
	x := tensor.From(b.be, tensor.Int32, ids, len(rows), T)
	b.d.mu.Lock()
	b.d.pending[x] = pendingBatch{seqs: rows, onPolicy: on, key: key}
	b.d.mu.Unlock()
	return train.Batch{IDs: x, Targets: tensor.From(b.be, tensor.Int32, tg, len(rows), T)}, nil
}

// Cursor returns the position of the next batch as JSON.
func (b *batches) Cursor() ([]byte, error) {
	return json.Marshal(batchCursor{Items: len(b.items), Cursor: b.s.Cursor(), Batches: b.n})
}

// Seek moves to a position Cursor returned. It returns an error when the
// cursor is malformed or was saved over another number of items.
func (b *batches) Seek(cursor []byte) error {
	var c batchCursor
	if err := json.Unmarshal(cursor, &c); err != nil {
		return fmt.Errorf("distill: batches: cursor: %w", err)
	}
	if c.Items != len(b.items) {
		return fmt.Errorf("distill: batches: cursor of %d items for %d", c.Items, len(b.items))
	}
	b.n = c.Batches
	return b.s.Seek(c.Cursor)
}

// Objective is a distillation objective for train.Loop on batches from
// Data.Batches (the same Data): kd, gkd, dckd or adpa, as Config says.
type Objective struct {
	Config Config
	Data   *Data
	// Teacher runs live on the student's own samples, which gkd's
	// on-policy steps need; Tokenizer stops the samples at its EOS.
	Teacher   model.Model
	Tokenizer tokenizer.Tokenizer
}

// NewObjective returns the objective, checking that cfg is valid, that
// the cache fits it (ADPA needs reference log-probs) and that gkd with
// λ > 0 has a live teacher. It returns an error naming the problem.
func NewObjective(cfg Config, d *Data, teacher model.Model, tok tokenizer.Tokenizer) (*Objective, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d == nil || d.Cache == nil {
		return nil, errors.New("distill: objective: no teacher cache")
	}
	if cfg.Objective == ObjectiveADPA && !d.Cache.Header.Reference {
		return nil, errors.New("distill: adpa needs a teacher cache with the reference teacher's log-probs (cache-teacher --reference)")
	}
	if cfg.Objective == ObjectiveKD || cfg.Objective == ObjectiveGKD || cfg.Objective == ObjectiveDCKD {
		if t := d.Cache.Header.Temperature; t != cfg.KD.Temperature {
			return nil, fmt.Errorf("distill: kd.temperature %v differs from the teacher cache's %v", cfg.KD.Temperature, t)
		}
	}
	if cfg.Objective == ObjectiveGKD && cfg.GKD.Lambda > 0 && teacher == nil {
		return nil, errors.New("distill: gkd with lambda above 0 needs the teacher model for the student's own samples")
	}
	return &Objective{Config: cfg, Data: d, Teacher: teacher, Tokenizer: tok}, nil
}

// Loss returns the objective's loss of m on b, a batch from the Data's
// Batches. It returns an error when b did not come from them, m is not a
// model.Model, sampling or the teacher fails, or an op panics.
func (o *Objective) Loss(m train.Model, b train.Batch) (*tensor.Tensor, error) {
	p, ok := o.Data.take(b.IDs)
	if !ok {
		return nil, errors.New("distill: objective: the batch did not come from this objective's Data")
	}
	mm, ok := m.(model.Model)
	if !ok {
		return nil, fmt.Errorf("distill: objective: needs a model.Model, got %T", m)
	}
	c := o.Config
	seqs := make([]*Seq, len(p.seqs))
	for i, r := range p.seqs {
		seqs[i] = &o.Data.Cache.Seqs[r]
	}
	if c.Objective == ObjectiveGKD && p.onPolicy {
		return o.onPolicy(mm, seqs, p.key)
	}
	var loss *tensor.Tensor
	err := tensor.Catch(func() {
		logits := mm.Forward(b.IDs, model.ForwardOptions{})
		R, T, V := logits.Dim(0), logits.Dim(1), logits.Dim(2)
		flat := logits.Reshape(R*T, V)
		G := len(c.Roles())
		// Within each item the rows follow c.Roles(): row r plays
		// role r mod G.
		only := func(slot int) []bool {
			keep := make([]bool, R)
			for r := range R {
				keep[r] = r%G == slot
			}
			return keep
		}
		switch c.Objective {
		case ObjectiveKD, ObjectiveGKD:
			loss = must(KDLoss(c.KD, flat, o.targets(seqs, T, nil)))
		case ObjectiveDCKD:
			kw := must(KDLoss(c.KD, flat, o.targets(seqs, T, only(0))))
			kl := must(KDLoss(c.KD, flat, o.targets(seqs, T, only(1))))
			kd := kw.Scale(c.Weights.Chosen).Add(kl.Scale(c.Weights.Rejected)).Scale(c.Weights.KD)
			loss = kd.Add(chosenCE(logits, b.Targets, only(0), T).Scale(c.Weights.SFT))
		case ObjectiveADPA:
			adpa := must(ADPALoss(c.ADPA, flat, o.targets(seqs, T, only(1))))
			loss = adpa.Scale(c.Weights.ADPA).Add(chosenCE(logits, b.Targets, only(0), T).Scale(c.Weights.SFT))
		}
	})
	return loss, err
}

// must panics with a *tensor.Error for an error, so that tensor.Catch in
// Loss returns it.
func must(t *tensor.Tensor, err error) *tensor.Tensor {
	if err != nil {
		var te *tensor.Error
		if errors.As(err, &te) {
			panic(te)
		}
		panic(&tensor.Error{Op: "distill", Err: err})
	}
	return t
}

// chosenCE returns the token-mean cross-entropy of logits [R, T, V] on
// targets [R, T] over the rows keep marks.
func chosenCE(logits, targets *tensor.Tensor, keep []bool, T int) *tensor.Tensor {
	tg := targets.Int32s()
	for r, k := range keep {
		if !k {
			for t := range T {
				tg[r*T+t] = train.IgnoreIndex
			}
		}
	}
	x := tensor.From(targets.Backend(), tensor.Int32, tg, targets.Shape()...)
	_, mean := tensor.CrossEntropy(logits, x)
	return mean
}

// targets lays the cached signals of seqs (one per row of a [R·T]
// position grid) out as Targets over all R·T positions, with weight 1 at
// the response positions of the rows keep marks (all when keep is nil)
// and 0 elsewhere, where a uniform dummy top-K keeps the values finite.
func (o *Objective) targets(seqs []*Seq, T int, keep []bool) Targets {
	h := o.Data.Cache.Header
	K := h.K
	N := len(seqs) * T
	t := Targets{K: K, Index: make([]int32, N*K), LogP: make([]float32, N*K), Rest: make([]float32, N),
		Weight: make([]float32, N)}
	if h.Reference {
		t.RefLogP = make([]float32, N*K)
	}
	dummy := float32(-math.Log(float64(K)))
	for n := range N {
		for k := range K {
			t.Index[n*K+k] = int32(k)
			t.LogP[n*K+k] = dummy
		}
	}
	for r, s := range seqs {
		if keep != nil && !keep[r] {
			continue
		}
		for i := range s.Len() {
			n := r*T + s.Start - 1 + i
			copy(t.Index[n*K:(n+1)*K], s.Index[i*K:(i+1)*K])
			copy(t.LogP[n*K:(n+1)*K], s.LogP[i*K:(i+1)*K])
			if h.Reference {
				copy(t.RefLogP[n*K:(n+1)*K], s.RefLogP[i*K:(i+1)*K])
			}
			t.Rest[n] = s.Rest[i]
			t.Weight[n] = 1
		}
	}
	return t
}

// onPolicy is a gkd step on the student's own samples: it samples a
// response to each row's prompt, runs the teacher live on them, and
// returns the divergence there.
func (o *Objective) onPolicy(m model.Model, seqs []*Seq, key uint64) (*tensor.Tensor, error) {
	g := o.Config.GKD
	prompts := make([][]int32, len(seqs))
	pids := make([]uint64, len(seqs))
	for i, s := range seqs {
		prompts[i] = s.IDs[:s.Start]
		pids[i] = uint64(i)
	}
	var ro rl.Rollout
	var err error
	tensor.NoGrad(func() {
		ro, err = rl.Generate(m, o.Tokenizer, prompts, pids, int(key>>1), 1, g.MaxNewTokens,
			rl.SamplingConfig{Temperature: g.SampleTemperature, Seed: g.Seed}, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("distill: gkd: %w", err)
	}
	var sampled []Seq
	for i, c := range ro.Completions {
		if len(c) == 0 {
			continue
		}
		ids := append(append([]int32{}, prompts[i]...), c...)
		sampled = append(sampled, Seq{IDs: ids, Start: len(prompts[i]), Role: RoleStudent})
	}
	if len(sampled) == 0 {
		return nil, errors.New("distill: gkd: the student sampled only empty responses")
	}
	tl, err := hostLogits(o.Teacher, sampled)
	if err != nil {
		return nil, fmt.Errorf("distill: gkd: teacher: %w", err)
	}
	h := o.Data.Cache.Header
	for i := range sampled {
		fillSignals(&sampled[i], tl[i], nil, h.Vocab, h.K, h.Temperature)
	}
	T := 0
	for _, s := range sampled {
		T = max(T, len(s.IDs))
	}
	ids := make([]int32, len(sampled)*T)
	ptrs := make([]*Seq, len(sampled))
	for i := range sampled {
		copy(ids[i*T:], sampled[i].IDs)
		ptrs[i] = &sampled[i]
	}
	plain := &Objective{Config: o.Config, Data: &Data{Cache: &Cache{Header: Header{K: h.K, Vocab: h.Vocab}}}}
	var loss *tensor.Tensor
	err = tensor.Catch(func() {
		be := m.Params()[0].Tensor.Backend()
		x := tensor.From(be, tensor.Int32, ids, len(sampled), T)
		logits := m.Forward(x, model.ForwardOptions{})
		loss = must(KDLoss(o.Config.KD, logits.Reshape(len(sampled)*T, logits.Dim(2)), plain.targets(ptrs, T, nil)))
	})
	return loss, err
}
