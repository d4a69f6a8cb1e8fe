package train

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

func mustWSD(t *testing.T, c WSDConfig) *WSD {
	t.Helper()
	w, err := NewWSD(c)
	if err != nil {
		t.Fatalf("NewWSD(%+v): %v", c, err)
	}
	return w
}

// TestWSDSanityNumbers checks METHODS §6's sanity numbers: η = 0.01 and a
// 5000-step half-life give 0.005 after 5000 decay steps, 0.0025 after
// 10000 and 0.001 after about 16610.
func TestWSDSanityNumbers(t *testing.T) {
	w := mustWSD(t, WSDConfig{PeakLR: 0.01, WarmupSteps: 2000, TotalSteps: 200000, HalfLife: 5000})
	if w.DecayStart() != 180000 || w.DecaySteps() != 20000 {
		t.Fatalf("default DecayFrac: DecayStart %d, DecaySteps %d, want 180000, 20000", w.DecayStart(), w.DecaySteps())
	}
	T := w.DecayStart()
	for _, c := range []struct {
		k    int
		want float64
	}{{0, 0.01}, {5000, 0.005}, {10000, 0.0025}, {15000, 0.00125}, {20000, 0.000625}} {
		if got := w.LR(T + c.k); relErr(got, c.want) > 1e-12 {
			t.Errorf("LR after %d decay steps = %.15g, want %g", c.k, got, c.want)
		}
	}
	// lr = 0.001 exactly at k = 5000·log2(10) ≈ 16609.64, which the spec
	// rounds to 16610: the lr crosses 0.001 between decay steps 16609 and
	// 16610 and is within 1e-4 of it at 16610 (exactly 2^(-0.36/5000) off).
	cross := 5000 * math.Log2(10)
	if math.Round(cross) != 16610 {
		t.Fatalf("crossing at %v decay steps, spec says about 16610", cross)
	}
	before, at := w.LR(T+16609), w.LR(T+16610)
	if !(before > 0.001 && at < 0.001) {
		t.Errorf("lr should cross 0.001 between decay steps 16609 and 16610: %.12g, %.12g", before, at)
	}
	if relErr(at, 0.001) > 1e-4 {
		t.Errorf("LR after 16610 decay steps = %.12g, want about 0.001", at)
	}
	if want := 0.01 * math.Pow(0.5, 16610.0/5000); relErr(at, want) > 1e-12 {
		t.Errorf("LR after 16610 decay steps = %.15g, want 0.01·0.5^(16610/5000) = %.15g", at, want)
	}
}

// scheduleCase is one schedule of every kind and shape, with what the
// tests need to know about its phases.
type scheduleCase struct {
	name                     string
	s                        Schedule
	peak, min                float64
	warmup, stableEnd, total int
	shape                    DecayShape // "" for constant
	halfLife                 float64
}

func allSchedules(t *testing.T) []scheduleCase {
	t.Helper()
	const peak, W, S = 3e-4, 100, 2000
	var cs []scheduleCase
	c, err := NewConstant(peak, W)
	if err != nil {
		t.Fatal(err)
	}
	cs = append(cs, scheduleCase{name: "constant", s: c, peak: peak, warmup: W, stableEnd: S, total: S})
	for _, minLR := range []float64{0, peak / 10} {
		l, err := NewLinear(peak, minLR, W, S)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, scheduleCase{name: "linear", s: l, peak: peak, min: minLR, warmup: W, stableEnd: W, total: S, shape: DecayLinear})
		co, err := NewCosine(peak, minLR, W, S)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, scheduleCase{name: "cosine", s: co, peak: peak, min: minLR, warmup: W, stableEnd: W, total: S, shape: DecayCosine})
		for _, sh := range []DecayShape{DecayExp, DecayLinear, DecayOneMinusSqrt, DecayCosine} {
			cfg := WSDConfig{PeakLR: peak, MinLR: minLR, WarmupSteps: W, TotalSteps: S, DecayFrac: 0.2, DecayShape: sh}
			if sh == DecayExp {
				cfg.HalfLife = 50 // short, so that the floor is reached
			}
			w := mustWSD(t, cfg)
			cs = append(cs, scheduleCase{name: "wsd-" + string(sh), s: w, peak: peak, min: minLR, warmup: W,
				stableEnd: w.DecayStart(), total: S, shape: sh, halfLife: cfg.HalfLife})
		}
	}
	for i := range cs {
		if cs[i].min > 0 {
			cs[i].name += "-minlr"
		}
	}
	return cs
}

func TestWarmupIsLinearFromZero(t *testing.T) {
	for _, c := range allSchedules(t) {
		W := float64(c.warmup)
		if got := c.s.LR(0); got != 0 {
			t.Errorf("%s: LR(0) = %g, want 0 before any update", c.name, got)
		}
		if got, want := c.s.LR(1), c.peak/W; relErr(got, want) > 1e-15 {
			t.Errorf("%s: first update LR(1) = %g, want peak/W = %g", c.name, got, want)
		}
		if got, want := c.s.LR(c.warmup-1), c.peak*(W-1)/W; relErr(got, want) > 1e-15 {
			t.Errorf("%s: LR(W-1) = %g, want %g", c.name, got, want)
		}
		if got := c.s.LR(c.warmup); got != c.peak {
			t.Errorf("%s: LR(W) = %g, want the peak %g", c.name, got, c.peak)
		}
		for s := 1; s < c.warmup; s++ {
			if got, want := c.s.LR(s), c.peak*float64(s)/W; relErr(got, want) > 1e-15 {
				t.Fatalf("%s: warmup LR(%d) = %g, want %g", c.name, s, got, want)
			}
		}
	}
	// Without warmup, schedules with a stable phase run the first update
	// at the peak; linear and cosine decay from it, so their first update
	// is already the first of the decay's S steps.
	c, _ := NewConstant(0.1, 0)
	w := mustWSD(t, WSDConfig{PeakLR: 0.1, TotalSteps: 100, DecayShape: DecayLinear})
	co, _ := NewCosine(0.1, 0, 0, 100)
	li, _ := NewLinear(0.1, 0, 0, 100)
	for _, c := range []struct {
		name string
		s    Schedule
		want float64
	}{
		{"constant", c, 0.1},
		{"wsd", w, 0.1},
		{"cosine", co, 0.1 * (1 + math.Cos(math.Pi/100)) / 2},
		{"linear", li, 0.1 * 0.99},
	} {
		if got := c.s.LR(1); relErr(got, c.want) > 1e-15 {
			t.Errorf("%s without warmup: LR(1) = %.17g, want %.17g", c.name, got, c.want)
		}
		if got := c.s.LR(0); got != 0.1 {
			t.Errorf("%s without warmup: LR(0) = %g, want the peak", c.name, got)
		}
	}
}

func TestStablePhaseIsConstant(t *testing.T) {
	for _, c := range allSchedules(t) {
		for s := c.warmup; s <= c.stableEnd; s++ {
			if got := c.s.LR(s); got != c.peak {
				t.Fatalf("%s: LR(%d) = %g in the stable phase, want %g", c.name, s, got, c.peak)
			}
		}
		if c.shape != "" && c.s.LR(c.stableEnd+1) >= c.peak {
			t.Errorf("%s: decay should begin at update %d, LR = %g", c.name, c.stableEnd+1, c.s.LR(c.stableEnd+1))
		}
	}
	// A constant schedule has no end to decay at.
	c, _ := NewConstant(0.5, 10)
	if got := c.LR(1 << 40); got != 0.5 {
		t.Errorf("constant LR far out = %g, want 0.5", got)
	}
}

func TestDecayEndpointsAndMonotonicity(t *testing.T) {
	for _, c := range allSchedules(t) {
		if c.shape == "" {
			continue
		}
		T, S, D := c.stableEnd, c.total, float64(c.total-c.stableEnd)
		if got := c.s.LR(T); got != c.peak {
			t.Errorf("%s: LR at decay start %d = %g, want the peak %g", c.name, T, got, c.peak)
		}
		end := c.min
		if c.shape == DecayExp {
			end = max(c.min, c.peak*math.Exp2(-D/c.halfLife))
		}
		if got := c.s.LR(S); relErr(got, end) > 1e-12 {
			t.Errorf("%s: last update LR(%d) = %g, want %g", c.name, S, got, end)
		}
		for s := T; s < S; s++ {
			if c.s.LR(s+1) > c.s.LR(s) {
				t.Fatalf("%s: lr rises in the decay, LR(%d) = %g < LR(%d) = %g", c.name, s, c.s.LR(s), s+1, c.s.LR(s+1))
			}
		}
		// One interior point per shape, at a fraction of the decay where
		// g is simple.
		var k int
		var g float64
		switch c.shape {
		case DecayLinear, DecayCosine:
			k, g = int(D/2), 0.5
		case DecayOneMinusSqrt:
			k, g = int(D/4), 0.5
		case DecayExp:
			k, g = int(c.halfLife), 0.5
		}
		want := c.min + (c.peak-c.min)*g
		if c.shape == DecayExp {
			want = max(c.min, c.peak*g)
		}
		if got := c.s.LR(T + k); relErr(got, want) > 1e-12 {
			t.Errorf("%s: LR after %d of %v decay steps = %.15g, want %.15g", c.name, k, D, got, want)
		}
	}
}

func TestCosineAndLinearStandalone(t *testing.T) {
	const peak, minLR = 6e-4, 6e-5
	co, err := NewCosine(peak, minLR, 10, 110)
	if err != nil {
		t.Fatal(err)
	}
	li, err := NewLinear(peak, minLR, 10, 110)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		s    Schedule
		step int
		want float64
	}{
		{"cosine start", co, 10, peak},
		{"cosine quarter", co, 35, minLR + (peak-minLR)*(1+math.Sqrt2/2)/2},
		{"cosine midpoint", co, 60, (peak + minLR) / 2},
		{"cosine end", co, 110, minLR},
		{"linear start", li, 10, peak},
		{"linear quarter", li, 35, minLR + (peak-minLR)*0.75},
		{"linear midpoint", li, 60, (peak + minLR) / 2},
		{"linear end", li, 110, minLR},
	}
	for _, c := range cases {
		if got := c.s.LR(c.step); relErr(got, c.want) > 1e-12 {
			t.Errorf("%s: LR(%d) = %.15g, want %.15g", c.name, c.step, got, c.want)
		}
	}
}

func TestMinLRFloorHolds(t *testing.T) {
	for _, c := range allSchedules(t) {
		if c.min == 0 {
			continue
		}
		// The floor bounds everything after warmup; the warmup itself
		// rises from 0 as METHODS §6 prints it.
		for s := c.warmup; s <= c.total+10; s++ {
			if got := c.s.LR(s); got < c.min {
				t.Fatalf("%s: LR(%d) = %g below MinLR %g", c.name, s, got, c.min)
			}
		}
		if got := c.s.LR(c.total); got != c.min {
			t.Errorf("%s: LR(%d) = %.17g, want the floor %g exactly", c.name, c.total, got, c.min)
		}
	}
}

// TestNoJumps checks that the lr changes between consecutive updates by at
// most the largest per-step change its formulas allow, so that no phase
// boundary (warmup to stable, stable to decay, decay to floor, end of
// training) introduces a jump.
func TestNoJumps(t *testing.T) {
	for _, c := range allSchedules(t) {
		bound := c.peak / float64(c.warmup)
		D := float64(c.total - c.stableEnd)
		span := c.peak - c.min
		switch c.shape {
		case DecayLinear:
			bound = max(bound, span/D)
		case DecayCosine:
			bound = max(bound, span*math.Pi/2/D) // max slope of (1+cos πp)/2 is π/2
		case DecayOneMinusSqrt:
			bound = max(bound, span/math.Sqrt(D)) // steepest on the first step
		case DecayExp:
			bound = max(bound, c.peak*(1-math.Exp2(-1/c.halfLife)))
		}
		for s := -2; s < c.total+3; s++ {
			if d := math.Abs(c.s.LR(s+1) - c.s.LR(s)); d > bound*(1+1e-9) {
				t.Fatalf("%s: LR(%d) = %g to LR(%d) = %g jumps %g, more than one step's %g",
					c.name, s, c.s.LR(s), s+1, c.s.LR(s+1), d, bound)
			}
		}
	}
}

func TestStepsOutsideTheRunAreClamped(t *testing.T) {
	for _, c := range allSchedules(t) {
		if got := c.s.LR(-7); got != c.s.LR(0) {
			t.Errorf("%s: LR(-7) = %g, want LR(0) = %g", c.name, got, c.s.LR(0))
		}
		if got := c.s.LR(c.total + 1000); got != c.s.LR(c.total) {
			t.Errorf("%s: LR past the end = %g, want the final %g", c.name, got, c.s.LR(c.total))
		}
	}
}

// TestWSDExtendsFromStablePhase checks the property that lets a WSD run be
// extended, or branched, from a stable-phase checkpoint: a longer run's
// learning rates equal the shorter one's up to the shorter one's decay
// start, bit for bit.
func TestWSDExtendsFromStablePhase(t *testing.T) {
	for _, sh := range []DecayShape{DecayExp, DecayLinear, DecayOneMinusSqrt, DecayCosine} {
		base := WSDConfig{PeakLR: 0.01, MinLR: 1e-4, WarmupSteps: 50, TotalSteps: 1000, DecayShape: sh}
		if sh == DecayExp {
			base.HalfLife = 30
		}
		short := mustWSD(t, base)
		prevStart := short.DecayStart()
		for _, total := range []int{1001, 1004, 1005, 1100, 5000, 100000} {
			cfg := base
			cfg.TotalSteps = total
			long := mustWSD(t, cfg)
			if long.DecayStart() < prevStart {
				t.Errorf("%s: DecayStart fell from %d to %d when TotalSteps grew to %d", sh, prevStart, long.DecayStart(), total)
			}
			prevStart = long.DecayStart()
			for s := 0; s <= short.DecayStart(); s++ {
				if a, b := short.LR(s), long.LR(s); a != b {
					t.Fatalf("%s: TotalSteps 1000 and %d differ at stable-phase update %d: %g vs %g", sh, total, s, a, b)
				}
			}
			// After the old decay start the runs should part, once the
			// longer one's stable phase outlasts it.
			if long.DecayStart() > short.DecayStart() && long.LR(short.DecayStart()+1) == short.LR(short.DecayStart()+1) {
				t.Errorf("%s: TotalSteps %d should still be stable at update %d", sh, total, short.DecayStart()+1)
			}
		}
	}
}

func TestScheduleConfigBuildMatchesConstructors(t *testing.T) {
	const total = 500
	constant, _ := NewConstant(1e-3, 20)
	linear, _ := NewLinear(1e-3, 1e-5, 20, total)
	cosine, _ := NewCosine(1e-3, 1e-4, 20, total)
	wsd := mustWSD(t, WSDConfig{PeakLR: 1e-3, MinLR: 1e-5, WarmupSteps: 20, TotalSteps: total, DecayFrac: 0.25, DecayShape: DecayOneMinusSqrt})
	wsdExp := mustWSD(t, WSDConfig{PeakLR: 1e-3, WarmupSteps: 20, TotalSteps: total, HalfLife: 40})
	cases := []struct {
		json string
		want Schedule
	}{
		{`{"kind":"constant","peak_lr":1e-3,"warmup_steps":20}`, constant},
		{`{"kind":"linear","peak_lr":1e-3,"min_lr":1e-5,"warmup_steps":20}`, linear},
		{`{"kind":"cosine","peak_lr":1e-3,"min_lr":1e-4,"warmup_steps":20}`, cosine},
		{`{"kind":"wsd","peak_lr":1e-3,"min_lr":1e-5,"warmup_steps":20,"decay_frac":0.25,"decay_shape":"1-sqrt"}`, wsd},
		// DecayFrac and DecayShape left out: 0.1 and exp.
		{`{"kind":"wsd","peak_lr":1e-3,"warmup_steps":20,"half_life":40}`, wsdExp},
	}
	for _, c := range cases {
		var cfg ScheduleConfig
		if err := json.Unmarshal([]byte(c.json), &cfg); err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		got, err := cfg.Build(total)
		if err != nil {
			t.Fatalf("%s: Build: %v", c.json, err)
		}
		for s := 0; s <= total+1; s++ {
			if got.LR(s) != c.want.LR(s) {
				t.Fatalf("%s: LR(%d) = %g, constructor gives %g", c.json, s, got.LR(s), c.want.LR(s))
			}
		}
	}
	if wsdExp.DecayStart() != 450 {
		t.Errorf("default DecayFrac over 500 steps: DecayStart %d, want 450", wsdExp.DecayStart())
	}
}

func TestScheduleConfigErrors(t *testing.T) {
	nan := math.NaN()
	wsd := func(f func(*ScheduleConfig)) ScheduleConfig {
		c := ScheduleConfig{Kind: KindWSD, PeakLR: 0.01, WarmupSteps: 10, DecayShape: DecayLinear}
		f(&c)
		return c
	}
	cases := []struct {
		name  string
		cfg   ScheduleConfig
		total int
		field string // "" means the config is valid
	}{
		{"valid wsd", wsd(func(*ScheduleConfig) {}), 100, ""},
		{"valid decay over all of training", wsd(func(c *ScheduleConfig) { c.DecayFrac, c.WarmupSteps = 1, 0 }), 100, ""},
		{"valid MinLR equal to peak", wsd(func(c *ScheduleConfig) { c.MinLR = 0.01 }), 100, ""},
		{"valid warmup for the whole run", ScheduleConfig{Kind: KindConstant, PeakLR: 1, WarmupSteps: 100}, 100, ""},
		{"valid one-step decay", ScheduleConfig{Kind: KindCosine, PeakLR: 1, WarmupSteps: 99}, 100, ""},
		{"valid tiny wsd", wsd(func(c *ScheduleConfig) { c.WarmupSteps = 0 }), 1, ""},

		{"empty kind", ScheduleConfig{PeakLR: 1}, 100, "Kind"},
		{"unknown kind", ScheduleConfig{Kind: "step", PeakLR: 1}, 100, "Kind"},
		{"kind is case-sensitive", ScheduleConfig{Kind: "WSD", PeakLR: 1}, 100, "Kind"},

		{"zero peak", ScheduleConfig{Kind: KindConstant}, 100, "PeakLR"},
		{"negative peak", ScheduleConfig{Kind: KindCosine, PeakLR: -1}, 100, "PeakLR"},
		{"NaN peak", wsd(func(c *ScheduleConfig) { c.PeakLR = nan }), 100, "PeakLR"},
		{"infinite peak", ScheduleConfig{Kind: KindLinear, PeakLR: math.Inf(1)}, 100, "PeakLR"},

		{"negative MinLR", ScheduleConfig{Kind: KindCosine, PeakLR: 1, MinLR: -0.1}, 100, "MinLR"},
		{"NaN MinLR", ScheduleConfig{Kind: KindLinear, PeakLR: 1, MinLR: nan}, 100, "MinLR"},
		{"MinLR above peak", wsd(func(c *ScheduleConfig) { c.MinLR = 0.02 }), 100, "MinLR"},
		{"MinLR on constant", ScheduleConfig{Kind: KindConstant, PeakLR: 1, MinLR: 0.1}, 100, "MinLR"},

		{"negative warmup constant", ScheduleConfig{Kind: KindConstant, PeakLR: 1, WarmupSteps: -1}, 100, "WarmupSteps"},
		{"negative warmup cosine", ScheduleConfig{Kind: KindCosine, PeakLR: 1, WarmupSteps: -1}, 100, "WarmupSteps"},
		{"negative warmup wsd", wsd(func(c *ScheduleConfig) { c.WarmupSteps = -5 }), 100, "WarmupSteps"},
		{"warmup past the run", ScheduleConfig{Kind: KindConstant, PeakLR: 1, WarmupSteps: 101}, 100, "WarmupSteps"},
		{"warmup leaves no decay", ScheduleConfig{Kind: KindLinear, PeakLR: 1, WarmupSteps: 100}, 100, "WarmupSteps"},
		{"warmup overlaps wsd decay", wsd(func(c *ScheduleConfig) { c.WarmupSteps = 91 }), 100, "WarmupSteps"},

		{"zero total", ScheduleConfig{Kind: KindCosine, PeakLR: 1}, 0, "TotalSteps"},
		{"negative total", wsd(func(c *ScheduleConfig) { c.WarmupSteps = 0 }), -3, "TotalSteps"},
		{"zero total constant", ScheduleConfig{Kind: KindConstant, PeakLR: 1}, 0, "TotalSteps"},

		{"negative DecayFrac", wsd(func(c *ScheduleConfig) { c.DecayFrac = -0.1 }), 100, "DecayFrac"},
		{"DecayFrac above 1", wsd(func(c *ScheduleConfig) { c.DecayFrac = 1.5 }), 100, "DecayFrac"},
		{"NaN DecayFrac", wsd(func(c *ScheduleConfig) { c.DecayFrac = nan }), 100, "DecayFrac"},
		{"DecayFrac on cosine", ScheduleConfig{Kind: KindCosine, PeakLR: 1, DecayFrac: 0.1}, 100, "DecayFrac"},

		{"unknown DecayShape", wsd(func(c *ScheduleConfig) { c.DecayShape = "step" }), 100, "DecayShape"},
		{"DecayShape on linear", ScheduleConfig{Kind: KindLinear, PeakLR: 1, DecayShape: DecayCosine}, 100, "DecayShape"},

		{"exp without HalfLife", wsd(func(c *ScheduleConfig) { c.DecayShape = DecayExp }), 100, "HalfLife"},
		{"default shape without HalfLife", wsd(func(c *ScheduleConfig) { c.DecayShape = "" }), 100, "HalfLife"},
		{"negative HalfLife", wsd(func(c *ScheduleConfig) { c.DecayShape, c.HalfLife = DecayExp, -5000 }), 100, "HalfLife"},
		{"NaN HalfLife", wsd(func(c *ScheduleConfig) { c.DecayShape, c.HalfLife = DecayExp, nan }), 100, "HalfLife"},
		{"HalfLife with linear shape", wsd(func(c *ScheduleConfig) { c.HalfLife = 5000 }), 100, "HalfLife"},
		{"HalfLife on constant", ScheduleConfig{Kind: KindConstant, PeakLR: 1, HalfLife: 10}, 100, "HalfLife"},
	}
	for _, c := range cases {
		s, err := c.cfg.Build(c.total)
		if c.field == "" {
			if err != nil || s == nil {
				t.Errorf("%s: Build(%d) = %v, %v; want a schedule", c.name, c.total, s, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Build(%d) succeeded, want an error naming %s", c.name, c.total, c.field)
			continue
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %q does not name %s", c.name, err, c.field)
		}
	}
}

func TestConstructorErrors(t *testing.T) {
	cases := []struct {
		name  string
		build func() error
		field string
	}{
		{"constant zero peak", func() error { _, err := NewConstant(0, 0); return err }, "PeakLR"},
		{"constant negative warmup", func() error { _, err := NewConstant(1, -1); return err }, "WarmupSteps"},
		{"linear MinLR above peak", func() error { _, err := NewLinear(0.1, 0.2, 0, 10); return err }, "MinLR"},
		{"cosine zero total", func() error { _, err := NewCosine(0.1, 0, 0, 0); return err }, "TotalSteps"},
		{"wsd zero HalfLife", func() error {
			_, err := NewWSD(WSDConfig{PeakLR: 0.01, TotalSteps: 100, DecayShape: DecayExp})
			return err
		}, "HalfLife"},
	}
	for _, c := range cases {
		err := c.build()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.field)
		}
	}
}
