package data

import (
	"fmt"
	"strconv"
	"strings"
)

// ArithOp is an arithmetic operation of the synthetic task, written as its
// symbol.
type ArithOp string

// The operations.
const (
	Add ArithOp = "+"
	Sub ArithOp = "-"
	Mul ArithOp = "*"
)

// MaxArithDigits bounds operand length: beyond it the worked steps of a
// multiplication no longer fit a small model's context.
const MaxArithDigits = 40

// ArithConfig sets the difficulty of generated arithmetic problems. The
// zero value means single additions of 1- to 3-digit numbers.
type ArithConfig struct {
	// Ops are the operations to draw from, uniformly (nil means Add).
	Ops []ArithOp
	// MinDigits and MaxDigits bound each operand's number of digits,
	// drawn uniformly between them (0 means 1 and 3).
	MinDigits, MaxDigits int
	// Operands is the number of terms of an addition (0 means 2).
	// Subtractions and multiplications always take two, since their
	// worked steps would otherwise stop being short and regular.
	Operands int
	// Verbose, between 0 and 1, pads worked solutions with redundant
	// lines, for length-control experiments (TLDR) that need a model
	// whose reasoning can be shortened without losing accuracy: an opening
	// line, a line after each step restating the digits written so far,
	// and a closing line, each present with probability Verbose. They are
	// drawn from a stream of their own, so the problems are the same as
	// without it; 0 (the default) adds nothing.
	Verbose float64
	// VerboseWhole pads a whole solution or none of it: a solution is
	// padded with probability Verbose, and then gets every redundant
	// line. A model trained on it settles its length once, at the first
	// line, as one that keeps a style through a solution does, and a
	// length level in the prompt can steer that one choice.
	VerboseWhole bool
}

// withDefaults fills the zero fields of c and checks the result.
func (c ArithConfig) withDefaults() (ArithConfig, error) {
	if len(c.Ops) == 0 {
		c.Ops = []ArithOp{Add}
	}
	if c.MinDigits == 0 {
		c.MinDigits = 1
	}
	if c.MaxDigits == 0 {
		c.MaxDigits = max(3, c.MinDigits)
	}
	if c.Operands == 0 {
		c.Operands = 2
	}
	for _, op := range c.Ops {
		if op != Add && op != Sub && op != Mul {
			return c, fmt.Errorf("data: unknown arithmetic operation %q (want +, - or *)", op)
		}
	}
	if c.MinDigits < 1 || c.MaxDigits < c.MinDigits || c.MaxDigits > MaxArithDigits {
		return c, fmt.Errorf("data: operand digits %d..%d, want 1 ≤ min ≤ max ≤ %d", c.MinDigits, c.MaxDigits, MaxArithDigits)
	}
	if !(c.Verbose >= 0 && c.Verbose <= 1) {
		return c, fmt.Errorf("data: verbose %v, want 0 to 1", c.Verbose)
	}
	if c.Operands < 2 || c.Operands > 100 {
		return c, fmt.Errorf("data: %d operands, want 2 to 100", c.Operands)
	}
	return c, nil
}

// Arith generates arithmetic problems with worked, column-by-column
// solutions. It is deterministic: the same config and seed give the same
// problems, on every platform and Go release.
//
// The text is compact and regular so that a small model can learn it.
// "What is 4821 + 379?" is solved column by column from the units, padding
// short numbers with 0 and writing the carry in as a last term:
//
//	1+9=10, write 0 carry 1
//	2+7+1=10, write 0 carry 1
//	8+3+1=12, write 2 carry 1
//	4+0+1=5, write 5
//	#### 5200
//
// The last column writes its whole sum. A subtraction (larger number
// first) borrows: "11-9=2, write 2 borrow 1", then "2-7-1" becomes
// "12-7-1=4, write 4 borrow 1". A multiplication lists one partial product
// per nonzero digit of the second number, then their sum:
//
//	4821*9=43389
//	4821*70=337470
//	4821*300=1446300
//	43389+337470+1446300=1827159
//	#### 1827159
type Arith struct {
	cfg ArithConfig
	r   *rng
	vr  *rng // draws the verbose lines, apart from the problems
}

// NewArith returns a generator of problems as cfg describes, seeded by
// seed. It returns an error for an unknown operation, digit bounds outside
// 1..MaxArithDigits, or fewer than two operands.
func NewArith(cfg ArithConfig, seed uint64) (*Arith, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Arith{cfg: c, r: newRNG(seed), vr: newRNG(seed ^ 0x5eed_7e7b05e)}, nil
}

// GenerateArith returns the first n problems of NewArith(cfg, seed); it
// returns NewArith's errors.
func GenerateArith(cfg ArithConfig, seed uint64, n int) ([]Problem, error) {
	g, err := NewArith(cfg, seed)
	if err != nil {
		return nil, err
	}
	out := make([]Problem, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out, nil
}

// Next returns the next problem.
func (g *Arith) Next() Problem {
	op := g.cfg.Ops[g.r.intn(uint64(len(g.cfg.Ops)))]
	k := 2
	if op == Add {
		k = g.cfg.Operands
	}
	xs := make([]digits, k)
	for i := range xs {
		xs[i] = g.number()
	}
	if op == Sub && compareDigits(xs[0], xs[1]) < 0 {
		xs[0], xs[1] = xs[1], xs[0] // keep results non-negative
	}
	var steps []string
	var answer string
	switch op {
	case Add:
		steps, answer = addSteps(xs)
	case Sub:
		steps, answer = subSteps(xs[0], xs[1])
	case Mul:
		steps, answer = mulSteps(xs[0], xs[1])
	}
	terms := make([]string, len(xs))
	for i, x := range xs {
		terms[i] = x.String()
	}
	if g.cfg.Verbose > 0 && op != Mul {
		steps = g.pad(steps, answer)
	}
	return Problem{
		Question: "What is " + strings.Join(terms, " "+string(op)+" ") + "?",
		Solution: strings.Join(steps, "\n"),
		Answer:   answer,
	}
}

// pad adds the redundant lines of ArithConfig.Verbose to the column
// steps of an addition or subtraction whose result is answer.
func (g *Arith) pad(steps []string, answer string) []string {
	draw := func() bool { return float64(g.vr.intn(1<<20))/(1<<20) < g.cfg.Verbose }
	on := draw
	if g.cfg.VerboseWhole {
		whole := draw()
		on = func() bool { return whole }
	}
	var out []string
	if on() {
		out = append(out, "Let me work it out column by column, from the units.")
	}
	for i, s := range steps {
		out = append(out, s)
		// The digits written so far are the answer's last i+1 digits (the
		// last column writes the rest).
		if i < len(steps)-1 && on() {
			out = append(out, "So far the answer ends in "+answer[max(0, len(answer)-i-1):]+".")
		}
	}
	if on() {
		out = append(out, "So the answer is "+answer+".")
	}
	return out
}

// number draws an operand: a digit count, then uniform digits with a
// nonzero leading digit (a one-digit operand may be 0).
func (g *Arith) number() digits {
	n := g.r.between(g.cfg.MinDigits, g.cfg.MaxDigits)
	d := make(digits, n)
	for i := range d {
		d[i] = byte(g.r.intn(10))
	}
	if n > 1 {
		d[n-1] = byte(g.r.between(1, 9))
	}
	return d
}

// digits is a non-negative number as decimal digits, least significant
// first, which is the order the column methods walk them in.
type digits []byte

// at returns digit i, 0 past the end (the padding of short numbers).
func (d digits) at(i int) int {
	if i < len(d) {
		return int(d[i])
	}
	return 0
}

// String returns d in decimal without leading zeros.
func (d digits) String() string {
	n := len(d)
	for n > 1 && d[n-1] == 0 {
		n--
	}
	if n == 0 {
		return "0"
	}
	b := make([]byte, n)
	for i := range n {
		b[n-1-i] = '0' + d[i]
	}
	return string(b)
}

func compareDigits(a, b digits) int {
	a, b = trimDigits(a), trimDigits(b)
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

func trimDigits(d digits) digits {
	for len(d) > 1 && d[len(d)-1] == 0 {
		d = d[:len(d)-1]
	}
	return d
}

// addDigits returns the sum of xs.
func addDigits(xs []digits) digits {
	w := 0
	for _, x := range xs {
		w = max(w, len(x))
	}
	var out digits
	carry := 0
	for col := 0; col < w || carry > 0; col++ {
		s := carry
		for _, x := range xs {
			s += x.at(col)
		}
		out = append(out, byte(s%10))
		carry = s / 10
	}
	return out
}

// addSteps works an addition column by column.
func addSteps(xs []digits) (steps []string, answer string) {
	w := 0
	for _, x := range xs {
		w = max(w, len(x))
	}
	var low []byte // written digits, least significant first
	var b strings.Builder
	carry := 0
	for col := range w {
		b.Reset()
		sum := carry
		for i, x := range xs {
			if i > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strconv.Itoa(x.at(col)))
			sum += x.at(col)
		}
		if carry > 0 {
			fmt.Fprintf(&b, "+%d", carry)
		}
		if col == w-1 {
			fmt.Fprintf(&b, "=%d, write %d", sum, sum)
			answer = strconv.Itoa(sum) + reverse(low)
		} else {
			fmt.Fprintf(&b, "=%d, write %d", sum, sum%10)
			carry = sum / 10
			if carry > 0 {
				fmt.Fprintf(&b, " carry %d", carry)
			}
			low = append(low, byte('0'+sum%10))
		}
		steps = append(steps, b.String())
	}
	return steps, answer
}

// subSteps works a − b (a ≥ b) column by column with borrows.
func subSteps(a, b digits) (steps []string, answer string) {
	var out digits
	var s strings.Builder
	borrow := 0
	for col := range len(a) {
		s.Reset()
		top, bot := a.at(col), b.at(col)
		d := top - bot - borrow
		next := 0
		if d < 0 {
			top += 10
			d += 10
			next = 1
		}
		fmt.Fprintf(&s, "%d-%d", top, bot)
		if borrow > 0 {
			fmt.Fprintf(&s, "-%d", borrow)
		}
		fmt.Fprintf(&s, "=%d, write %d", d, d)
		if next > 0 {
			s.WriteString(" borrow 1")
		}
		steps = append(steps, s.String())
		out = append(out, byte(d))
		borrow = next
	}
	return steps, out.String()
}

// mulSteps works a × b by partial products.
func mulSteps(a, b digits) (steps []string, answer string) {
	as := a.String()
	var parts []digits
	var partStrs []string
	for j := range len(b) {
		k := b[j]
		if k == 0 {
			continue
		}
		p := make(digits, j, j+len(a)+1) // j zeros: the shift
		carry := 0
		for _, x := range a {
			v := int(x)*int(k) + carry
			p = append(p, byte(v%10))
			carry = v / 10
		}
		if carry > 0 {
			p = append(p, byte(carry))
		}
		parts = append(parts, p)
		ps := p.String()
		partStrs = append(partStrs, ps)
		steps = append(steps, fmt.Sprintf("%s*%d%s=%s", as, k, strings.Repeat("0", j), ps))
	}
	switch len(parts) {
	case 0: // b is 0
		return []string{as + "*0=0"}, "0"
	case 1:
		return steps, partStrs[0]
	}
	answer = addDigits(parts).String()
	steps = append(steps, strings.Join(partStrs, "+")+"="+answer)
	return steps, answer
}

// reverse returns the digits b (least significant first) as a decimal
// string.
func reverse(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return string(out)
}
