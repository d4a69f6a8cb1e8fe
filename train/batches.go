package train

import (
	"encoding/json"
	"fmt"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/tensor"
)

// IgnoreIndex is the target id that losses skip, as PyTorch's
// cross-entropy does: prompt tokens in SFT and padding carry it.
const IgnoreIndex = -100

// Batch is one micro-batch: token ids and the targets to predict, both
// i32 [B, T]. Targets equal to IgnoreIndex take no part in the loss.
type Batch struct {
	IDs, Targets *tensor.Tensor
	// Positions (i32 [B, T]) and Mask (additive [B, T, T]) are set by
	// packed sources; objectives that support packing use them. Both are
	// nil otherwise, and NextToken ignores them: a packed batch needs an
	// objective that passes them to the model, or its documents would see
	// each other.
	Positions, Mask *tensor.Tensor
}

// Release returns the batch's tensors to their backend; Loop calls it once
// a batch's backward pass is done, so sources hand over fresh tensors.
func (b Batch) Release() {
	if b.IDs != nil {
		b.IDs.Release()
	}
	if b.Targets != nil {
		b.Targets.Release()
	}
	if b.Positions != nil {
		b.Positions.Release()
	}
	if b.Mask != nil {
		b.Mask.Release()
	}
}

// Tokens returns how many target tokens of b count towards the loss,
// reading the targets to the host.
func (b Batch) Tokens() int {
	n := 0
	for _, y := range b.Targets.Int32s() {
		if y != IgnoreIndex {
			n++
		}
	}
	return n
}

// Batches is a resumable source of micro-batches. Its cursor is opaque
// bytes that the loop stores in checkpoints, so any source can take part
// in exact resumption.
type Batches interface {
	// Next returns the next batch, whose tensors the caller owns. It
	// returns io.EOF when a finite source (an evaluation pass) is done,
	// and any error of reading the data.
	Next() (Batch, error)
	// Cursor returns the position of the batch Next would return next.
	// It returns an error when the position cannot be encoded.
	Cursor() ([]byte, error)
	// Seek moves to a position Cursor returned. It returns an error when
	// the cursor is malformed or belongs to another data set.
	Seek(cursor []byte) error
}

// streamBatches adapts a data.Stream to Batches.
type streamBatches struct {
	st         *data.Stream
	be         tensor.Backend
	batch, seq int
	buf, x, y  []int32
}

// StreamBatches returns st as Batches of batch windows of seq tokens on
// be, the targets being the inputs shifted by one token; its cursor is
// data.Cursor as JSON. batch and seq must be the stream's own Batch and
// Seq. With a OnePass stream the last batch may have fewer rows, and Next
// then returns io.EOF. It returns an error when batch or seq is not
// positive or seq is not the stream's.
func StreamBatches(st *data.Stream, be tensor.Backend, batch, seq int) (Batches, error) {
	if batch <= 0 || seq <= 0 {
		return nil, fmt.Errorf("train: stream batches of %d×%d tokens", batch, seq)
	}
	if st.WindowTokens() != seq+1 {
		return nil, fmt.Errorf("train: stream windows of %d tokens, want seq %d + 1", st.WindowTokens(), seq)
	}
	return &streamBatches{
		st: st, be: be, batch: batch, seq: seq,
		buf: make([]int32, batch*(seq+1)), x: make([]int32, batch*seq), y: make([]int32, batch*seq),
	}, nil
}

func (s *streamBatches) Next() (Batch, error) {
	n, err := s.st.Next(s.buf)
	if err != nil {
		return Batch{}, err
	}
	// A short final batch of a one-pass stream keeps only its full rows.
	x, y := s.x[:n*s.seq], s.y[:n*s.seq]
	if err := data.InputsTargets(s.buf[:n*(s.seq+1)], s.seq, x, y); err != nil {
		return Batch{}, err
	}
	var b Batch
	err = tensor.Catch(func() {
		b.IDs = tensor.From(s.be, tensor.Int32, x, n, s.seq)
		b.Targets = tensor.From(s.be, tensor.Int32, y, n, s.seq)
	})
	if err != nil {
		b.Release()
		return Batch{}, err
	}
	return b, nil
}

func (s *streamBatches) Cursor() ([]byte, error) { return json.Marshal(s.st.Cursor()) }

func (s *streamBatches) Seek(cursor []byte) error {
	var c data.Cursor
	if err := json.Unmarshal(cursor, &c); err != nil {
		return fmt.Errorf("train: data cursor %q: %w", cursor, err)
	}
	return s.st.Seek(c)
}
