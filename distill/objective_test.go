package distill

import (
	"math"
	"testing"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// objectiveLoss builds the objective cfg over a cache of testSeqs(4)
// computed from teacher (and ref), and returns its loss on student for the
// first batch of two items.
func objectiveLoss(t *testing.T, cfg Config, student, teacher, ref model.Model) float64 {
	t.Helper()
	c, err := BuildCache(teacher, ref, testVocabulary(), testSeqs(4), DefaultCacheConfig())
	if err != nil {
		t.Fatal(err)
	}
	d := NewData(c)
	items, err := Items(c, cfg.Roles())
	if err != nil {
		t.Fatal(err)
	}
	src, err := d.Batches(items, tensor.Default(), 2, 1, false, cfg.GKD.Lambda)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := NewObjective(cfg, d, teacher, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.Next()
	if err != nil {
		t.Fatal(err)
	}
	loss, err := obj.Loss(student, b)
	if err != nil {
		t.Fatal(err)
	}
	return loss.Item()
}

// chosenCEOf returns the student's token-mean cross-entropy on the chosen
// responses of the first two examples, computed by the model's own Loss.
func chosenCEOf(t *testing.T, m model.Model) float64 {
	seqs := testSeqs(2)
	var rows []Seq
	for _, s := range seqs {
		if s.Role == RoleChosen {
			rows = append(rows, s)
		}
	}
	T := max(len(rows[0].IDs), len(rows[1].IDs))
	ids := make([]int32, 2*T)
	tg := make([]int32, 2*T)
	for i, s := range rows {
		copy(ids[i*T:], s.IDs)
		for p := range T {
			tg[i*T+p] = train.IgnoreIndex
			if p >= s.Start-1 && p+1 < len(s.IDs) {
				tg[i*T+p] = s.IDs[p+1]
			}
		}
	}
	be := tensor.Default()
	return m.Loss(tensor.From(be, tensor.Int32, ids, 2, T), tensor.From(be, tensor.Int32, tg, 2, T)).Item()
}

// TestObjectives checks each objective against what it must equal: a
// divergence of 0 when the teacher is the student (K = V), the chosen
// cross-entropy alone when the KD or ADPA weight is 0 or the advantage is
// 0 (reference = DPO teacher), and a positive divergence or a nonzero
// advantage loss otherwise.
func TestObjectives(t *testing.T) {
	student, other, ref := tinyModel(t, 1), tinyModel(t, 5), tinyModel(t, 6)
	ce := chosenCEOf(t, student)
	with := func(obj string, f func(c *Config)) Config {
		c := DefaultConfig(obj)
		if f != nil {
			f(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name             string
		cfg              Config
		teacher, ref     model.Model
		want             float64 // NaN: only check the sign
		positive, nonzer bool
	}{
		{"kd self is 0", with(ObjectiveKD, func(c *Config) { c.KD.Divergence = ForwardKL }), student, nil, 0, false, false},
		{"kd jsd self is 0", with(ObjectiveKD, nil), student, nil, 0, false, false},
		{"kd other teacher", with(ObjectiveKD, func(c *Config) { c.KD.Divergence = ReverseKL }), other, nil, math.NaN(), true, false},
		{"gkd off-policy self is 0", with(ObjectiveGKD, func(c *Config) { c.GKD.Lambda = 0 }), student, nil, 0, false, false},
		{"dckd self is the chosen CE", with(ObjectiveDCKD, nil), student, nil, ce, false, false},
		{"dckd without kd is the chosen CE", with(ObjectiveDCKD, func(c *Config) { c.Weights.KD = 0 }), other, nil, ce, false, false},
		{"dckd kd only", with(ObjectiveDCKD, func(c *Config) { c.Weights.SFT = 0 }), other, nil, math.NaN(), true, false},
		{"adpa zero advantage is the chosen CE", with(ObjectiveADPA, nil), other, other, ce, false, false},
		{"adpa without adpa is the chosen CE", with(ObjectiveADPA, func(c *Config) { c.Weights.ADPA = 0 }), other, ref, ce, false, false},
		{"adpa only", with(ObjectiveADPA, func(c *Config) { c.Weights.SFT = 0 }), other, ref, math.NaN(), false, true},
	} {
		got := objectiveLoss(t, tc.cfg, student, tc.teacher, tc.ref)
		switch {
		case !math.IsNaN(tc.want):
			if math.Abs(got-tc.want) > 1e-5 {
				t.Errorf("%s: loss %v, want %v", tc.name, got, tc.want)
			}
		case tc.positive && !(got > 1e-4):
			t.Errorf("%s: loss %v, want positive", tc.name, got)
		case tc.nonzer && !(math.Abs(got) > 1e-6):
			t.Errorf("%s: loss %v, want nonzero", tc.name, got)
		}
	}
}

// TestGKDOnPolicy checks that λ picks on-policy batches at about its rate,
// the same ones after a Seek, and that an on-policy step gives a positive
// divergence from another teacher, which the student's gradient lowers.
func TestGKDOnPolicy(t *testing.T) {
	c, err := BuildCache(tinyModel(t, 5), nil, testVocabulary(), testSeqs(4), DefaultCacheConfig())
	if err != nil {
		t.Fatal(err)
	}
	d := NewData(c)
	items, _ := Items(c, []Role{RoleData})
	src, _ := d.Batches(items, tensor.Default(), 1, 3, true, 0.5)
	var flags []bool
	var cur []byte
	for i := range 200 {
		if i == 100 {
			cur, _ = src.Cursor()
		}
		b, _ := src.Next()
		p, _ := d.take(b.IDs)
		flags = append(flags, p.onPolicy)
	}
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	if n < 70 || n > 130 {
		t.Errorf("%d of 200 batches on-policy at λ 0.5", n)
	}
	if err := src.Seek(cur); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 200; i++ {
		b, _ := src.Next()
		if p, _ := d.take(b.IDs); p.onPolicy != flags[i] {
			t.Fatalf("batch %d: on-policy %v after Seek, %v before", i, p.onPolicy, flags[i])
		}
	}

	cfg := DefaultConfig(ObjectiveGKD)
	cfg.GKD.Lambda, cfg.GKD.MaxNewTokens = 1, 6
	student := tinyModel(t, 1)
	obj, err := NewObjective(cfg, d, tinyModel(t, 5), nil)
	if err != nil {
		t.Fatal(err)
	}
	on, _ := d.Batches(items, tensor.Default(), 2, 3, true, 1)
	b, _ := on.Next()
	loss, err := obj.Loss(student, b)
	if err != nil {
		t.Fatal(err)
	}
	if !(loss.Item() > 1e-4) {
		t.Errorf("on-policy JSD from another teacher %v, want positive", loss.Item())
	}
	loss.Backward()
	if g := student.Params()[0].Tensor.Grad(); g == nil {
		t.Error("no gradient reached the student")
	}
	if _, err := obj.Loss(student, train.Batch{IDs: b.IDs, Targets: b.Targets}); err == nil {
		t.Error("a batch served twice: no error")
	}
}

// TestObjectiveErrors checks the configuration errors NewObjective names.
func TestObjectiveErrors(t *testing.T) {
	noRef, _ := BuildCache(tinyModel(t, 1), nil, testVocabulary(), testSeqs(1), DefaultCacheConfig())
	d := NewData(noRef)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"adpa without reference", DefaultConfig(ObjectiveADPA)},
		{"gkd without teacher", DefaultConfig(ObjectiveGKD)},
		{"unknown objective", DefaultConfig("ppo")},
		{"temperature differs from cache", func() Config { c := DefaultConfig(ObjectiveKD); c.KD.Temperature = 2; return c }()},
		{"negative weight", func() Config { c := DefaultConfig(ObjectiveDCKD); c.Weights.Rejected = -1; return c }()},
		{"lambda above 1", func() Config { c := DefaultConfig(ObjectiveGKD); c.GKD.Lambda = 2; return c }()},
	} {
		if _, err := NewObjective(tc.cfg, d, nil, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := Items(noRef, []Role{RoleChosen, RoleStudent}); err != nil {
		t.Errorf("items of a cache with chosen and student responses: %v", err)
	}
	only := &Cache{Header: noRef.Header, Seqs: noRef.Seqs[:1]}
	if _, err := Items(only, []Role{RoleChosen, RoleRejected}); err == nil {
		t.Error("items of a cache without rejected responses: no error")
	}
}
