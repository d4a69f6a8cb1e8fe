package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
)

// Shards is an opened shard directory: the shards' tokens as one stream,
// read from memory-mapped files. It is safe for concurrent use; Close it
// when done.
type Shards struct {
	// Index is the directory's index.
	Index  *ShardIndex
	files  []*shardFile
	starts []int64 // starts[i] is shard i's first token; the last entry is the total
	width  int
}

// OpenShards opens the shard directory dir that BuildShards wrote. It
// returns an error when the index is missing or invalid, or a shard file
// is missing or of the wrong size.
func OpenShards(dir string) (*Shards, error) {
	ix, err := ReadShardIndex(dir)
	if err != nil {
		return nil, err
	}
	s := &Shards{Index: ix, width: dtypeWidth(ix.Dtype), starts: []int64{0}}
	for _, sh := range ix.Shards {
		f, err := openShardFile(filepath.Join(dir, sh.Name), sh.Tokens*int64(s.width))
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		s.starts = append(s.starts, s.starts[len(s.starts)-1]+sh.Tokens)
	}
	return s, nil
}

// Len returns the number of tokens.
func (s *Shards) Len() int64 { return s.starts[len(s.starts)-1] }

// Read fills dst with the tokens from position start on, across shard
// boundaries. It returns an error when the range runs outside the stream
// or (without memory mapping) a read fails.
func (s *Shards) Read(dst []int32, start int64) error {
	end := start + int64(len(dst))
	if start < 0 || end > s.Len() {
		return fmt.Errorf("data: tokens [%d, %d) outside the %d of the shards", start, end, s.Len())
	}
	// The shard holding start: the last one starting at or before it.
	i := sort.Search(len(s.files), func(i int) bool { return s.starts[i+1] > start })
	for len(dst) > 0 {
		k := min(int64(len(dst)), s.starts[i+1]-start)
		if err := s.files[i].read(dst[:k], start-s.starts[i], s.width); err != nil {
			return err
		}
		dst, start = dst[k:], start+k
		i++
	}
	return nil
}

// Close unmaps the shards; it returns the first error of doing so.
func (s *Shards) Close() error {
	var err error
	for _, f := range s.files {
		if cerr := f.close(); err == nil {
			err = cerr
		}
	}
	s.files = nil
	return err
}

// decodeTokens decodes little-endian tokens of width bytes from b.
func decodeTokens(dst []int32, b []byte, width int) {
	if width == 2 {
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return
	}
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// Part selects the training or the validation windows of a corpus.
type Part int

// The parts.
const (
	Train Part = iota
	Validation
)

// String returns "train" or "validation".
func (p Part) String() string {
	if p == Validation {
		return "validation"
	}
	return "train"
}

// StreamOptions sets how a Stream cuts the corpus into windows and orders
// them.
//
// Window w holds tokens [w·Seq, w·Seq+Seq+1): consecutive windows share one
// token, so every token after the first is a target exactly once; the
// model reads window[:Seq] and predicts window[1:]. Of the W windows, the
// last round(ValFraction·W) (at least one when ValFraction > 0) are the
// validation part and the rest the training part. A contiguous tail
// rather than a random selection keeps validation text from interleaving
// with training text, which would leak neighbouring lines of the same
// passage into training.
type StreamOptions struct {
	Batch, Seq  int
	ValFraction float64
	Part        Part
	// Shuffle visits each epoch's windows in a fresh order derived from
	// Seed and the epoch number (else in corpus order).
	Shuffle bool
	Seed    uint64
	// OnePass ends the stream (io.EOF) at the end of the current epoch
	// instead of going on to the next, as an evaluation pass wants.
	OnePass bool
}

// WindowCounts returns how many training and validation windows of seq+1
// tokens the shards hold with the given validation fraction. It returns
// an error when seq is not positive or the fraction is outside [0, 1).
func (s *Shards) WindowCounts(seq int, valFraction float64) (train, val int64, err error) {
	if seq <= 0 {
		return 0, 0, fmt.Errorf("data: sequence length %d", seq)
	}
	if err := checkFraction(valFraction); err != nil {
		return 0, 0, err
	}
	var w int64
	if s.Len() > 0 {
		w = (s.Len() - 1) / int64(seq)
	}
	val = validCount(w, valFraction)
	return w - val, val, nil
}

// Stream yields batches of fixed-length windows from Shards, epoch after
// epoch, and can stop and resume exactly through its Cursor. It is not safe
// for concurrent use.
type Stream struct {
	s       *Shards
	opt     StreamOptions
	first   int64 // the part's first window
	sampler *Sampler
}

// Stream returns a stream of opt.Part's windows at the start of epoch 0;
// Seek moves it to a saved Cursor. It returns an error when Batch or Seq
// is not positive, the fraction is outside [0, 1), or the part has no
// window.
func (s *Shards) Stream(opt StreamOptions) (*Stream, error) {
	if opt.Batch <= 0 {
		return nil, fmt.Errorf("data: batch size %d", opt.Batch)
	}
	train, val, err := s.WindowCounts(opt.Seq, opt.ValFraction)
	if err != nil {
		return nil, err
	}
	first, n := int64(0), train
	if opt.Part == Validation {
		first, n = train, val
	}
	if n == 0 {
		return nil, fmt.Errorf("data: no %s windows: %d tokens make %d windows of %d tokens, %d of them for validation",
			opt.Part, s.Len(), train+val, opt.Seq+1, val)
	}
	sm, err := NewSampler(n, opt.Seed, opt.Shuffle)
	if err != nil {
		return nil, err
	}
	return &Stream{s: s, opt: opt, first: first, sampler: sm}, nil
}

// Len returns the number of windows per epoch.
func (st *Stream) Len() int64 { return st.sampler.Len() }

// WindowTokens returns the length of a window, Seq+1.
func (st *Stream) WindowTokens() int { return st.opt.Seq + 1 }

// Cursor returns the position of the next window. Saved with a checkpoint
// taken after a batch was consumed, it makes a resumed stream continue
// with the batch that follows.
func (st *Stream) Cursor() Cursor { return st.sampler.Cursor() }

// Seek moves the stream to c, as returned by Cursor. It returns an error
// when c lies outside an epoch of this stream's windows, as a cursor saved
// over another corpus or sequence length may.
func (st *Stream) Seek(c Cursor) error {
	return st.sampler.Seek(c)
}

// Window fills dst (Seq+1 tokens) with the part's window i in corpus
// order. It returns an error when i is out of range or a read fails.
func (st *Stream) Window(i int64, dst []int32) error {
	if i < 0 || i >= st.Len() {
		return fmt.Errorf("data: window %d of %d", i, st.Len())
	}
	if len(dst) != st.opt.Seq+1 {
		return fmt.Errorf("data: window buffer of %d tokens, want %d", len(dst), st.opt.Seq+1)
	}
	return st.s.Read(dst, (st.first+i)*int64(st.opt.Seq))
}

// Next fills dst, which must hold Batch·(Seq+1) tokens, with the next
// Batch windows one after another and returns how many it wrote. That is
// always Batch, a batch running on into the next epoch, except with
// OnePass, where the last batch of the epoch may be short and the call
// after it returns 0 and io.EOF. It returns an error for a wrongly sized
// dst or a failed read.
func (st *Stream) Next(dst []int32) (int, error) {
	wt := st.opt.Seq + 1
	if len(dst) != st.opt.Batch*wt {
		return 0, fmt.Errorf("data: batch buffer of %d tokens, want %d×%d", len(dst), st.opt.Batch, wt)
	}
	for b := range st.opt.Batch {
		c := st.sampler.Cursor()
		if st.opt.OnePass && c.Index == st.sampler.Len() {
			if b == 0 {
				return 0, io.EOF
			}
			return b, nil
		}
		w := st.sampler.Next()
		if err := st.s.Read(dst[b*wt:(b+1)*wt], (st.first+w)*int64(st.opt.Seq)); err != nil {
			// Step back, so that retrying after a transient error
			// yields the same windows.
			if serr := st.sampler.Seek(c); serr != nil {
				return b, errors.Join(err, serr)
			}
			return b, err
		}
	}
	return st.opt.Batch, nil
}

// InputsTargets splits a batch of windows of seq+1 tokens, as Next fills
// it, into the model's inputs x (each window's first seq tokens) and
// targets y (its last seq), both batch×seq row-major. It returns an error
// when the lengths do not agree.
func InputsTargets(windows []int32, seq int, x, y []int32) error {
	if seq <= 0 || len(windows)%(seq+1) != 0 || len(x) != len(windows)/(seq+1)*seq || len(y) != len(x) {
		return fmt.Errorf("data: %d window tokens of seq %d into %d inputs and %d targets", len(windows), seq, len(x), len(y))
	}
	for b := range len(windows) / (seq + 1) {
		w := windows[b*(seq+1) : (b+1)*(seq+1)]
		copy(x[b*seq:(b+1)*seq], w[:seq])
		copy(y[b*seq:(b+1)*seq], w[1:])
	}
	return nil
}
