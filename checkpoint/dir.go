package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Dir is a run directory of step-numbered checkpoints, step-000120.ckpt
// for step 120, of which it keeps the newest few. Files are ordered by the
// step in their name. A Dir is not safe for concurrent use, and two runs
// must not share one.
type Dir struct {
	path string
	keep int
}

// OpenDir returns the run directory at path, creating it (and its parents)
// when missing. Save keeps the newest keep checkpoints in it, or all of
// them when keep is 0. It returns an error when keep is negative or the
// directory cannot be created.
func OpenDir(path string, keep int) (*Dir, error) {
	if keep < 0 {
		return nil, fmt.Errorf("checkpoint: run directory %s: keep %d is negative", path, keep)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: run directory: %w", err)
	}
	return &Dir{path: path, keep: keep}, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// StepPath returns the path of the checkpoint of step step.
func (d *Dir) StepPath(step int64) string {
	return filepath.Join(d.path, fmt.Sprintf("step-%06d.ckpt", step))
}

// parseStep returns the step of a checkpoint file name as StepPath writes
// it, and false for any other name: temporary files atomicfile is writing
// (".step-000120.ckpt.tmp-…"), non-canonical spellings and other files.
func parseStep(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, "step-")
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, ".ckpt"); !ok || len(digits) < 6 {
		return 0, false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	step, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || fmt.Sprintf("%06d", step) != digits {
		return 0, false
	}
	return step, true
}

// Steps returns the steps of the checkpoint files in the directory, in
// increasing order, without checking the files. It returns the error from
// reading the directory.
func (d *Dir) Steps() ([]int64, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: run directory: %w", err)
	}
	var steps []int64
	for _, e := range entries {
		if step, ok := parseStep(e.Name()); ok && !e.IsDir() {
			steps = append(steps, step)
		}
	}
	slices.Sort(steps)
	return steps, nil
}

// Save writes c as the checkpoint of step c.Step, atomically, and then
// removes the oldest other checkpoints until at most keep remain. It never
// removes the file it just wrote, and removes nothing until that file is
// safely in place. Checkpoints of later steps, as an abandoned run leaves
// behind after a resume from an earlier step, count as newer and stay;
// Latest would prefer them, so remove them to rewind a run. It returns the
// new file's path, and the error from Save or, with the path still set
// since the new checkpoint is safe, from listing or removing old ones; a
// negative step is an error.
func (d *Dir) Save(c *Checkpoint) (string, error) {
	if c == nil {
		return "", fmt.Errorf("checkpoint: run directory %s: nil checkpoint", d.path)
	}
	if c.Step < 0 {
		return "", fmt.Errorf("checkpoint: run directory %s: negative step %d", d.path, c.Step)
	}
	path := d.StepPath(c.Step)
	if err := Save(path, c); err != nil {
		return "", err
	}
	if d.keep == 0 {
		return path, nil
	}
	steps, err := d.Steps()
	if err != nil {
		return path, fmt.Errorf("checkpoint: saved %s but could not prune old checkpoints: %w", path, err)
	}
	var errs []error
	excess := len(steps) - d.keep
	for _, s := range steps {
		if excess <= 0 {
			break
		}
		if s == c.Step {
			continue
		}
		if err := os.Remove(d.StepPath(s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		excess--
	}
	if len(errs) > 0 {
		return path, fmt.Errorf("checkpoint: saved %s but could not prune old checkpoints: %w", path, errors.Join(errs...))
	}
	return path, nil
}

// SkippedError is the warning Latest returns when it passed over
// checkpoint files that failed verification; Errs holds each file's error,
// newest first.
type SkippedError struct {
	Errs []error
}

// Error lists the skipped files and why each was skipped.
func (e *SkippedError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("checkpoint: skipped %d unusable checkpoint(s): %s", len(e.Errs), strings.Join(msgs, "; "))
}

// Unwrap returns the skipped files' errors, for errors.Is and errors.As.
func (e *SkippedError) Unwrap() []error { return e.Errs }

// Latest returns the newest checkpoint in the directory that passes
// Verify and holds the step its name says, to resume from. Verify reads
// the whole file, so resuming reads it twice; the second read usually
// comes from the page cache.
//
// The results read as follows. ok true: resume from path at step; a
// non-nil err is then a *SkippedError, a warning to report, saying which
// newer files were damaged and passed over. ok false with err nil: the
// directory holds no checkpoint, so start afresh. ok false with err
// non-nil: the directory could not be read, or it holds checkpoints of
// which none is usable (err is then a *SkippedError); starting afresh
// would overwrite that history, so the caller should stop and report.
func (d *Dir) Latest() (path string, step int64, ok bool, err error) {
	steps, err := d.Steps()
	if err != nil {
		return "", 0, false, err
	}
	var skipped []error
	for i := len(steps) - 1; i >= 0; i-- {
		p := d.StepPath(steps[i])
		c, err := Verify(p)
		if err == nil && c.Step != steps[i] {
			err = fmt.Errorf("checkpoint: %s: holds step %d, not the step %d its name says", p, c.Step, steps[i])
		}
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		if len(skipped) > 0 {
			return p, steps[i], true, &SkippedError{Errs: skipped}
		}
		return p, steps[i], true, nil
	}
	if len(skipped) > 0 {
		return "", 0, false, &SkippedError{Errs: skipped}
	}
	return "", 0, false, nil
}
