package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/minnowml/minnow/data"
)

// writeShards writes tokens as a one-shard uint16 directory by hand, as
// BuildShards would, so the test needs no tokenizer.
func writeShards(t *testing.T, tokens []int32) *data.Shards {
	t.Helper()
	dir := t.TempDir()
	raw := make([]byte, 2*len(tokens))
	for i, v := range tokens {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	if err := os.WriteFile(filepath.Join(dir, "shard-0.bin"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ix := data.ShardIndex{Version: 1, Dtype: data.DtypeUint16, VocabSize: 11, Tokens: int64(len(tokens)),
		Shards: []data.ShardFileInfo{{Name: "shard-0.bin", Tokens: int64(len(tokens))}}}
	b, err := json.Marshal(ix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, data.IndexFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := data.OpenShards(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func corpus(n int) []int32 {
	ts := make([]int32, n)
	for i := range ts {
		ts[i] = cycle[(i*7+i/5)%len(cycle)]
	}
	return ts
}

// TestStreamBatches checks the inputs and targets of the adapter, its
// cursor round trip and a short final one-pass batch.
func TestStreamBatches(t *testing.T) {
	toks := corpus(4*5 + 1) // five windows of seq 4
	sh := writeShards(t, toks)
	st, err := sh.Stream(data.StreamOptions{Batch: 2, Seq: 4, OnePass: true})
	if err != nil {
		t.Fatal(err)
	}
	src, err := StreamBatches(st, be, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	var cur []byte
	for i := 0; ; i++ {
		if i == 1 {
			if cur, err = src.Cursor(); err != nil {
				t.Fatal(err)
			}
		}
		b, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		x, y := b.IDs.Int32s(), b.Targets.Int32s()
		for r := range b.IDs.Dim(0) {
			w := toks[(rows+r)*4 : (rows+r)*4+5]
			if !slices.Equal(x[r*4:r*4+4], w[:4]) || !slices.Equal(y[r*4:r*4+4], w[1:]) {
				t.Fatalf("batch %d row %d: ids %v targets %v, window %v", i, r, x[r*4:r*4+4], y[r*4:r*4+4], w)
			}
		}
		rows += b.IDs.Dim(0)
		b.Release()
	}
	if rows != 5 {
		t.Fatalf("%d rows in one pass, want 5", rows)
	}
	if err := src.Seek(cur); err != nil {
		t.Fatal(err)
	}
	b, err := src.Next()
	if err != nil || !slices.Equal(b.IDs.Int32s()[:4], toks[8:12]) {
		t.Fatalf("after Seek: %v, %v; want the third window", b.IDs, err)
	}
	for _, bad := range [][]byte{[]byte("{"), []byte(`{"epoch":0,"index":99}`)} {
		if err := src.Seek(bad); err == nil {
			t.Errorf("Seek(%s) accepted", bad)
		}
	}
	if _, err := StreamBatches(st, be, 2, 5); err == nil {
		t.Error("a seq other than the stream's was accepted")
	}
}

// TestLoopResumesStream repeats the exact-resume check with data from a
// shuffled data.Stream, whose cursor travels in the checkpoint as JSON.
func TestLoopResumesStream(t *testing.T) {
	sh := writeShards(t, corpus(8*7+1))
	const N, k = 6, 2
	run := func(seed uint64, dir string, steps int, resume bool) []float64 {
		m, opt, ws := setup(t, seed)
		st, err := sh.Stream(data.StreamOptions{Batch: 2, Seq: 8, Shuffle: true, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		src, err := StreamBatches(st, be, 2, 8)
		if err != nil {
			t.Fatal(err)
		}
		if resume {
			if s, err := Resume(dir, ws, opt, src); err != nil || s != k {
				t.Fatalf("resumed at %d, %v", s, err)
			}
		}
		var losses []float64
		w := writerFunc(func(p []byte) (int, error) {
			var m Metric
			err := json.Unmarshal(p, &m)
			losses = append(losses, m.Loss)
			return len(p), err
		})
		if _, err := Loop(context.Background(), m, opt, NextToken{}, src,
			LoopConfig{Steps: steps, CheckpointDir: dir, Weights: ws, Metrics: w}); err != nil {
			t.Fatal(err)
		}
		return losses
	}
	full := run(1, t.TempDir(), N, false)
	dir := t.TempDir()
	got := append(run(1, dir, k, false), run(2, dir, N, true)...)
	if !slices.Equal(got, full) {
		t.Errorf("losses with a stop at step %d:\n%v\nuninterrupted:\n%v", k, got, full)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
