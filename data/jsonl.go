package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/minnowml/minnow/internal/atomicfile"
)

// DefaultMaxLineBytes is the longest JSONL line a Reader accepts unless
// ReadOptions says otherwise: far above any real record (long documents
// run to tens of megabytes), low enough that a file without newlines
// cannot take all memory.
const DefaultMaxLineBytes = 256 << 20

// maxSkippedKept is how many skipped lines a Skipped report keeps.
const maxSkippedKept = 5

// ReadOptions controls a Reader.
type ReadOptions struct {
	// Format is the layout every line must have; FormatAuto detects it
	// from the first valid line.
	Format Format
	// SkipBad skips malformed lines (bad JSON, a missing or mistyped
	// field, another layout) and counts them instead of failing.
	SkipBad bool
	// MaxLineBytes bounds a line's length (0 means DefaultMaxLineBytes);
	// a longer line is malformed.
	MaxLineBytes int
}

// LineError is a malformed line: the file, its 1-based line number, and
// what is wrong with it.
type LineError struct {
	File string
	Line int
	Err  error
}

// Error returns "file:line: problem".
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

// Unwrap returns the problem.
func (e *LineError) Unwrap() error { return e.Err }

// Skipped reports the lines a Reader skipped with SkipBad: how many, and
// the first few of them with their problems.
type Skipped struct {
	Count int
	First []*LineError
}

// Lines returns the line numbers of the first skipped lines.
func (s Skipped) Lines() []int {
	out := make([]int, len(s.First))
	for i, e := range s.First {
		out[i] = e.Line
	}
	return out
}

// String summarises the report for a log line, such as
// "skipped 3 bad lines (train.jsonl:4, 9, 17)".
func (s Skipped) String() string {
	if s.Count == 0 {
		return "skipped no lines"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "skipped %d bad line", s.Count)
	if s.Count != 1 {
		b.WriteByte('s')
	}
	for i, e := range s.First {
		if i == 0 {
			fmt.Fprintf(&b, " (%s:%d", e.File, e.Line)
		} else {
			fmt.Fprintf(&b, ", %d", e.Line)
		}
	}
	if len(s.First) > 0 {
		if s.Count > len(s.First) {
			b.WriteString(", ...")
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Reader reads examples from JSONL text, one record per line. Blank lines
// are skipped; lines may be far longer than bufio.Scanner's limit.
type Reader struct {
	name    string
	br      *bufio.Reader
	opt     ReadOptions
	format  Format
	line    int
	buf     []byte
	skipped Skipped
	err     error // sticky: set once reading failed or ended
}

// NewReader returns a Reader of r, naming it name in errors (use the
// file's path). It returns an error when opt names an unknown format or a
// negative line limit.
func NewReader(r io.Reader, name string, opt ReadOptions) (*Reader, error) {
	if _, err := ParseFormat(string(opt.Format)); err != nil {
		return nil, err
	}
	if opt.MaxLineBytes < 0 {
		return nil, fmt.Errorf("data: negative MaxLineBytes %d", opt.MaxLineBytes)
	}
	if opt.MaxLineBytes == 0 {
		opt.MaxLineBytes = DefaultMaxLineBytes
	}
	return &Reader{name: name, br: bufio.NewReaderSize(r, 64<<10), opt: opt, format: opt.Format}, nil
}

// Format returns the records' layout: the one asked for, or the detected
// one once a valid line was read (FormatAuto before that).
func (r *Reader) Format() Format { return r.format }

// Line returns the 1-based number of the last line read.
func (r *Reader) Line() int { return r.line }

// Skipped returns the report of lines skipped so far.
func (r *Reader) Skipped() Skipped { return r.skipped }

// Next returns the next example. At the end of the input it returns
// io.EOF; for a malformed line (without SkipBad) it returns a *LineError
// naming the file and line; a read failure is returned wrapped with the
// file and line. After an error every call returns the same error.
func (r *Reader) Next() (Example, error) {
	if r.err != nil {
		return nil, r.err
	}
	for {
		line, tooLong, err := r.readLine()
		if err == io.EOF {
			r.err = io.EOF
			return nil, io.EOF
		}
		if err != nil {
			r.err = fmt.Errorf("%s:%d: read: %w", r.name, r.line, err)
			return nil, r.err
		}
		var ex Example
		if tooLong {
			err = fmt.Errorf("line longer than %d bytes", r.opt.MaxLineBytes)
		} else {
			if r.line == 1 {
				line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // a UTF-8 byte-order mark
			}
			trimmed := bytes.TrimLeft(line, " \t\r")
			lead := len(line) - len(trimmed) // for error columns
			line = bytes.TrimRight(trimmed, " \t\r")
			if len(line) == 0 {
				continue
			}
			ex, err = r.parse(line, lead)
		}
		if err == nil {
			return ex, nil
		}
		le := &LineError{File: r.name, Line: r.line, Err: err}
		if !r.opt.SkipBad {
			r.err = le
			return nil, le
		}
		r.skipped.Count++
		if len(r.skipped.First) < maxSkippedKept {
			r.skipped.First = append(r.skipped.First, le)
		}
	}
}

// parse decodes one non-blank line, detecting the format on the first
// valid line; lead is the number of blank bytes trimmed off its start.
func (r *Reader) parse(line []byte, lead int) (Example, error) {
	if line[0] != '{' {
		if json.Valid(line) {
			return nil, fmt.Errorf("want a JSON object, got %s", jsonKind(line))
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Offset counts the bytes read up to and including the bad
			// one, which makes it the 1-based column.
			return nil, fmt.Errorf("invalid JSON at column %d: %v", int64(lead)+se.Offset, err)
		}
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if obj == nil {
		return nil, errors.New("want a JSON object, got null")
	}
	f := r.format
	if f == FormatAuto {
		var err error
		if f, err = detectFormat(obj); err != nil {
			return nil, err
		}
	}
	ex, err := parseRecord(f, obj)
	if err != nil {
		return nil, err
	}
	r.format = f
	return ex, nil
}

// readLine returns the next line without its newline, reusing r.buf. A
// line longer than the limit is consumed but not kept, and reported as
// tooLong. It returns io.EOF only when no bytes remain.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	if cap(r.buf) > 4<<20 {
		r.buf = nil // do not hold one huge line's buffer for the rest of the file
	}
	r.buf = r.buf[:0]
	got := false
	for {
		frag, err := r.br.ReadSlice('\n')
		got = got || len(frag) > 0
		if !tooLong && len(r.buf)+len(frag) > r.opt.MaxLineBytes+1 {
			tooLong = true
			r.buf = r.buf[:0]
		}
		if !tooLong {
			r.buf = append(r.buf, frag...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && !got:
			return nil, false, io.EOF
		case err != nil && err != io.EOF:
			r.line++
			return nil, false, err
		}
		r.line++
		return bytes.TrimSuffix(r.buf, []byte("\n")), tooLong, nil
	}
}

// Load reads every example of the JSONL file at path. It returns the
// examples, the report of skipped lines (with opt.SkipBad), and an error
// when the file cannot be read or (without SkipBad) a line is malformed,
// the latter a *LineError naming the file and line.
func Load(path string, opt ReadOptions) ([]Example, Skipped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Skipped{}, err
	}
	defer f.Close()
	r, err := NewReader(f, path, opt)
	if err != nil {
		return nil, Skipped{}, err
	}
	var out []Example
	for {
		ex, err := r.Next()
		if err == io.EOF {
			return out, r.Skipped(), nil
		}
		if err != nil {
			return nil, r.Skipped(), err
		}
		out = append(out, ex)
	}
}

// LoadAs reads every example of the JSONL file at path as type T (Text,
// PromptCompletion, Chat, Preference or Problem), the format following
// from T (with T = Example it is Load). It returns the errors Load returns, and an error when opt.Format
// names another format than T's.
func LoadAs[T Example](path string, opt ReadOptions) ([]T, Skipped, error) {
	var zero T
	if any(zero) != nil { // T is a record type, not Example itself
		if opt.Format != FormatAuto && opt.Format != zero.Format() {
			return nil, Skipped{}, fmt.Errorf("data: format %q asked for %T records", opt.Format, zero)
		}
		opt.Format = zero.Format()
	}
	exs, sk, err := Load(path, opt)
	if err != nil {
		return nil, sk, err
	}
	out := make([]T, len(exs))
	for i, ex := range exs {
		out[i] = ex.(T) // the reader only yields opt.Format's type
	}
	return out, sk, nil
}

// WriteJSONL writes examples to w, one JSON record per line, in the layout
// the Reader reads back. It returns the first write error.
func WriteJSONL[T Example](w io.Writer, examples []T) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // keep "<" and ">" readable in prompts and code
	for i, ex := range examples {
		if err := enc.Encode(ex); err != nil {
			return fmt.Errorf("data: example %d: %w", i, err)
		}
	}
	return bw.Flush()
}

// WriteJSONLFile writes examples to the file at path atomically (through a
// temporary file renamed into place). It returns the error of creating,
// writing or renaming the file.
func WriteJSONLFile[T Example](path string, examples []T) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return WriteJSONL(w, examples) })
}
