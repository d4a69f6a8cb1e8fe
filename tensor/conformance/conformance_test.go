package conformance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// The suite must catch a faulty backend. Each mutant below wraps the CPU
// backend and breaks one method in a way a real port could; the test runs
// the suite's relevant group on it in a child process (a failing Run cannot
// be observed from inside one test binary) and requires the child to fail,
// or, for the unsupported mutant, to pass with the case skipped.

// mutant wraps a backend and breaks the behaviour named by kind.
type mutant struct {
	tensor.Backend
	kind string
}

var errBoom = errors.New("mutant: device lost")

func (m *mutant) Fill(dst tensor.Ref, n int, v float64) error {
	if m.kind == "fill-overruns" {
		n++
	}
	return m.Backend.Fill(dst, n, v)
}

func (m *mutant) Copy(a *tensor.CopyArgs) error {
	c := *a
	if m.kind == "copy-ignores-src-strides" {
		c.SrcStrides = contiguous(c.Shape)
		// Stay inside the source: only copy as many elements as it has.
		if span(c.Shape, a.SrcStrides) < span(c.Shape, c.SrcStrides) {
			return m.Backend.Copy(a)
		}
	}
	return m.Backend.Copy(&c)
}

func (m *mutant) Gemm(a *tensor.GemmArgs) error {
	c := *a
	switch m.kind {
	case "gemm-ignores-beta":
		c.Beta = 0
	case "gemm-beta0-reads-c":
		if c.Beta == 0 {
			c.Beta = 1e-300
		}
	case "gemm-unsupported":
		return fmt.Errorf("mutant: gemm: %w", tensor.ErrUnsupported)
	}
	return m.Backend.Gemm(&c)
}

func (m *mutant) Binary(a *tensor.BinaryArgs) error {
	c := *a
	switch m.kind {
	case "binary-swaps-operands":
		c.A, c.B, c.AStrides, c.BStrides = a.B, a.A, a.BStrides, a.AStrides
	case "binary-panics":
		if a.Op == tensor.Div {
			panic("mutant: divide")
		}
	}
	return m.Backend.Binary(&c)
}

func (m *mutant) UnaryGrad(a *tensor.UnaryArgs) error {
	c := *a
	if m.kind == "unary-grad-overwrites" {
		c.Accumulate = false
	}
	return m.Backend.UnaryGrad(&c)
}

func (m *mutant) Reduce(a *tensor.ReduceArgs) error {
	if m.kind == "reduce-fails" {
		return errBoom
	}
	return m.Backend.Reduce(a)
}

func (m *mutant) AdamW(a *tensor.AdamWArgs) error {
	c := *a
	if m.kind == "adamw-no-bias-correction" {
		c.Step = 1 << 20
	}
	return m.Backend.AdamW(&c)
}

func (m *mutant) NormGrad(a *tensor.NormArgs) error {
	c := *a
	if m.kind == "norm-grad-overwrites" {
		c.Accumulate = false
	}
	return m.Backend.NormGrad(&c)
}

func (m *mutant) RoPE(a *tensor.RoPEArgs) error {
	c := *a
	if m.kind == "rope-wrong-convention" {
		c.HalfSplit = !c.HalfSplit
	}
	return m.Backend.RoPE(&c)
}

func (m *mutant) Gather(a *tensor.GatherArgs) error {
	err := m.Backend.Gather(a)
	if m.kind == "gather-swallows-errors" {
		return nil
	}
	return err
}

func (m *mutant) Dropout(a *tensor.DropoutArgs) error {
	c := *a
	if m.kind == "dropout-ignores-seed" {
		c.Seed = 1
	}
	return m.Backend.Dropout(&c)
}

func (m *mutant) Attention(a *tensor.AttentionArgs) error {
	c := *a
	switch m.kind {
	case "attention-ignores-mask":
		c.Mask = tensor.Ref{}
	case "attention-off-by-one-causal":
		c.QOffset++
	}
	return m.Backend.Attention(&c)
}

var mutants = []struct {
	kind, group string
	caught      bool // the child must fail; else it must pass and skip
}{
	{"fill-overruns", "Fill", true},
	{"copy-ignores-src-strides", "Copy", true},
	{"gemm-ignores-beta", "Gemm", true},
	{"gemm-beta0-reads-c", "Gemm", true},
	{"gemm-unsupported", "Gemm", false},
	{"binary-swaps-operands", "Binary", true},
	{"binary-panics", "Binary", true},
	{"unary-grad-overwrites", "UnaryGrad", true},
	{"reduce-fails", "Reduce", true},
	{"adamw-no-bias-correction", "AdamW", true},
	{"norm-grad-overwrites", "NormGrad", true},
	{"rope-wrong-convention", "RoPE", true},
	{"gather-swallows-errors", "Gather", true},
	{"dropout-ignores-seed", "Dropout", true},
	{"attention-ignores-mask", "Attention", true},
	{"attention-off-by-one-causal", "Attention", true},
}

const mutantEnv = "MINNOW_CONFORMANCE_MUTANT"

// TestMutantChild runs one group of the suite on a mutant; it does nothing
// unless started by TestSuiteCatchesMutants.
func TestMutantChild(t *testing.T) {
	kind := os.Getenv(mutantEnv)
	if kind == "" {
		t.Skip("runs only as a child of TestSuiteCatchesMutants")
	}
	Run(t, &mutant{Backend: cpu.New(3), kind: kind})
}

func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("inside a child")
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip("no executable to rerun:", err)
	}
	for _, m := range mutants {
		t.Run(m.kind, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^TestMutantChild$/^"+m.group+"$", "-test.v")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m.kind)
			out, err := cmd.CombinedOutput()
			text := string(out)
			failed := err != nil
			if !strings.Contains(text, "/"+m.group) {
				t.Fatalf("the child ran no %s case:\n%s", m.group, tail(text))
			}
			switch {
			case m.caught && !failed:
				t.Errorf("the suite passed a backend with %s:\n%s", m.kind, tail(text))
			case m.caught && !strings.Contains(text, "--- FAIL: TestMutantChild/"+m.group+"/"):
				t.Errorf("the child failed outside the %s group:\n%s", m.group, tail(text))
			case !m.caught && failed:
				t.Errorf("the suite failed an unsupported op instead of skipping it:\n%s", tail(text))
			case !m.caught && !strings.Contains(text, "unsupported: Gemm"):
				t.Errorf("the skipped cases do not say they are unsupported:\n%s", tail(text))
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}
