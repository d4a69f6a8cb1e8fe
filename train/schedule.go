package train

import (
	"fmt"
	"math"
)

// Schedule gives the learning rate of each optimizer update.
//
// Steps are 1-based: LR(1) is the learning rate of the first update and
// LR(total) that of the last. This is the count AdamW keeps for bias
// correction, so a loop asks for
//
//	lr := sched.LR(opt.StepCount() + 1)
//	err := opt.Step(lr, gradScale)
//
// Counting from 1 lets METHODS §6's formulas be used as printed: the
// warmup lr(s) = (s/W)·η gives the first update η/W rather than 0 (a zero
// learning rate would waste the update, weight decay included, since AdamW
// scales decay by lr too) and update W reaches η exactly; and the decay
// f(s-T) counts decay steps from 1, so "5000 decay steps" is s = T+5000.
// Both ramps are therefore sampled at the end of each step's interval, and
// the shapes that have an end point reach it on the last update.
//
// LR(0) is the value before any update (0 under warmup) and is never used
// by such a loop; a negative step is read as 0, and a step past the total
// as the total, so an overshooting loop keeps the final value instead of
// running a cosine back up or a linear decay below zero.
type Schedule interface {
	// LR returns the learning rate of update number step (1-based).
	LR(step int) float64
}

// DecayShape names the curve of a Warmup-Stable-Decay schedule's decay.
type DecayShape string

// DecayExp, DecayLinear, DecayOneMinusSqrt and DecayCosine are the decay
// shapes of METHODS §6. With k the decay step (1-based) and p = k/D the
// fraction of the D decay steps done, the lr is MinLR + (PeakLR-MinLR)·g(p)
// with g = 1-p (linear), 1-√p (1-sqrt, Hägele et al. 2024) or (1+cos πp)/2
// (cosine), so each lands on MinLR on the last update (with MinLR 0 that
// one update is spent at lr 0, the price of a well-defined end point); exp
// is MiniCPM's PeakLR·0.5^(k/HalfLife), which has no end point and is cut
// off at MinLR instead.
const (
	DecayExp          DecayShape = "exp"
	DecayLinear       DecayShape = "linear"
	DecayOneMinusSqrt DecayShape = "1-sqrt"
	DecayCosine       DecayShape = "cosine"
)

// KindConstant, KindLinear, KindCosine and KindWSD are the values of
// ScheduleConfig.Kind.
const (
	KindConstant = "constant"
	KindLinear   = "linear"
	KindCosine   = "cosine"
	KindWSD      = "wsd"
)

// DefaultDecayFrac is the share of training a WSD schedule spends
// decaying when DecayFrac is left 0: MiniCPM found about 10% enough to
// reach the best loss and 2.5% too little (METHODS §6).
const DefaultDecayFrac = 0.1

// phased is every schedule here: a linear warmup from 0 over the first
// warmup updates, the peak up to and including update decayStart, then
// decaySteps updates of decay that end on update total. Constant is the
// case with no decay.
type phased struct {
	peak, min  float64
	warmup     int
	decayStart int
	decaySteps int
	total      int // 0 means unbounded: nothing to clamp to.
	shape      DecayShape
	halfLife   float64
}

func (p *phased) LR(step int) float64 {
	s := max(step, 0)
	if p.total > 0 {
		s = min(s, p.total)
	}
	if s < p.warmup {
		return p.peak * float64(s) / float64(p.warmup)
	}
	if p.decaySteps == 0 || s <= p.decayStart {
		return p.peak
	}
	k := float64(s - p.decayStart)
	if p.shape == DecayExp {
		// Exp2 rather than Pow(0.5, ·) so that whole half-lives are exact.
		return max(p.min, p.peak*math.Exp2(-k/p.halfLife))
	}
	frac := k / float64(p.decaySteps)
	var g float64
	switch p.shape {
	case DecayLinear:
		g = 1 - frac
	case DecayOneMinusSqrt:
		g = 1 - math.Sqrt(frac)
	case DecayCosine:
		g = 0.5 * (1 + math.Cos(math.Pi*frac))
	}
	return p.min + (p.peak-p.min)*g
}

// checkLRs validates a peak and a floor; the floor may equal the peak (a
// degenerate but harmless constant decay) but not exceed it, and NaN fails
// every comparison so it is rejected too.
func checkLRs(kind string, peak, minLR float64) error {
	if !(peak > 0) || math.IsInf(peak, 0) {
		return fmt.Errorf("schedule %s: PeakLR %v must be positive and finite", kind, peak)
	}
	if !(minLR >= 0) {
		return fmt.Errorf("schedule %s: MinLR %v must be non-negative", kind, minLR)
	}
	if minLR > peak {
		return fmt.Errorf("schedule %s: MinLR %v is above PeakLR %v", kind, minLR, peak)
	}
	return nil
}

func checkSteps(kind string, warmup, total int) error {
	if warmup < 0 {
		return fmt.Errorf("schedule %s: WarmupSteps %d is negative", kind, warmup)
	}
	if total < 1 {
		return fmt.Errorf("schedule %s: TotalSteps %d must be at least 1", kind, total)
	}
	if warmup > total {
		return fmt.Errorf("schedule %s: WarmupSteps %d exceeds TotalSteps %d", kind, warmup, total)
	}
	return nil
}

// NewConstant returns a schedule that warms up linearly from 0 to peakLR
// over warmupSteps updates (none when 0) and then holds peakLR for good.
// It returns an error naming PeakLR when peakLR is not positive and finite
// and WarmupSteps when warmupSteps is negative.
func NewConstant(peakLR float64, warmupSteps int) (Schedule, error) {
	if err := checkLRs(KindConstant, peakLR, 0); err != nil {
		return nil, err
	}
	if warmupSteps < 0 {
		return nil, fmt.Errorf("schedule %s: WarmupSteps %d is negative", KindConstant, warmupSteps)
	}
	return &phased{peak: peakLR, warmup: warmupSteps}, nil
}

// NewLinear returns a schedule that warms up linearly over warmupSteps
// updates to peakLR and then decays linearly to minLR, reached on update
// totalSteps. The peak is the point where warmup meets decay, so update
// warmupSteps runs at it; with no warmup the first update is already the
// first decay step, just as the warmup's 0 is never run. It returns an
// error naming the field when peakLR is not positive and finite, minLR is
// negative or above peakLR, warmupSteps is negative, or warmupSteps leaves
// no update of decay before totalSteps.
func NewLinear(peakLR, minLR float64, warmupSteps, totalSteps int) (Schedule, error) {
	return newWarmupDecay(KindLinear, DecayLinear, peakLR, minLR, warmupSteps, totalSteps)
}

// NewCosine returns the GPT-2/Llama schedule: a linear warmup over
// warmupSteps updates to peakLR, then half a cosine from peakLR down to
// minLR, reached on update totalSteps (Llama used minLR = peakLR/10). As
// with NewLinear, update warmupSteps runs at the peak. It returns an error naming the field when peakLR is not positive and
// finite, minLR is negative or above peakLR, warmupSteps is negative, or
// warmupSteps leaves no update of decay before totalSteps.
func NewCosine(peakLR, minLR float64, warmupSteps, totalSteps int) (Schedule, error) {
	return newWarmupDecay(KindCosine, DecayCosine, peakLR, minLR, warmupSteps, totalSteps)
}

func newWarmupDecay(kind string, shape DecayShape, peak, minLR float64, warmup, total int) (Schedule, error) {
	if err := checkLRs(kind, peak, minLR); err != nil {
		return nil, err
	}
	if err := checkSteps(kind, warmup, total); err != nil {
		return nil, err
	}
	if warmup == total {
		return nil, fmt.Errorf("schedule %s: WarmupSteps %d leaves no decay before TotalSteps %d", kind, warmup, total)
	}
	return &phased{
		peak: peak, min: minLR, warmup: warmup,
		decayStart: warmup, decaySteps: total - warmup, total: total, shape: shape,
	}, nil
}

// WSDConfig describes a MiniCPM Warmup-Stable-Decay schedule (METHODS §6):
// WarmupSteps updates of linear warmup to PeakLR, PeakLR held, then the
// last DecayFrac of TotalSteps spent decaying along DecayShape.
type WSDConfig struct {
	// PeakLR is η, the stable-phase learning rate.
	PeakLR float64
	// MinLR is a floor for the decay; the warmup still starts from 0, as
	// METHODS §6 prints it, because a floor there would cut warmup short.
	MinLR float64
	// WarmupSteps is W; 0 means no warmup.
	WarmupSteps int
	// TotalSteps is S, the number of the last update.
	TotalSteps int
	// DecayFrac is the share of TotalSteps spent decaying, in (0, 1];
	// 0 means DefaultDecayFrac.
	DecayFrac float64
	// DecayShape is the decay curve; empty means exp, MiniCPM's choice.
	DecayShape DecayShape
	// HalfLife is the exp shape's half-life in updates (MiniCPM: 5000);
	// required for exp and an error with any other shape, where it would
	// be silently ignored.
	HalfLife float64
}

// WSD is a Warmup-Stable-Decay schedule. Because the stable phase is flat
// and the decay is placed at the end, a WSD with more TotalSteps gives the
// same learning rates up to this one's DecayStart, so a run can be
// extended, or decays branched off, from any stable-phase checkpoint.
type WSD struct {
	phased
}

// NewWSD returns the schedule c describes. It returns an error naming the
// field when PeakLR is not positive and finite, MinLR is negative or above
// PeakLR, WarmupSteps is negative, TotalSteps is below 1, DecayFrac is
// outside (0, 1], DecayShape is unknown, HalfLife is not positive for exp
// or set for another shape, or warmup and decay together need more than
// TotalSteps updates.
func NewWSD(c WSDConfig) (*WSD, error) {
	const kind = KindWSD
	if err := checkLRs(kind, c.PeakLR, c.MinLR); err != nil {
		return nil, err
	}
	if err := checkSteps(kind, c.WarmupSteps, c.TotalSteps); err != nil {
		return nil, err
	}
	frac := c.DecayFrac
	if frac == 0 {
		frac = DefaultDecayFrac
	}
	if !(frac > 0 && frac <= 1) {
		return nil, fmt.Errorf("schedule %s: DecayFrac %v must be in (0, 1] (0 means %v)", kind, c.DecayFrac, DefaultDecayFrac)
	}
	shape := c.DecayShape
	if shape == "" {
		shape = DecayExp
	}
	switch shape {
	case DecayExp:
		if !(c.HalfLife > 0) || math.IsInf(c.HalfLife, 0) {
			return nil, fmt.Errorf("schedule %s: HalfLife %v must be positive and finite for DecayShape %q", kind, c.HalfLife, DecayExp)
		}
	case DecayLinear, DecayOneMinusSqrt, DecayCosine:
		if c.HalfLife != 0 {
			return nil, fmt.Errorf("schedule %s: HalfLife %v applies only to DecayShape %q, not %q", kind, c.HalfLife, DecayExp, shape)
		}
	default:
		return nil, fmt.Errorf("schedule %s: DecayShape %q is unknown; want %q, %q, %q or %q",
			kind, c.DecayShape, DecayExp, DecayLinear, DecayOneMinusSqrt, DecayCosine)
	}
	// At least one decay update, so that a tiny run still anneals.
	d := max(int(math.Round(frac*float64(c.TotalSteps))), 1)
	if c.WarmupSteps+d > c.TotalSteps {
		return nil, fmt.Errorf("schedule %s: WarmupSteps %d plus %d decay steps (DecayFrac %v of TotalSteps %d) exceed TotalSteps",
			kind, c.WarmupSteps, d, frac, c.TotalSteps)
	}
	return &WSD{phased{
		peak: c.PeakLR, min: c.MinLR, warmup: c.WarmupSteps,
		decayStart: c.TotalSteps - d, decaySteps: d, total: c.TotalSteps,
		shape: shape, halfLife: c.HalfLife,
	}}, nil
}

// DecayStart returns T, the last update at the peak learning rate: a
// checkpoint taken after it or earlier lies in the stable phase (or the
// warmup) and can seed a longer run or another decay.
func (w *WSD) DecayStart() int { return w.decayStart }

// DecaySteps returns the number of decaying updates, TotalSteps minus
// DecayStart.
func (w *WSD) DecaySteps() int { return w.decaySteps }

// ScheduleConfig selects and parameterises a schedule from a recipe; the
// total step count comes from the run, not the recipe, through Build.
// Setting PeakLR to 1 (and MinLR to a fraction) turns the schedule into a
// multiplier of AdamWConfig.LR.
type ScheduleConfig struct {
	// Kind is "constant", "linear", "cosine" or "wsd".
	Kind string `json:"kind" yaml:"kind"`
	// PeakLR is the learning rate after warmup.
	PeakLR float64 `json:"peak_lr" yaml:"peak_lr"`
	// MinLR is the floor the decay ends on (linear, cosine, wsd).
	MinLR float64 `json:"min_lr" yaml:"min_lr"`
	// WarmupSteps is the length of the linear warmup from 0; 0 means none.
	WarmupSteps int `json:"warmup_steps" yaml:"warmup_steps"`
	// DecayFrac is wsd's share of training spent decaying; 0 means 0.1.
	DecayFrac float64 `json:"decay_frac" yaml:"decay_frac"`
	// DecayShape is wsd's decay curve: "exp" (the default), "linear",
	// "1-sqrt" or "cosine".
	DecayShape DecayShape `json:"decay_shape" yaml:"decay_shape"`
	// HalfLife is the half-life in steps of wsd's exp decay.
	HalfLife float64 `json:"half_life" yaml:"half_life"`
}

// Build returns the schedule c selects for a run of totalSteps updates.
// It returns an error naming the field when Kind is unknown, a field is
// out of range (see NewConstant, NewLinear, NewCosine and NewWSD), or a
// field is set that Kind does not use, since a silently ignored setting
// usually means the recipe is not the run its author thinks it is.
func (c ScheduleConfig) Build(totalSteps int) (Schedule, error) {
	type field struct {
		name string
		set  bool
	}
	unused := func(fs ...field) error {
		for _, f := range fs {
			if f.set {
				return fmt.Errorf("schedule %s: %s is set but Kind %q does not use it", c.Kind, f.name, c.Kind)
			}
		}
		return nil
	}
	minLR := field{"MinLR", c.MinLR != 0}
	decayFrac := field{"DecayFrac", c.DecayFrac != 0}
	decayShape := field{"DecayShape", c.DecayShape != ""}
	halfLife := field{"HalfLife", c.HalfLife != 0}
	switch c.Kind {
	case KindConstant:
		if err := unused(minLR, decayFrac, decayShape, halfLife); err != nil {
			return nil, err
		}
		// Constant itself needs no total, but a warmup longer than the
		// run is a recipe mistake worth catching.
		if err := checkSteps(c.Kind, c.WarmupSteps, totalSteps); err != nil {
			return nil, err
		}
		return NewConstant(c.PeakLR, c.WarmupSteps)
	case KindLinear, KindCosine:
		if err := unused(decayFrac, decayShape, halfLife); err != nil {
			return nil, err
		}
		if c.Kind == KindLinear {
			return NewLinear(c.PeakLR, c.MinLR, c.WarmupSteps, totalSteps)
		}
		return NewCosine(c.PeakLR, c.MinLR, c.WarmupSteps, totalSteps)
	case KindWSD:
		return NewWSD(WSDConfig{
			PeakLR: c.PeakLR, MinLR: c.MinLR, WarmupSteps: c.WarmupSteps, TotalSteps: totalSteps,
			DecayFrac: c.DecayFrac, DecayShape: c.DecayShape, HalfLife: c.HalfLife,
		})
	}
	return nil, fmt.Errorf("schedule: Kind %q is unknown; want %q, %q, %q or %q",
		c.Kind, KindConstant, KindLinear, KindCosine, KindWSD)
}
