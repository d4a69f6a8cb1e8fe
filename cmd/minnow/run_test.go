package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minnowml/minnow/recipes"
	"github.com/minnowml/minnow/train"
)

func TestHoistFlags(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	cases := []struct {
		in, want string
	}{
		{"minnow run r.yaml --set a=1 --quiet", "minnow run --set a=1 --quiet r.yaml"},
		{"minnow --threads 2 run r.yaml --set=a=1 --every 5", "minnow --threads 2 run --set=a=1 --every 5 r.yaml"},
		{"minnow train --json r.yaml", "minnow train --json r.yaml"},
		{"minnow plot a b --metric loss --out x.png", "minnow plot --metric loss --out x.png a b"},
		{"minnow validate r.yaml -- --set", "minnow validate r.yaml -- --set"},
		{"minnow bench core --steps 1", "minnow bench core --steps 1"},
		{"minnow recipes cp arith-sft x.yaml --force", "minnow recipes cp --force arith-sft x.yaml"},
		{"minnow import hf dir --out run", "minnow import hf --out run dir"},
		{"minnow tokenizer decode -t tok.gguf 5 -3", "minnow tokenizer decode -t tok.gguf 5 -3"},
		{"minnow run r.yaml --nope", "minnow run r.yaml --nope"},
		{"minnow", "minnow"},
	}
	for _, c := range cases {
		if got := strings.Join(hoistFlags(app, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("hoistFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// runCLI runs minnow with args in the current directory.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(append([]string{"minnow", "--threads", "2"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRecipesCommands(t *testing.T) {
	dir := t.TempDir()
	cp := filepath.Join(dir, "mine.yaml")
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string // a regexp
		stderr string
	}{
		{"ls", []string{"recipes", "ls"}, 0, `(?s)arith-pretrain .*pretrain .*no files needed.*arith-sft .*sft .*shakespeare-pretrain`, ""},
		{"show", []string{"recipes", "show", "arith-sft"}, 0, `(?s)^# .*name: arith-sft\n.*method: sft`, ""},
		{"show-unknown", []string{"recipes", "show", "arith-kto"}, 2, "", `no built-in recipe "arith-kto"\n  what to do: .*recipes ls`},
		{"show-none", []string{"recipes", "show"}, 2, "", "name a built-in recipe"},
		{"cp", []string{"recipes", "cp", "arith-pretrain", cp}, 0, "wrote .*mine.yaml; edit it", ""},
		{"cp-exists", []string{"recipes", "cp", "arith-pretrain", cp}, 2, "", `mine.yaml already exists\n  what to do: .*--force`},
		{"cp-force", []string{"recipes", "cp", "--force", "arith-sft", cp}, 0, "wrote", ""},
		{"cp-args", []string{"recipes", "cp", "arith-sft"}, 2, "", "takes NAME FILE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errOut)
			}
			if !regexp.MustCompile(c.stdout).MatchString(out) || !regexp.MustCompile(c.stderr).MatchString(errOut) {
				t.Fatalf("stdout %q, stderr %q; want %q and %q", out, errOut, c.stdout, c.stderr)
			}
		})
	}
	b, _ := os.ReadFile(cp)
	want, _ := recipes.Builtin("arith-sft")
	if !bytes.Equal(b, want) {
		t.Fatal("recipes cp --force did not write the built-in recipe")
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	const ok = "name: v\nmodel: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32}\n" +
		"tokenizer: {train: {vocab_size: 300}}\ndata: {arith: {n: 10}, batch: 2, seq: 16}\ntrain: {steps: 3, schedule: {kind: constant, peak_lr: 0.01}}\n"
	good := write("ok.yaml", ok)
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"ok", []string{good}, 0, ""},
		{"builtin", []string{"arith-pretrain"}, 0, ""},
		{"unknown-key", []string{write("k.yaml", strings.Replace(ok, "batch:", "bacth:", 1))}, 2,
			`line 4: data.bacth: unknown key "bacth"; did you mean "batch"\?\n  what to do: `},
		{"wrong-type", []string{write("t.yaml", strings.Replace(ok, "steps: 3", "steps: three", 1))}, 2, `line 5: train.steps: "three" has the wrong type \(allowed: an integer\)`},
		{"range", []string{good, "--set", "data.seq=0"}, 2, `data.seq: 0 is out of range \(allowed: a positive integer\)`},
		{"missing-file", []string{good, "--set", "tokenizer={path: /nope/tok.gguf}"}, 2, `tokenizer.path: file /nope/tok.gguf does not exist\n  what to do: create the file, or point at another with --set tokenizer.path=PATH`},
		{"latest-missing", []string{"arith-sft", "--set", "model.checkpoint=" + filepath.Join(dir, "runs/arith-pretrain-latest")}, 2, "what to do: run `minnow run arith-pretrain` first"},
		{"set-unknown", []string{good, "--set", "train.schedule.peak=1"}, 2, `--set train.schedule.peak: unknown key "peak"; did you mean "peak_lr"\?`},
		{"set-malformed", []string{good, "--set", "train.steps"}, 2, "want key.path=value"},
		// A YAML list's commas stay inside the one --set value.
		{"set-list", []string{good, "--set", "data.arith.levels=[short,medium,long]", "--set", "data.arith.ops=[+,-]"}, 0, ""},
		{"set-list-bad", []string{good, "--set", "data.arith.levels=[short,short]"}, 2, `data.arith.levels: level "short" appears twice`},
		{"level-fraction", []string{good, "--set", "data.arith.level_fraction=2"}, 2, `data.arith.level_fraction: 2 is out of range \(allowed: 0 to 1\)`},
		{"no-recipe", []string{filepath.Join(dir, "none.yaml")}, 2, `none.yaml: no such recipe file or built-in recipe\n  what to do: .*recipes ls`},
		{"no-args", []string{}, 2, "validate takes one RECIPE"},
		{"directory", []string{dir}, 2, `is a directory, not a recipe\n  what to do: to continue a run, use ` + "`minnow run --resume"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"validate"}, c.args...)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errOut)
			}
			if c.code == 0 && !strings.Contains(out, ": ok (method ") {
				t.Fatalf("stdout %q", out)
			}
			if c.code != 0 && (!strings.HasPrefix(errOut, "minnow: ") || !regexp.MustCompile(c.stderr).MatchString(errOut)) {
				t.Fatalf("stderr %q, want %q", errOut, c.stderr)
			}
		})
	}
}

// tinySets returns --set flags that shrink the built-in recipe b to a few
// steps of a tiny model. Only keys the recipe already uses are
// overridden, so that the overrides stay valid for any recipe.
func tinySets(t *testing.T, b []byte) []string {
	r, err := recipes.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	sets := []string{"train.steps=4", "train.eval_every=2", "train.eval_batches=1", "train.checkpoint_every=0",
		"train.schedule.warmup_steps=0", "data.batch=2", "data.seq=64"}
	if r.Model.Inline != nil {
		sets = append(sets, "model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=1",
			"model.num_attention_heads=2", "model.num_key_value_heads=1", "model.max_position_embeddings=64")
	}
	if r.Tokenizer.Train != nil {
		sets = append(sets, "tokenizer.train.vocab_size=300")
	}
	if r.Data.Arith != nil {
		sets = append(sets, "data.arith.n=200")
		// Verbose worked solutions outgrow the tiny context.
		if r.Data.Arith.Verbose > 0 {
			sets = append(sets, "data.arith.verbose=0")
		}
		if len(r.Data.Arith.LevelVerbose) > 0 {
			sets = append(sets, "data.arith.level_verbose=null")
		}
	}
	if r.Sample != nil {
		sets = append(sets, "sample.max_new_tokens=8")
		if r.Sample.Arith > 0 {
			sets = append(sets, "sample.arith=2")
		}
	}
	var out []string
	for _, s := range sets {
		out = append(out, "--set", s)
	}
	return out
}

// TestBuiltinSmoke runs every built-in recipe at tiny size for a few
// steps through `minnow run`, in the order their model.checkpoint links
// (<name>-latest) need, then lists, resumes and plots the runs.
func TestBuiltinSmoke(t *testing.T) {
	if os.Getenv("MINNOW_DATA") == "" {
		t.Skip("MINNOW_DATA is not set; shakespeare-pretrain reads Tiny Shakespeare")
	}
	t.Chdir(t.TempDir())
	list, err := recipes.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	runDir := map[string]string{}
	for pending := list; len(pending) > 0; {
		var later []recipes.BuiltinInfo
		for _, b := range pending {
			src, _ := recipes.Builtin(b.Name)
			r, err := recipes.Parse(src)
			if err != nil {
				t.Fatal(err)
			}
			args := append([]string{"run", b.Name, "--json"}, tinySets(t, src)...)
			if ck := r.Model.Checkpoint; strings.HasSuffix(ck, recipes.LatestSuffix) {
				dep, ok := runDir[strings.TrimSuffix(filepath.Base(ck), recipes.LatestSuffix)]
				if !ok {
					later = append(later, b)
					continue
				}
				args = append(args, "--set", "model.checkpoint="+dep)
			}
			t.Run(b.Name, func(t *testing.T) {
				code, out, errOut := runCLI(args...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				var last map[string]any
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["status"] != "finished" || last["step"] != 4.0 {
					t.Fatalf("last JSON line %q (%v)", lines[len(lines)-1], err)
				}
				if len(lines) != 5 {
					t.Fatalf("want 4 metric lines and the summary, got %q", out)
				}
				dir := last["run_dir"].(string)
				if !strings.HasPrefix(dir, filepath.Join("runs", b.Name+"-")) {
					t.Fatalf("run dir %s, want runs/%s-<timestamp>", dir, b.Name)
				}
				for _, f := range []string{recipes.RecipeFile, recipes.MetricsFile, recipes.SummaryFile, recipes.TokenizerFile, "step-000004.ckpt"} {
					if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
						t.Error(err)
					}
				}
				if r.Sample != nil {
					b, err := os.ReadFile(filepath.Join(dir, recipes.SamplesFile))
					n := len(r.Sample.Prompts)
					if r.Sample.Arith > 0 {
						n += 2 // tinySets asks for two problems
					}
					if err != nil || strings.Count(string(b), "\n") != n {
						t.Errorf("%s: %v, want %d samples:\n%s", recipes.SamplesFile, err, n, b)
					}
				}
				if r.Sample != nil && r.Sample.Arith > 0 {
					if _, ok := last["arith_accuracy"]; !ok {
						t.Errorf("no arith_accuracy in %v", last)
					}
				}
				runDir[b.Name] = dir
			})
			if t.Failed() {
				t.FailNow()
			}
		}
		if len(later) == len(pending) {
			t.Fatalf("built-in recipes %v start from runs no built-in recipe makes", later)
		}
		pending = later
	}

	// Resume the pretraining run with more steps, as a user extends one.
	pre := runDir["arith-pretrain"]
	code, out, errOut := runCLI("run", "--resume", pre, "--set", "train.steps=6", "--quiet")
	if code != 0 || strings.TrimSpace(out) != pre {
		t.Fatalf("resume: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	info, err := recipes.ReadRun(pre)
	if err != nil || info.Steps != 6 || info.Last["step"] != 6 {
		t.Fatalf("resumed run: %+v, %v", info, err)
	}
	if code, _, errOut := runCLI("run", "--resume", "nowhere"); code != 2 || !strings.Contains(errOut, "--resume nowhere: no recipe.yaml there") {
		t.Fatalf("resume of no run: exit %d, %s", code, errOut)
	}

	code, out, _ = runCLI("runs", "ls")
	var names []string
	for name := range runDir {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !regexp.MustCompile(regexp.QuoteMeta(filepath.Base(runDir[name])) + ` +│ \w+ +│ [46]/[46]`).MatchString(out) {
			t.Errorf("runs ls shows no finished %s:\n%s", name, out)
		}
	}
	if code != 0 || strings.Contains(out, recipes.LatestSuffix) {
		t.Errorf("runs ls: exit %d, and it must skip the -latest links:\n%s", code, out)
	}

	dirs := make([]string, 0, len(runDir))
	for _, name := range names {
		dirs = append(dirs, runDir[name])
	}
	cases := []struct {
		name string
		args []string
		code int
		file string
	}{
		{"png", append([]string{"plot", "--out", "all.png"}, dirs...), 0, "all.png"},
		{"svg", []string{"plot", pre, "--metric", "loss,lr,eval_loss", "--out", "one.svg"}, 0, "one.svg"},
		{"default-out", []string{"plot", pre}, 0, filepath.Join(pre, "plot.png")},
		{"empty-metric", []string{"plot", pre, "--metric", ","}, 2, ""},
		{"by-name", []string{"plot", "arith-sft" + recipes.LatestSuffix, "--out", "byname.png"}, 0, "byname.png"},
		{"bad-metric", []string{"plot", pre, "--metric", "reward"}, 2, ""},
		{"bad-format", []string{"plot", pre, "--out", "x.gif"}, 2, ""},
		{"not-a-run", []string{"plot", "nowhere"}, 2, ""},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d: %s", c.name, code, c.code, errOut)
			continue
		}
		if c.file != "" {
			b, err := os.ReadFile(c.file)
			if err != nil || len(b) < 1000 {
				t.Errorf("%s: %s: %v (%d bytes)", c.name, c.file, err, len(b))
			}
		}
	}
}

// TestProgressModes: without a terminal, progress prints plain lines
// every --every steps and at evaluations and the end; --json prints the
// metric objects; --quiet prints nothing.
func TestProgressModes(t *testing.T) {
	eval := 2.5
	ms := []float64{1, 2, 3, 4, 5, 6}
	cases := []struct {
		name        string
		quiet, json bool
		want        []int // steps printed
	}{
		{"plain", false, false, []int{2, 3, 4, 6}},
		{"json", false, true, []int{1, 2, 3, 4, 5, 6}},
		{"quiet", true, false, nil},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		p := &progress{w: &buf, every: 2, total: 6, first: -1, quiet: c.quiet, json: c.json}
		for i, loss := range ms {
			m := metricAt(i+1, loss)
			if i+1 == 3 {
				m.EvalLoss = &eval
			}
			p.update(m)
		}
		var got []int
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var step int
			if c.json {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("%s: %q is not JSON", c.name, line)
				}
				step = int(m["step"].(float64))
			} else if _, err := fmtSscanf(line, &step); err != nil {
				t.Fatalf("%s: %q", c.name, line)
			}
			got = append(got, step)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: printed steps %v, want %v:\n%s", c.name, got, c.want, buf.String())
		}
		if c.name == "plain" && !strings.Contains(buf.String(), "step 3/6 loss 3.0000 lr 0 tok/s 0 ETA ") ||
			c.name == "plain" && !strings.Contains(buf.String(), " reward 0.3 eval_loss 2.5000\n") {
			t.Errorf("plain lines lack the loss, a method's reward or the eval loss:\n%s", buf.String())
		}
	}
}

// metricAt is the update of step with loss, as Run reports it.
func metricAt(step int, loss float64) recipes.Progress {
	m := train.Metric{Step: step, Loss: loss}
	line, _ := json.Marshal(m)
	return recipes.Progress{Metric: m, Values: recipes.MetricRow{"step": float64(step), "loss": loss, "reward": loss / 10}, Line: line}
}

// fmtSscanf reads the step of a plain progress line.
func fmtSscanf(line string, step *int) (int, error) { return fmt.Sscanf(line, "step %d/", step) }

// TestRunFails: a recipe that validates but cannot run (too little data
// for one batch) exits with 1, one error line naming the run directory,
// and what to do.
func TestRunFails(t *testing.T) {
	t.Chdir(t.TempDir())
	os.WriteFile("f.yaml", []byte("name: f\n"+
		"model: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 64}\n"+
		"tokenizer: {train: {vocab_size: 300}}\ndata: {arith: {n: 1}, batch: 64, seq: 64}\n"+
		"train: {steps: 2, schedule: {kind: constant, peak_lr: 0.01}}\n"), 0o644)
	code, _, errOut := runCLI("run", "f.yaml", "--out", "runs/f")
	want := regexp.MustCompile(`^minnow: run runs/f failed: .*no train windows.*\n  what to do: fix the cause and run it again\n$`)
	if code != 1 || !want.MatchString(errOut) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI("run", "f.yaml", "--quiet", "--json"); code != 2 {
		t.Fatalf("--quiet with --json must be bad input, got exit %d", code)
	}
	if code, _, _ := runCLI("run", "f.yaml", "--resume", "runs/f"); code != 2 {
		t.Fatalf("RECIPE with --resume must be bad input, got exit %d", code)
	}
}

// TestRunsLsWithoutRuns: before any run, runs ls says how to start one;
// a directory that does not exist is bad input.
func TestRunsLsWithoutRuns(t *testing.T) {
	t.Chdir(t.TempDir())
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"runs", "ls"}, 0, "no runs under runs; start one with `minnow run RECIPE`"},
		{[]string{"runs", "ls", "nope"}, 2, "open nope"},
		{[]string{"runs", "ls", "a", "b"}, 2, "at most one DIR"},
	}
	for _, c := range cases {
		code, out, errOut := runCLI(c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("%v: exit %d, output %q %q; want %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
}

func TestPresentMetrics(t *testing.T) {
	runs := map[string][]recipes.MetricRow{
		"a": {{"step": 1, "loss": 2}, {"step": 2, "loss": 1, "eval_loss": 1.5}},
		"b": {{"step": 1, "loss": 2, "reward": 0.5}},
	}
	cases := []struct {
		runs map[string][]recipes.MetricRow
		want []string
	}{
		{runs, []string{"loss", "eval_loss", "reward"}},
		{map[string][]recipes.MetricRow{"a": runs["a"]}, []string{"loss", "eval_loss"}},
		{map[string][]recipes.MetricRow{"c": nil}, nil},
	}
	for _, c := range cases {
		if got := presentMetrics(c.runs, defaultPlotMetrics); !reflect.DeepEqual(got, c.want) {
			t.Errorf("presentMetrics = %v, want %v", got, c.want)
		}
	}
}

func TestResolveRun(t *testing.T) {
	t.Chdir(t.TempDir())
	os.MkdirAll(filepath.Join("runs", "a-1"), 0o755)
	os.MkdirAll("b", 0o755)
	os.MkdirAll(filepath.Join("runs", "b"), 0o755)
	cases := []struct{ arg, want string }{
		{"a-1", filepath.Join("runs", "a-1")},
		{filepath.Join("runs", "a-1"), filepath.Join("runs", "a-1")},
		{"b", "b"}, // an existing directory wins
		{"none", "none"},
		{"", ""},
	}
	for _, c := range cases {
		if got := resolveRun(c.arg); got != c.want {
			t.Errorf("resolveRun(%q) = %q, want %q", c.arg, got, c.want)
		}
	}
}

// TestInterruptResume stops a run as Ctrl-C does once it has logged a few
// updates: it exits with 130 saying how to resume, and --resume then
// finishes it from the saved step.
func TestInterruptResume(t *testing.T) {
	t.Chdir(t.TempDir())
	metrics := filepath.Join("runs", "i", recipes.MetricsFile)
	saved := interruptContext
	interruptContext = func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for ctx.Err() == nil {
				if b, _ := os.ReadFile(metrics); bytes.Count(b, []byte("\n")) >= 3 {
					cancel()
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		return ctx, cancel
	}
	t.Cleanup(func() { interruptContext = saved })
	args := append([]string{"run", "arith-pretrain", "--out", filepath.Join("runs", "i"), "--quiet"}, tinySetsFor(t, "arith-pretrain")...)
	args = append(args, "--set", "train.steps=400")
	code, out, errOut := runCLI(args...)
	want := regexp.MustCompile(`^minnow: interrupted at step (\d+); a checkpoint is saved\n  what to do: continue with ` + "`" + `minnow run --resume runs/i` + "`" + `\n$`)
	m := want.FindStringSubmatch(errOut)
	if code != exitInterrupted || m == nil || strings.TrimSpace(out) != filepath.Join("runs", "i") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	interruptContext = saved
	code, out, errOut = runCLI("run", "--resume", "i", "--set", "train.steps=12", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last map[string]any
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if code != 0 || last["step"] != 12.0 || fmt.Sprint(last["start_step"]) != m[1] {
		t.Fatalf("resume: exit %d, last line %v (want start_step %s), stderr %s", code, last, m[1], errOut)
	}
}

// tinySetsFor is tinySets for the built-in recipe name.
func tinySetsFor(t *testing.T, name string) []string {
	b, err := recipes.Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	return tinySets(t, b)
}
