package recipes

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// SummaryFile is the run's human-readable summary.
const SummaryFile = "summary.md"

// LatestSuffix names the link runs/<name>-latest that points at a
// recipe's newest default run directory, so that a later recipe can start
// from it (model.checkpoint: runs/arith-pretrain-latest).
const LatestSuffix = "-latest"

// NewRunDir returns the default run directory of a recipe named name
// started at t: root/<name>-<YYYYMMDD-HHMMSS>.
func NewRunDir(root, name string, t time.Time) string {
	return filepath.Join(root, name+"-"+t.Format("20060102-150405"))
}

// linkLatest points <parent>/<name>-latest at dir. A failure only costs
// the convenience of the link, so it is not an error.
func linkLatest(dir, name string) {
	link := filepath.Join(filepath.Dir(dir), name+LatestSuffix)
	if st, err := os.Lstat(link); err == nil && st.Mode()&os.ModeSymlink == 0 {
		return // a real directory of that name is the user's; leave it
	}
	tmp := link + ".tmp"
	os.Remove(tmp)
	if os.Symlink(filepath.Base(dir), tmp) == nil {
		if os.Rename(tmp, link) != nil {
			os.Remove(tmp)
		}
	}
}

// writeSummary writes summary.md for a run that ended with s and runErr.
func writeSummary(r *Recipe, s Summary, runErr error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Name)
	if r.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", r.Description)
	}
	status := "finished"
	switch {
	case errors.Is(runErr, context.Canceled):
		status = fmt.Sprintf("interrupted at step %d; resume with `minnow run --resume %s`", s.Steps, s.RunDir)
	case runErr != nil:
		status = "failed: " + strings.ReplaceAll(runErr.Error(), "\n", " ")
	}
	eval := "-"
	if s.EvalLoss != 0 {
		eval = fmt.Sprintf("%.4f (perplexity %.2f)", s.EvalLoss, math.Exp(s.EvalLoss))
	}
	b.WriteString("| | |\n|---|---|\n")
	for _, row := range [][2]string{
		{"method", s.Method},
		{"status", status},
		{"steps", fmt.Sprintf("%d of %d (this call started at %d)", s.Steps, r.Train.Steps, s.StartStep)},
		{"train loss", fmt.Sprintf("%.4f", s.Loss)},
		{"eval loss", eval},
		{"tokens (this call)", fmt.Sprint(s.Tokens)},
		{"time (this call)", s.Elapsed.Round(time.Millisecond).String()},
		{"last checkpoint", filepath.Base(s.Checkpoint)},
		{"arith accuracy", accuracy(s.ArithAccuracy)},
		{"finished at", time.Now().Format(time.RFC3339)},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", row[0], row[1])
	}
	for _, k := range sortedKeys(s.Extra) {
		fmt.Fprintf(&b, "| %s | %s |\n", k, s.Extra[k])
	}
	b.WriteString(sampleExcerpt(s.RunDir, 5))
	fmt.Fprintf(&b, "\nThe resolved recipe is `%s` and every update is a line of `%s`.\n", RecipeFile, MetricsFile)
	fmt.Fprintf(&b, "Resume or extend it with `minnow run --resume %s [--set train.steps=N]`, plot it with `minnow plot %s`.\n", s.RunDir, s.RunDir)
	return writeFile(s.RunDir, SummaryFile, []byte(b.String()))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sampleExcerpt returns up to n of the run's samples as a Markdown
// section, or "" when it has none.
func sampleExcerpt(dir string, n int) string {
	f, err := os.Open(filepath.Join(dir, SamplesFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for i := 0; i < n && sc.Scan(); i++ {
		var rec sampleRecord
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "\n## Samples (all in `%s`)\n\n", SamplesFile)
		}
		label := "Sample:"
		if rec.Correct != nil {
			label = map[bool]string{true: "Right:", false: "Wrong (want " + rec.Answer + "):"}[*rec.Correct]
		}
		fmt.Fprintf(&b, "%s\n```\n%s%s\n```\n", label, rec.Prompt, rec.Output)
	}
	return b.String()
}

func accuracy(a *float64) string {
	if a == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%% (answers in %s)", 100**a, SamplesFile)
}

// MetricRow is one line of metrics.jsonl: its numeric fields by name
// (step, loss, lr, eval_loss, reward, ...), with the numbers of nested
// objects named parent.child (rewards.correct).
type MetricRow map[string]float64

// parseMetricLine returns the numbers of one metrics line. It returns an
// error when the line is not a JSON object.
func parseMetricLine(b []byte) (MetricRow, error) {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	row := MetricRow{}
	flattenMetrics(row, "", raw)
	return row, nil
}

func flattenMetrics(row MetricRow, prefix string, obj map[string]any) {
	for k, v := range obj {
		switch x := v.(type) {
		case float64:
			row[prefix+k] = x
		case map[string]any:
			flattenMetrics(row, prefix+k+".", x)
		}
	}
}

// ReadMetrics reads dir's metrics.jsonl, merging the lines of each step
// into one row (a later value replaces an earlier one, as when a resumed
// run repeats steps), in step order. It returns an error when the file cannot be read
// or a line is not a JSON object, naming the line.
func ReadMetrics(dir string) ([]MetricRow, error) {
	f, err := os.Open(filepath.Join(dir, MetricsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byStep := map[float64]MetricRow{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		got, err := parseMetricLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", f.Name(), line, err)
		}
		row := byStep[got["step"]]
		if row == nil {
			row = MetricRow{}
			byStep[got["step"]] = row
		}
		for k, v := range got {
			row[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	rows := make([]MetricRow, 0, len(byStep))
	for _, r := range byStep {
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i]["step"] < rows[j]["step"] })
	return rows, nil
}

// RunInfo describes a run directory for listings.
type RunInfo struct {
	// Dir is the run directory.
	Dir string
	// Name, Method and Steps (the planned total) come from its
	// recipe.yaml.
	Name, Method string
	Steps        int
	// Last holds the last value of each metric (the last eval_loss, not
	// the last line's, since evaluations are sparse).
	Last MetricRow
	// Modified is when metrics.jsonl was last written.
	Modified time.Time
}

// ReadRun describes the run directory dir. It returns an error when dir
// holds no readable recipe.yaml; a run without metrics yet has an empty
// Last.
func ReadRun(dir string) (RunInfo, error) {
	info := RunInfo{Dir: dir, Last: MetricRow{}}
	b, err := os.ReadFile(filepath.Join(dir, RecipeFile))
	if err != nil {
		return info, err
	}
	r, err := Parse(b)
	if err != nil {
		return info, fmt.Errorf("%s: %w", filepath.Join(dir, RecipeFile), err)
	}
	info.Name, info.Method, info.Steps = r.Name, r.Method, r.Train.Steps
	if info.Method == "" {
		info.Method = MethodPretrain
	}
	if st, err := os.Stat(filepath.Join(dir, MetricsFile)); err == nil {
		info.Modified = st.ModTime()
	}
	rows, err := ReadMetrics(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, err
	}
	for _, row := range rows {
		for k, v := range row {
			info.Last[k] = v
		}
	}
	return info, nil
}

// ListRuns returns the runs directly under root (or root itself when it
// is a run directory), oldest first. Links such as <name>-latest are
// skipped, since they repeat a run. It returns an error when root cannot
// be read; subdirectories that are not runs are skipped.
func ListRuns(root string) ([]RunInfo, error) {
	if fileExists(filepath.Join(root, RecipeFile)) {
		info, err := ReadRun(root)
		return []RunInfo{info}, err
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var runs []RunInfo
	for _, e := range ents {
		if !e.IsDir() || e.Type()&os.ModeSymlink != 0 {
			continue
		}
		info, err := ReadRun(filepath.Join(root, e.Name()))
		if err != nil {
			continue
		}
		runs = append(runs, info)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Modified.Before(runs[j].Modified) })
	return runs, nil
}
