package data

import (
	"bytes"
	"flag"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// parseDigits turns a decimal string into digits, least significant first.
func parseDigits(s string) digits {
	d := make(digits, len(s))
	for i := range s {
		d[len(s)-1-i] = s[i] - '0'
	}
	return d
}

func TestArithWorkedExamples(t *testing.T) {
	tests := []struct {
		op     ArithOp
		xs     []string
		steps  string
		answer string
	}{
		{Add, []string{"4821", "379"}, "1+9=10, write 0 carry 1\n2+7+1=10, write 0 carry 1\n8+3+1=12, write 2 carry 1\n4+0+1=5, write 5", "5200"},
		{Add, []string{"95", "8"}, "5+8=13, write 3 carry 1\n9+0+1=10, write 10", "103"},
		{Add, []string{"9", "9", "9", "9"}, "9+9+9+9=36, write 36", "36"},
		{Add, []string{"99", "99", "99"}, "9+9+9=27, write 7 carry 2\n9+9+9+2=29, write 29", "297"},
		{Add, []string{"0", "0"}, "0+0=0, write 0", "0"},
		{Sub, []string{"4821", "379"}, "11-9=2, write 2 borrow 1\n12-7-1=4, write 4 borrow 1\n8-3-1=4, write 4\n4-0=4, write 4", "4442"},
		{Sub, []string{"1000", "999"}, "10-9=1, write 1 borrow 1\n10-9-1=0, write 0 borrow 1\n10-9-1=0, write 0 borrow 1\n1-0-1=0, write 0", "1"},
		{Sub, []string{"7", "7"}, "7-7=0, write 0", "0"},
		{Mul, []string{"4821", "379"}, "4821*9=43389\n4821*70=337470\n4821*300=1446300\n43389+337470+1446300=1827159", "1827159"},
		{Mul, []string{"12", "304"}, "12*4=48\n12*300=3600\n48+3600=3648", "3648"},
		{Mul, []string{"56", "100"}, "56*100=5600", "5600"},
		{Mul, []string{"56", "0"}, "56*0=0", "0"},
		{Mul, []string{"0", "7"}, "0*7=0", "0"},
	}
	for _, tc := range tests {
		var ds []digits
		for _, x := range tc.xs {
			ds = append(ds, parseDigits(x))
		}
		var steps []string
		var answer string
		switch tc.op {
		case Add:
			steps, answer = addSteps(ds)
		case Sub:
			steps, answer = subSteps(ds[0], ds[1])
		case Mul:
			steps, answer = mulSteps(ds[0], ds[1])
		}
		name := strings.Join(tc.xs, " "+string(tc.op)+" ")
		if got := strings.Join(steps, "\n"); got != tc.steps {
			t.Errorf("%s: steps\n%s\nwant\n%s", name, got, tc.steps)
		}
		if answer != tc.answer {
			t.Errorf("%s = %s, want %s", name, answer, tc.answer)
		}
	}
}

var questionRE = regexp.MustCompile(`^What is (\d+(?: [-+*] \d+)+)\?$`)

// evalLeftToRight evaluates "a op b op c" with one operator kind.
func evalTerms(t *testing.T, expr string) *big.Int {
	t.Helper()
	var op byte
	for _, c := range []byte("+-*") {
		if strings.IndexByte(expr, c) >= 0 {
			op = c
		}
	}
	parts := strings.Split(strings.ReplaceAll(expr, " ", ""), string(op))
	acc, ok := new(big.Int).SetString(parts[0], 10)
	if !ok {
		t.Fatalf("bad number in %q", expr)
	}
	for _, p := range parts[1:] {
		x, ok := new(big.Int).SetString(p, 10)
		if !ok {
			t.Fatalf("bad number in %q", expr)
		}
		switch op {
		case '+':
			acc.Add(acc, x)
		case '-':
			acc.Sub(acc, x)
		case '*':
			acc.Mul(acc, x)
		}
	}
	return acc
}

func TestArithCorrect(t *testing.T) {
	configs := []ArithConfig{
		{},
		{Ops: []ArithOp{Add}, MinDigits: 1, MaxDigits: 8, Operands: 5},
		{Ops: []ArithOp{Sub}, MinDigits: 1, MaxDigits: 12},
		{Ops: []ArithOp{Mul}, MinDigits: 1, MaxDigits: 6},
		{Ops: []ArithOp{Add, Sub, Mul}, MinDigits: 1, MaxDigits: 2, Operands: 3},
		{Ops: []ArithOp{Add, Mul}, MinDigits: 20, MaxDigits: MaxArithDigits},
	}
	stepRE := regexp.MustCompile(`^([0-9+*-]+)=(\d+)(, write (\d+)( (carry|borrow) (\d+))?)?$`)
	for ci, cfg := range configs {
		probs, err := GenerateArith(cfg, uint64(ci), 400)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probs {
			m := questionRE.FindStringSubmatch(p.Question)
			if m == nil {
				t.Fatalf("config %d: question %q", ci, p.Question)
			}
			want := evalTerms(t, m[1])
			if want.Sign() < 0 || p.Answer != want.String() {
				t.Fatalf("config %d: %s answered %s, want %s", ci, p.Question, p.Answer, want)
			}
			if !p.Correct(p.Target()) || p.Correct(p.Solution+"\n#### "+want.String()+"1") {
				t.Fatalf("config %d: %s: Correct disagrees", ci, p.Question)
			}
			// Every worked step is true arithmetic, and a written digit
			// and carry make up the column's sum.
			for _, line := range strings.Split(p.Solution, "\n") {
				sm := stepRE.FindStringSubmatch(line)
				if sm == nil {
					t.Fatalf("config %d: %s: step %q has an unexpected shape", ci, p.Question, line)
				}
				lhs := evalTerms(t, sm[1])
				if lhs.String() != sm[2] {
					t.Fatalf("config %d: %s: step %q is false", ci, p.Question, line)
				}
				if sm[6] == "carry" && sm[7]+sm[4] != sm[2] {
					t.Fatalf("config %d: %s: step %q: carry and digit do not make the sum", ci, p.Question, line)
				}
			}
		}
	}
}

func TestArithDeterministic(t *testing.T) {
	cfg := ArithConfig{Ops: []ArithOp{Add, Sub, Mul}, MaxDigits: 4}
	a, _ := GenerateArith(cfg, 1, 300)
	b, _ := GenerateArith(cfg, 1, 300)
	c, _ := GenerateArith(cfg, 2, 300)
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave different problems")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("seeds 1 and 2 gave the same problems")
	}
	g, _ := NewArith(cfg, 1)
	for i := range a {
		if p := g.Next(); p != a[i] {
			t.Fatalf("problem %d of a generator differs from GenerateArith", i)
		}
	}
}

func TestArithDifficulty(t *testing.T) {
	tests := []struct {
		cfg            ArithConfig
		minD, maxD, nk int
	}{
		{ArithConfig{}, 1, 3, 2},
		{ArithConfig{MinDigits: 5, MaxDigits: 5}, 5, 5, 2},
		{ArithConfig{MinDigits: 2, MaxDigits: 9, Operands: 4}, 2, 9, 4},
		{ArithConfig{Ops: []ArithOp{Mul}, MinDigits: 3, MaxDigits: 4, Operands: 4}, 3, 4, 2}, // operands count for addition only
		{ArithConfig{Ops: []ArithOp{Sub}, MinDigits: 7}, 7, 7, 2},
	}
	for _, tc := range tests {
		probs, err := GenerateArith(tc.cfg, 3, 500)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, p := range probs {
			terms := strings.Split(questionRE.FindStringSubmatch(p.Question)[1], " ")
			var nums []string
			for i := 0; i < len(terms); i += 2 {
				nums = append(nums, terms[i])
			}
			if len(nums) != tc.nk {
				t.Fatalf("%+v: %q has %d operands, want %d", tc.cfg, p.Question, len(nums), tc.nk)
			}
			for _, x := range nums {
				if len(x) < tc.minD || len(x) > tc.maxD {
					t.Fatalf("%+v: operand %s of %q outside %d..%d digits", tc.cfg, x, p.Question, tc.minD, tc.maxD)
				}
				seen[len(x)] = true
			}
		}
		for d := tc.minD; d <= tc.maxD; d++ {
			if !seen[d] {
				t.Errorf("%+v: no %d-digit operand in 500 problems", tc.cfg, d)
			}
		}
	}
	// Harder settings make longer solutions.
	easy, _ := GenerateArith(ArithConfig{MaxDigits: 2}, 1, 200)
	hard, _ := GenerateArith(ArithConfig{MinDigits: 6, MaxDigits: 8, Operands: 3}, 1, 200)
	var le, lh int
	for i := range easy {
		le += len(easy[i].Solution)
		lh += len(hard[i].Solution)
	}
	if lh < 3*le {
		t.Errorf("hard solutions average %d bytes, easy ones %d", lh/200, le/200)
	}
}

func TestArithConfigErrors(t *testing.T) {
	for _, cfg := range []ArithConfig{
		{Ops: []ArithOp{"/"}},
		{MinDigits: 4, MaxDigits: 2},
		{MinDigits: -1},
		{MaxDigits: MaxArithDigits + 1},
		{Operands: 1},
		{Operands: 101},
	} {
		if _, err := NewArith(cfg, 0); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestArithJSONL writes problems as JSONL, reads them back with the GSM8K
// loader, and pins the text of a fixed seed in a golden file: the demo and
// saved RL runs depend on it staying the same.
func TestArithJSONL(t *testing.T) {
	probs, err := GenerateArith(ArithConfig{Ops: []ArithOp{Add, Sub, Mul}, MaxDigits: 3}, 2024, 12)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, probs); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "arith.jsonl")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("generated JSONL differs from %s (rerun with -update if the change is meant):\n%s", golden, buf.String())
	}
	back, sk, err := Load(golden, ReadOptions{})
	if err != nil || sk.Count != 0 {
		t.Fatal(err, sk)
	}
	for i, ex := range back {
		if ex != probs[i] {
			t.Errorf("record %d read back as %#v, want %#v", i, ex, probs[i])
		}
	}
}

// TestArithVerbose checks the padding: the problems and their column
// steps stay those of the plain generator, lines are padded at about the
// asked rate, and with VerboseWhole a solution has all of its redundant
// lines or none.
func TestArithVerbose(t *testing.T) {
	base := ArithConfig{Ops: []ArithOp{Add, Sub}}
	plain, err := GenerateArith(base, 3, 2000)
	if err != nil {
		t.Fatal(err)
	}
	redundant := func(line string) bool {
		return strings.HasPrefix(line, "Let me ") || strings.HasPrefix(line, "So ")
	}
	tests := []struct {
		name    string
		verbose float64
		whole   bool
	}{
		{"none", 0, false},
		{"lines", 0.5, false},
		{"whole-solutions", 0.3, true},
		{"all", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.Verbose, cfg.VerboseWhole = tc.verbose, tc.whole
			ps, err := GenerateArith(cfg, 3, len(plain))
			if err != nil {
				t.Fatal(err)
			}
			var padded, slots, mixed, full int
			for i, p := range ps {
				var kept []string
				n := 0
				for _, line := range strings.Split(p.Solution, "\n") {
					if redundant(line) {
						n++
					} else {
						kept = append(kept, line)
					}
				}
				if p.Question != plain[i].Question || p.Answer != plain[i].Answer || strings.Join(kept, "\n") != plain[i].Solution {
					t.Fatalf("problem %d without its padding:\n%s\nwant\n%s", i, strings.Join(kept, "\n"), plain[i].Solution)
				}
				// An opening line, one after each column but the last, a
				// closing line.
				m := strings.Count(plain[i].Solution, "\n") + 2
				padded, slots = padded+n, slots+m
				switch {
				case n == m:
					full++
				case n > 0:
					mixed++
				}
			}
			if rate := float64(padded) / float64(slots); math.Abs(rate-tc.verbose) > 0.04 {
				t.Errorf("padded %.3f of the lines, want %.2f", rate, tc.verbose)
			}
			if tc.whole && mixed > 0 {
				t.Errorf("%d solutions are partly padded, want all or nothing", mixed)
			}
			if !tc.whole && tc.verbose == 0.5 && mixed == 0 {
				t.Error("no solution is partly padded")
			}
			if rate := float64(full) / float64(len(ps)); tc.whole && math.Abs(rate-tc.verbose) > 0.04 {
				t.Errorf("%.3f of the solutions are padded, want %.2f", rate, tc.verbose)
			}
		})
	}
}
