package convert

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// llamaRequest is what tools/node/llama-logits.mjs reads (see its header).
type llamaRequest struct {
	Model        string    `json:"model"`
	Lora         string    `json:"lora,omitempty"`
	LoraScale    float64   `json:"loraScale,omitempty"`
	ContextSize  int       `json:"contextSize"`
	Prompts      [][]int32 `json:"prompts"`
	AllPositions bool      `json:"allPositions"`
	Generate     int       `json:"generate"`
}

// llamaResult is llama.cpp's answer for one prompt.
type llamaResult struct {
	// Logits has a row per prompt position (or only the last one).
	Logits [][]float64 `json:"logits"`
	// Greedy are the greedy continuation's ids and GreedyLogits the rows
	// each was picked from.
	Greedy       []int32     `json:"greedy"`
	GreedyLogits [][]float64 `json:"greedyLogits"`
}

// nodeDir returns tools/node, skipping the test when node or the
// node-llama-cpp package is not installed (make deps-node installs it).
func nodeDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "tools", "node")
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: llama.cpp checks need Node.js and `make deps-node`")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-llama-cpp", "package.json")); err != nil {
		t.Skipf("%s/node_modules/node-llama-cpp is missing: run `make deps-node`", dir)
	}
	return dir
}

// runLlamaCpp evaluates the jobs in one llama.cpp process through
// node-llama-cpp and returns each job's results, one per prompt.
func runLlamaCpp(t *testing.T, jobs []llamaRequest) [][]llamaResult {
	t.Helper()
	dir := nodeDir(t)
	in, err := json.Marshal(map[string]any{"jobs": jobs})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "llama-logits.mjs"))
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "NODE_LLAMA_CPP_SKIP_DOWNLOAD=true")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("llama.cpp (node-llama-cpp) failed: %v\n%s", err, stderr.String())
	}
	var out struct {
		Jobs [][]llamaResult `json:"jobs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("llama-logits.mjs output: %v\n%.500s\n%s", err, stdout.String(), stderr.String())
	}
	if len(out.Jobs) != len(jobs) {
		t.Fatalf("llama.cpp returned %d jobs for %d", len(out.Jobs), len(jobs))
	}
	for i, j := range jobs {
		if len(out.Jobs[i]) != len(j.Prompts) {
			t.Fatalf("llama.cpp returned %d results for %d prompts of %s", len(out.Jobs[i]), len(j.Prompts), j.Model)
		}
	}
	return out.Jobs
}

// testBackend is a one-thread CPU backend, so that the tests leave the
// other cores to parallel packages and their numbers do not depend on the
// machine's thread count.
var testBackend = newTestBackend()

func newTestBackend() tensor.Backend {
	be := cpu.New(1)
	tensor.SetDefault(be)
	return be
}

// minnowLogits returns m's logits [T][vocab] for one sequence.
func minnowLogits(t *testing.T, m model.Model, ids []int32) [][]float64 {
	t.Helper()
	var flat []float32
	err := tensor.Catch(func() {
		tensor.NoGrad(func() {
			x := tensor.From(testBackend, tensor.Int32, ids, 1, len(ids))
			flat = m.Forward(x, model.ForwardOptions{}).Float32s()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	v := len(flat) / len(ids)
	rows := make([][]float64, len(ids))
	for i := range rows {
		rows[i] = make([]float64, v)
		for j := range v {
			rows[i][j] = float64(flat[i*v+j])
		}
	}
	return rows
}

// minnowGreedy returns m's greedy continuation of each prompt.
func minnowGreedy(t *testing.T, m model.Model, prompts [][]int32, n int) [][]int32 {
	t.Helper()
	out, err := model.Generate(m, nil, prompts, model.GenerateConfig{MaxNewTokens: n, StopTokens: []int32{}})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([][]int32, len(out))
	for i, c := range out {
		ids[i] = c.Tokens
	}
	return ids
}

// maxDiff returns the largest absolute difference between two logit
// tables, failing when their shapes differ.
func maxDiff(t *testing.T, a, b [][]float64) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d logit rows vs %d", len(a), len(b))
	}
	d := 0.0
	for i := range a {
		if len(a[i]) != len(b[i]) {
			t.Fatalf("row %d: %d logits vs %d", i, len(a[i]), len(b[i]))
		}
		for j := range a[i] {
			d = math.Max(d, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return d
}

// agreement returns the fraction of positions where two token sequences
// agree, comparing up to the first difference and beyond.
func agreement(a, b []int32) float64 {
	n, same := max(len(a), len(b)), 0
	for i := range min(len(a), len(b)) {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(n)
}

// testCorpus is the text test vocabularies and trained models learn.
var testCorpus = strings.Repeat("the quick brown fox jumps over the lazy dog; to be or not to be, that is the question. "+
	"All the world's a stage, and all the men and women merely players. ", 20)

// testVocab trains a small byte-level BPE vocabulary.
func testVocab(t *testing.T) *tokenizer.Vocab {
	t.Helper()
	v, err := tokenizer.Train(strings.NewReader(testCorpus), tokenizer.TrainConfig{VocabSize: 300, Special: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
