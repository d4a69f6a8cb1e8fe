package rl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data"
)

func batchOf(completions []string, cols map[string][]string) RewardBatch {
	b := RewardBatch{Completions: completions, Prompts: make([]string, len(completions)), Columns: cols}
	for i, c := range completions {
		b.Prompts[i] = "p"
		b.CompletionIDs = append(b.CompletionIDs, make([]int32, len(c)))
	}
	return b
}

func TestExtractAnswer(t *testing.T) {
	all := []string{ExtractGSM8K, ExtractBoxed, ExtractLastNumber}
	tests := []struct {
		text  string
		ext   []string
		want  string
		found bool
	}{
		{"3+4=7\n#### 7", all, "7", true},
		{"so #### 1,450,000 dollars\nok", all, "1450000", true},
		{"#### $18.", all, "$18.", true},
		{"#### x", all, "x", true},
		{`the answer is \boxed{42}.`, all, "42", true},
		{`\boxed{1} then \boxed{\frac{1}{2}}`, all, `\frac{1}{2}`, true},
		{"I think 12, no, 13.", all, "13", true},
		{"costs $1,200.50 total", all, "1200.50", true},
		{"minus -5 it is", all, "-5", true},
		{"so 7-3", all, "3", true},
		{"x=(2)-4", all, "4", true},
		{"= -0.5", all, "-0.5", true},
		{"no digits here", all, "", false},
		{"#### 9 but 10", []string{ExtractLastNumber}, "10", true},
		{`\boxed{3}`, []string{ExtractGSM8K}, "", false},
	}
	for _, tc := range tests {
		got, ok := ExtractAnswer(tc.text, tc.ext)
		if got != tc.want || ok != tc.found {
			t.Errorf("ExtractAnswer(%q, %v) = %q, %v; want %q, %v", tc.text, tc.ext, got, ok, tc.want, tc.found)
		}
	}
}

func TestAnswerMatch(t *testing.T) {
	r, err := NewAnswerMatch(AnswerMatchConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b := batchOf(
		[]string{"7+11=18\n#### 18", "#### 17", `\boxed{18.0}`, "it is 18.", "nothing", "#### 1,800", "#### $18 dollars"},
		map[string][]string{"answer": {"work\n#### 18", "18", "18", "18", "18", "1800", "18"}},
	)
	got, err := r.Score(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 0, 1, 1, 0, 1, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("completion %d (%q): %v, want %v", i, b.Completions[i], got[i], want[i])
		}
	}
	if _, err := r.Score(context.Background(), batchOf([]string{"1"}, nil)); err == nil || !strings.Contains(err.Error(), `"answer"`) {
		t.Errorf("missing column: %v", err)
	}
	if _, err := NewAnswerMatch(AnswerMatchConfig{Extract: []string{"first_number"}}); err == nil {
		t.Error("unknown extractor: no error")
	}
	if _, err := NewAnswerMatch(AnswerMatchConfig{Extract: []string{}}); err == nil {
		t.Error("no extractor: no error")
	}
	tol, _ := NewAnswerMatch(AnswerMatchConfig{Tolerance: 0.01})
	got, _ = tol.Score(context.Background(), batchOf([]string{"#### 3.333"}, map[string][]string{"answer": {"3.33"}}))
	if got[0] != 1 {
		t.Errorf("tolerance 0.01: 3.333 vs 3.33 scored %v", got[0])
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		cfg  FormatConfig
		text string
		want float64
	}{
		{FormatConfig{Pattern: `#### \d+`}, "work\n#### 12", 1},
		{FormatConfig{Pattern: `#### \d+`}, "12", 0},
		{FormatConfig{Pattern: `<think>.*</think>.*`, FullMatch: true}, "<think>a</think>b", 1},
		{FormatConfig{Pattern: `<think>.*</think>`, FullMatch: true}, "x<think>a</think>", 0},
	}
	for _, tc := range tests {
		f, err := NewFormat(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := f.Score(context.Background(), batchOf([]string{tc.text}, nil))
		if got[0] != tc.want {
			t.Errorf("%+v on %q: %v, want %v", tc.cfg, tc.text, got[0], tc.want)
		}
	}
	if _, err := NewFormat(FormatConfig{Pattern: "("}); err == nil {
		t.Error("bad pattern: no error")
	}
	if f, _ := NewFormat(FormatConfig{Pattern: "x", Name: "has_x"}); f.Name() != "has_x" {
		t.Errorf("name %q", f.Name())
	}
}

// TestOverlongPenalty checks DAPO's soft overlong punishment (METHODS §1)
// with Lmax = 20 and Lcache = 4.
func TestOverlongPenalty(t *testing.T) {
	tests := []struct {
		n    int
		want float64
	}{{0, 0}, {16, 0}, {17, -0.25}, {18, -0.5}, {20, -1}, {21, -1}, {100, -1}}
	for _, tc := range tests {
		if got := OverlongPenalty(tc.n, 20, 4); got != tc.want {
			t.Errorf("OverlongPenalty(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	r, err := NewSoftOverlong(OverlongConfig{MaxLength: 20, Cache: 4})
	if err != nil {
		t.Fatal(err)
	}
	b := RewardBatch{Prompts: []string{"", ""}, Completions: []string{"", ""}, CompletionIDs: [][]int32{make([]int32, 18), make([]int32, 3)}}
	got, _ := r.Score(context.Background(), b)
	if got[0] != -0.5 || got[1] != 0 {
		t.Errorf("scores %v", got)
	}
	if _, err := NewSoftOverlong(OverlongConfig{MaxLength: 4, Cache: 5}); err == nil {
		t.Error("cache > max_length: no error")
	}
}

// constReward returns fixed values, to test Rewards' checks.
type constReward struct {
	name string
	vals []float64
	err  error
}

func (c constReward) Name() string { return c.name }
func (c constReward) Score(context.Context, RewardBatch) ([]float64, error) {
	return c.vals, c.err
}

func TestRewardsCombine(t *testing.T) {
	b := batchOf([]string{"a", "b"}, map[string][]string{"answer": {"1", "2"}})
	rs := Rewards{
		{Reward: constReward{name: "x", vals: []float64{1, 0}}, Weight: 1},
		{Reward: constReward{name: "y", vals: []float64{0.5, 2}}, Weight: -0.5},
	}
	s, err := rs.Score(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Total[0] != 0.75 || s.Total[1] != -1 || s.Each["y"][1] != 2 || len(s.Names) != 2 || s.Names[0] != "x" {
		t.Errorf("scores %+v", s)
	}
	bad := []struct {
		name string
		rs   Rewards
		want string
	}{
		{"short", Rewards{{Reward: constReward{name: "short", vals: []float64{1}}, Weight: 1}}, "short returned 1 values for 2"},
		{"nan", Rewards{{Reward: constReward{name: "nanny", vals: []float64{1, math.NaN()}}, Weight: 1}}, "nanny returned NaN for completion 1"},
		{"inf", Rewards{{Reward: constReward{name: "big", vals: []float64{math.Inf(1), 0}}, Weight: 1}}, "big returned +Inf"},
		{"fails", Rewards{{Reward: constReward{name: "broken", err: errors.New("boom")}, Weight: 1}}, "broken: boom"},
		{"dup", Rewards{{Reward: constReward{name: "x", vals: []float64{1, 1}}, Weight: 1}, {Reward: constReward{name: "x", vals: []float64{1, 1}}, Weight: 1}}, "two rewards"},
		{"weight", Rewards{{Reward: constReward{name: "w", vals: []float64{1, 1}}, Weight: math.NaN()}}, "weight"},
		{"none", Rewards{}, "no rewards"},
	}
	for _, tc := range bad {
		_, err := tc.rs.Score(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	b.Columns["answer"] = []string{"1"}
	if _, err := rs.Score(context.Background(), b); err == nil {
		t.Error("short column: no error")
	}
}

func TestExternalReward(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	b := batchOf([]string{"abc", "de"}, map[string][]string{"answer": {"1", "2"}})
	tests := []struct {
		name   string
		script string
		want   []float64
		errHas string
	}{
		// Scores each line by whether it carries the answer column: the
		// command really reads the JSON it is given.
		{"reads stdin", `while IFS= read -r l; do case "$l" in *'"answer":"2"'*) echo 1;; *) echo 0.25;; esac; done`, []float64{0.25, 1}, ""},
		{"crash", `echo oops >&2; exit 3`, nil, "oops"},
		{"malformed", `echo 1; echo nope`, nil, `line 2 is "nope"`},
		{"too few", `cat >/dev/null; echo 1`, nil, "wrote 1 numbers for 2"},
	}
	for _, tc := range tests {
		r, err := NewExternal(ExternalConfig{Name: "ext", Command: []string{"sh", "-c", tc.script}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Rewards{{Reward: r, Weight: 1}}.Score(context.Background(), b)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), "ext") {
				t.Errorf("%s: error %v, want one naming the reward and containing %q", tc.name, err, tc.errHas)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i := range tc.want {
			if got.Total[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got.Total, tc.want)
			}
		}
	}
	r, _ := NewExternal(ExternalConfig{Command: []string{"sh", "-c", "sleep 5"}, TimeoutS: 0.1})
	if _, err := r.Score(context.Background(), b); err == nil {
		t.Error("timeout: no error")
	}
	if _, err := NewExternal(ExternalConfig{}); err == nil {
		t.Error("empty command: no error")
	}
}

func TestBuildRewards(t *testing.T) {
	half := 0.5
	tl := &TLDRConfig{Levels: testLevels}
	rs, err := BuildRewards([]RewardConfig{
		{Kind: RewardAnswerMatch},
		{Kind: RewardFormat, Weight: &half, Format: FormatConfig{Pattern: "####"}},
		{Kind: RewardSoftOverlong, Overlong: OverlongConfig{MaxLength: 10, Cache: 2}},
		{Kind: RewardTLDRLength},
		{Kind: RewardExternal, External: ExternalConfig{Command: []string{"true"}}},
	}, tl)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"answer_match", "format", "soft_overlong", "tldr_length", "external"}
	for i, r := range rs {
		if r.Reward.Name() != names[i] {
			t.Errorf("reward %d is %s, want %s", i, r.Reward.Name(), names[i])
		}
	}
	if rs[0].Weight != 1 || rs[1].Weight != 0.5 {
		t.Errorf("weights %v and %v", rs[0].Weight, rs[1].Weight)
	}
	if rs, err := BuildRewards([]RewardConfig{{Kind: RewardTLDR}}, tl); err != nil || rs[0].Reward.Name() != "tldr" {
		t.Errorf("tldr: %v", err)
	}
	nan := math.NaN()
	bad := []struct {
		cfgs []RewardConfig
		tldr *TLDRConfig
		want string
	}{
		{nil, nil, "no rewards"},
		{[]RewardConfig{{Kind: "bleu"}}, nil, `rewards[0]: unknown kind "bleu"`},
		{[]RewardConfig{{Kind: RewardAnswerMatch}, {Kind: RewardTLDR}}, nil, "rewards[1]: kind tldr needs"},
		{[]RewardConfig{{Kind: RewardFormat}}, nil, "rewards[0] (format): rl: format: empty pattern"},
		{[]RewardConfig{{Kind: RewardAnswerMatch, Weight: &nan}}, nil, "not finite"},
	}
	for _, tc := range bad {
		if _, err := BuildRewards(tc.cfgs, tc.tldr); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.cfgs, err, tc.want)
		}
	}
}

// TestAnswerMatchGSM8K: on real GSM8K solutions, each scores 1 against
// its own reference and 0 against the next problem's (where the answers
// differ). It needs MINNOW_DATA.
func TestAnswerMatchGSM8K(t *testing.T) {
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		t.Skip("MINNOW_DATA is not set")
	}
	f, err := os.Open(filepath.Join(dir, "gsm8k", "test.jsonl"))
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	var answers []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(answers) < 300 {
		var rec struct{ Answer string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		answers = append(answers, rec.Answer)
	}
	am, _ := NewAnswerMatch(AnswerMatchConfig{})
	shifted := append(answers[1:], answers[0])
	self, err := am.Score(context.Background(), batchOf(answers, map[string][]string{"answer": answers}))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := am.Score(context.Background(), batchOf(answers, map[string][]string{"answer": shifted}))
	for i := range answers {
		a, _ := data.ExtractAnswer(answers[i])
		b, _ := data.ExtractAnswer(shifted[i])
		if self[i] != 1 {
			t.Errorf("solution %d does not match its own answer %q", i, a)
		}
		if a != b && other[i] != 0 {
			t.Errorf("solution %d (answer %q) matches %q", i, a, b)
		}
	}
}
