package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/minnowml/minnow/data/tokenizer"
)

// TokenizeResult holds the figures of the tokenizer benchmark.
type TokenizeResult struct {
	MBPerS float64
	Tokens int
	// The peer's figures, when a comparison ran.
	Peer          bool
	PeerMBPerS    float64
	IdsIdentical  bool
	FirstMismatch int
}

// Line returns the RESULT line of the tokenizer benchmark.
func (r TokenizeResult) Line() string {
	s := fmt.Sprintf("RESULT mb_per_s=%.2f tokens=%d", r.MBPerS, r.Tokens)
	if r.Peer {
		s += fmt.Sprintf(" peer_mb_per_s=%.2f ratio=%.2f ids_identical=%v", r.PeerMBPerS, r.MBPerS/r.PeerMBPerS, r.IdsIdentical)
	}
	return s
}

// Tokenize encodes text reps times, each time with a fresh tokenizer from
// newTok so that no piece cache carries over from one pass to the next (the
// peer has none either), and returns the median rate and the ids. Building
// the tokenizer is not timed.
func Tokenize(newTok func() tokenizer.Tokenizer, text string, reps int) (mbPerS float64, ids []int32) {
	var times []float64
	for range reps {
		tok := newTok()
		t0 := time.Now()
		ids = tok.Encode(text, tokenizer.EncodeOptions{})
		times = append(times, time.Since(t0).Seconds())
	}
	return float64(len(text)) / 1e6 / median(times), ids
}

// ComparePeer runs the reference tokenizer (tiktoken's GPT-2 encoding,
// through Node.js and the script in nodeDir) on the text file and reports
// its rate and whether its ids equal ids; it returns an error when node or
// the installed npm package is missing or the script fails.
func ComparePeer(nodeDir, textPath string, ids []int32, res *TokenizeResult) error {
	script := filepath.Join(nodeDir, "tiktoken-gpt2.cjs")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "tiktoken")); err != nil {
		return fmt.Errorf("the peer tokenizer is not installed in %s (run make deps-node): %w", nodeDir, err)
	}
	f, err := os.CreateTemp("", "minnow-ids-*.txt")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	var b bytes.Buffer
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(int(id)))
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	out, err := exec.Command("node", script, textPath, f.Name()).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return fmt.Errorf("node %s: %v: %s", script, err, ee.Stderr)
		}
		return fmt.Errorf("node %s: %w", script, err)
	}
	var peer struct {
		PeerMBPerS      float64 `json:"peer_mb_per_s"`
		Identical       bool    `json:"identical"`
		FirstDifference int     `json:"first_difference"`
	}
	if err := json.Unmarshal(out, &peer); err != nil {
		return fmt.Errorf("node %s printed %q: %w", script, out, err)
	}
	res.Peer, res.PeerMBPerS, res.IdsIdentical, res.FirstMismatch = true, peer.PeerMBPerS, peer.Identical, peer.FirstDifference
	return nil
}
