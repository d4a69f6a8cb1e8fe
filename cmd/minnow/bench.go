package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/internal/bench"
	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

func benchCmd() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure performance",
		Subcommands: []*cli.Command{tokenizeBenchCmd(), trainBenchCmd(), generateBenchCmd(), loraBenchCmd(), rolloutBenchCmd(), {
			Name:  "core",
			Usage: "SGEMM rate and GPT-2-shaped training steps (4 layers, width 256, vocab 50257, batch 4 x 64 tokens)",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "steps", Value: 10, Usage: "timed training steps"},
				&cli.IntFlag{Name: "warmup", Value: 3, Usage: "untimed steps first"},
				&cli.IntFlag{Name: "batch", Value: 4},
				&cli.IntFlag{Name: "seq", Value: 64},
				&cli.IntFlag{Name: "vocab", Value: bench.DefaultGPT.Vocab, Usage: "vocabulary size (smaller for a quick check)"},
				&cli.BoolFlag{Name: "quiet", Usage: "print only the RESULT line"},
			},
			Action: func(c *cli.Context) error {
				if c.Int("steps") < 1 || c.Int("batch") < 1 || c.Int("seq") < 1 || c.Int("vocab") < 2 || c.Int("warmup") < 0 {
					return usageErr{errors.New("--steps, --batch and --seq must be positive, --vocab at least 2 and --warmup not negative")}
				}
				be := backend(c)
				cfg := bench.DefaultGPT
				cfg.Context, cfg.Vocab = c.Int("seq"), c.Int("vocab")
				var progress func(string)
				out := c.App.Writer
				if !c.Bool("quiet") {
					fmt.Fprintln(out, "backend:", be.Describe())
					progress = func(s string) { fmt.Fprintln(out, s) }
				}
				var res bench.CoreResult
				err := tensor.Catch(func() {
					res = bench.Core(be, cfg, c.Int("batch"), c.Int("seq"), c.Int("warmup"), c.Int("steps"), progress)
				})
				if err != nil {
					return err
				}
				if !c.Bool("quiet") {
					fmt.Fprintf(out, "loss %.4f -> %.4f; per step: %.0f new buffers, %.0f Go heap objects (%.0f KB)\n",
						res.FirstLoss, res.LastLoss, res.AllocsPerStep, res.HeapObjectsPerStep, res.HeapBytesPerStep/1024)
				}
				fmt.Fprintln(out, res.Line())
				return nil
			},
		}},
	}
}

// smolFlags are the size overrides of the SmolLM-135M-shaped benchmarks,
// so that tests can run a tiny model through the same command.
func smolFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "layers", Value: bench.SmolLM135M.NumHiddenLayers, Usage: "blocks (fewer for a quick check)"},
		&cli.IntFlag{Name: "vocab", Value: bench.SmolLM135M.VocabSize, Usage: "vocabulary size (smaller for a quick check)"},
	}
}

// smolConfig returns the SmolLM-135M-shaped config with the command's
// overrides, or a usage error when they are out of range.
func smolConfig(c *cli.Context) (model.Config, error) {
	if c.Int("layers") < 1 || c.Int("vocab") < 2 {
		return model.Config{}, usageErr{errors.New("--layers must be positive and --vocab at least 2")}
	}
	cfg := bench.SmolLM135M
	cfg.NumHiddenLayers, cfg.VocabSize = c.Int("layers"), c.Int("vocab")
	return cfg, nil
}

func trainBenchCmd() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "training steps of a SmolLM-135M-shaped llama with random weights (batch 1 x 256 tokens)",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "steps", Value: 5, Usage: "timed training steps (the median counts)"},
			&cli.IntFlag{Name: "warmup", Value: 1, Usage: "untimed steps first"},
			&cli.IntFlag{Name: "batch", Value: 1},
			&cli.IntFlag{Name: "seq", Value: 256},
		}, smolFlags()...),
		Action: func(c *cli.Context) error {
			if c.Int("steps") < 1 || c.Int("batch") < 1 || c.Int("seq") < 1 || c.Int("warmup") < 0 {
				return usageErr{errors.New("--steps, --batch and --seq must be positive and --warmup not negative")}
			}
			cfg, err := smolConfig(c)
			if err != nil {
				return err
			}
			res, err := bench.TrainBench(backend(c), cfg, c.Int("batch"), c.Int("seq"), c.Int("warmup"), c.Int("steps"))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, res.Line())
			return nil
		},
	}
}

func generateBenchCmd() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "greedy prefill and decode speed of a SmolLM-135M-shaped llama with random weights, one RESULT line per batch size",
		Flags: append([]cli.Flag{
			&cli.IntSliceFlag{Name: "batch", Value: cli.NewIntSlice(1, 16), Usage: "batch sizes, one RESULT line each"},
			&cli.IntFlag{Name: "prompt", Value: 128, Usage: "prompt tokens per row"},
			&cli.IntFlag{Name: "new", Value: 32, Usage: "generated tokens per row (at least 2)"},
			&cli.IntFlag{Name: "reps", Value: 2, Usage: "timed runs of each kind (the median counts)"},
		}, smolFlags()...),
		Action: func(c *cli.Context) error {
			batches := c.IntSlice("batch")
			if len(batches) == 0 || c.Int("prompt") < 1 || c.Int("new") < 2 || c.Int("reps") < 1 {
				return usageErr{errors.New("--prompt and --reps must be positive, --new at least 2, and --batch given")}
			}
			for _, b := range batches {
				if b < 1 {
					return usageErr{fmt.Errorf("--batch %d is not positive", b)}
				}
			}
			cfg, err := smolConfig(c)
			if err != nil {
				return err
			}
			be := backend(c)
			for _, b := range batches {
				res, err := bench.GenerateBench(be, cfg, b, c.Int("prompt"), c.Int("new"), c.Int("reps"))
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, res.Line())
			}
			return nil
		},
	}
}

func tokenizeBenchCmd() *cli.Command {
	dataDir := os.Getenv("MINNOW_DATA")
	return &cli.Command{
		Name:  "tokenize",
		Usage: "GPT-2 tokenizer speed on Tiny Shakespeare, optionally against tiktoken (npm) with an id comparison",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "vocab", Value: filepath.Join(dataDir, "tokenizers/gpt2/vocab.json"), Usage: "GPT-2 vocab.json"},
			&cli.StringFlag{Name: "merges", Value: filepath.Join(dataDir, "tokenizers/gpt2/merges.txt"), Usage: "GPT-2 merges.txt"},
			&cli.StringFlag{Name: "text", Value: filepath.Join(dataDir, "text/tinyshakespeare/input.txt"), Usage: "text to encode"},
			&cli.IntFlag{Name: "reps", Value: 5, Usage: "timed passes (the median counts)"},
			&cli.BoolFlag{Name: "compare", Usage: "also run tiktoken through node and compare ids"},
			&cli.StringFlag{Name: "node-dir", Value: "tools/node", Usage: "where the npm peer is installed"},
		},
		Action: func(c *cli.Context) error {
			if c.Int("reps") < 1 {
				return usageErr{errors.New("--reps must be positive")}
			}
			v, err := tokenizer.LoadVocabMerges(c.String("vocab"), c.String("merges"))
			if err != nil {
				return usageErr{err}
			}
			if _, err := tokenizer.New(v); err != nil {
				return err
			}
			newTok := func() tokenizer.Tokenizer {
				tok, _ := tokenizer.New(v) // the same vocabulary built once above
				return tok
			}
			text, err := os.ReadFile(c.String("text"))
			if err != nil {
				return usageErr{err}
			}
			var res bench.TokenizeResult
			var ids []int32
			res.MBPerS, ids = bench.Tokenize(newTok, string(text), c.Int("reps"))
			res.Tokens = len(ids)
			if c.Bool("compare") {
				if err := bench.ComparePeer(c.String("node-dir"), c.String("text"), ids, &res); err != nil {
					return err
				}
			}
			fmt.Fprintln(c.App.Writer, res.Line())
			if res.Peer && !res.IdsIdentical {
				return fmt.Errorf("ids differ from tiktoken's from token %d on", res.FirstMismatch)
			}
			return nil
		},
	}
}

// loraBenchEnv marks a child process of the LoRA benchmark, so that a test
// binary standing in for minnow knows to run the command line it was given.
const loraBenchEnv = "MINNOW_BENCH_CHILD"

func loraBenchCmd() *cli.Command {
	return &cli.Command{
		Name: "lora",
		Usage: "peak memory and step time of full fine-tuning against LoRA (r 16, all linears) of a SmolLM-135M-shaped llama " +
			"with random weights (batch 1 x 256 tokens), each mode in its own process",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "steps", Value: 3, Usage: "timed training steps per mode (the median counts)"},
			&cli.IntFlag{Name: "warmup", Value: 1, Usage: "untimed steps first"},
			&cli.IntFlag{Name: "batch", Value: 1},
			&cli.IntFlag{Name: "seq", Value: 256},
			&cli.IntFlag{Name: "r", Value: 16, Usage: "LoRA rank (alpha is twice it)"},
			&cli.StringFlag{Name: "mode", Usage: "run one mode, full or lora, in this process and print its MODE line (the benchmark runs each in a child)"},
		}, smolFlags()...),
		Action: func(c *cli.Context) error {
			if c.Int("steps") < 1 || c.Int("batch") < 1 || c.Int("seq") < 1 || c.Int("warmup") < 0 || c.Int("r") < 1 {
				return usageErr{errors.New("--steps, --batch, --seq and --r must be positive and --warmup not negative")}
			}
			cfg, err := smolConfig(c)
			if err != nil {
				return err
			}
			switch mode := c.String("mode"); mode {
			case "full", "lora":
				res, err := loraBenchMode(backend(c), cfg, mode, c.Int("batch"), c.Int("seq"), c.Int("r"), c.Int("warmup"), c.Int("steps"))
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, res.line())
				return nil
			case "":
			default:
				return usageErr{fmt.Errorf("--mode %q: want full or lora", mode)}
			}
			var got [2]loraModeResult
			for i, mode := range []string{"full", "lora"} {
				if got[i], err = loraBenchChild(c, mode); err != nil {
					return err
				}
			}
			full, lo := got[0], got[1]
			fmt.Fprintf(c.App.Writer, "RESULT full_peak_rss_mb=%.1f lora_peak_rss_mb=%.1f rss_ratio=%.3f full_step_ms=%.1f lora_step_ms=%.1f\n",
				full.PeakRSSMB, lo.PeakRSSMB, lo.PeakRSSMB/full.PeakRSSMB, full.StepMS, lo.StepMS)
			return nil
		},
	}
}

// loraModeResult is what one mode of the LoRA benchmark measured.
type loraModeResult struct {
	Mode              string
	StepMS, PeakRSSMB float64
	Trainable         int
	FirstLoss, Loss   float64
}

func (r loraModeResult) line() string {
	return fmt.Sprintf("MODE mode=%s step_ms=%.2f peak_rss_mb=%.1f trainable=%d first_loss=%.4f last_loss=%.4f",
		r.Mode, r.StepMS, r.PeakRSSMB, r.Trainable, r.FirstLoss, r.Loss)
}

// loraBenchChild runs one mode of the benchmark in a child process of
// this executable, so that each peak RSS is the mode's own, and parses
// its MODE line.
func loraBenchChild(c *cli.Context, mode string) (loraModeResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return loraModeResult{}, fmt.Errorf("bench lora: %w", err)
	}
	var args []string
	if c.IsSet("threads") {
		args = append(args, "--threads", strconv.Itoa(c.Int("threads")))
	}
	args = append(args, "bench", "lora", "--mode", mode)
	for _, f := range []string{"steps", "warmup", "batch", "seq", "r", "layers", "vocab"} {
		args = append(args, "--"+f, strconv.Itoa(c.Int(f)))
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), loraBenchEnv+"=1")
	cmd.Stderr = c.App.ErrWriter
	out, err := cmd.Output()
	if err != nil {
		return loraModeResult{}, fmt.Errorf("bench lora: %s mode: %w", mode, err)
	}
	return parseModeLine(string(out))
}

// parseModeLine reads the MODE line of a child's output.
func parseModeLine(out string) (loraModeResult, error) {
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "MODE ")
		if !ok {
			continue
		}
		var r loraModeResult
		if _, err := fmt.Sscanf(rest, "mode=%s step_ms=%g peak_rss_mb=%g trainable=%d first_loss=%g last_loss=%g",
			&r.Mode, &r.StepMS, &r.PeakRSSMB, &r.Trainable, &r.FirstLoss, &r.Loss); err != nil {
			return r, fmt.Errorf("bench lora: child line %q: %w", line, err)
		}
		return r, nil
	}
	return loraModeResult{}, fmt.Errorf("bench lora: no MODE line in the child's output %q", out)
}

// loraBenchMode times training steps (forward, backward, clipping, AdamW)
// of the model either fully trained or with LoRA adapters of rank r on
// every linear layer and the base frozen, and reads this process's peak
// RSS over the steps (see resetPeakRSS). Both modes run the same step
// code, so the difference is the trained parameters alone.
func loraBenchMode(be tensor.Backend, cfg model.Config, mode string, batch, seq, r, warmup, steps int) (loraModeResult, error) {
	res := loraModeResult{Mode: mode}
	cfg.MaxPositionEmbeddings = max(cfg.MaxPositionEmbeddings, seq)
	m, err := model.New(cfg, be, tensor.Float32, 1)
	if err != nil {
		return res, err
	}
	var groups []train.ParamGroup
	if mode == "full" {
		decay, keep := model.DecaySplit(m.Params())
		groups = []train.ParamGroup{{Params: decay}, {Params: keep, NoDecay: true}}
	} else {
		ad, err := lora.Apply(m, lora.Config{R: r, Alpha: 2 * float64(r), Targets: lora.Targets{lora.AllLinear}, Seed: 1})
		if err != nil {
			return res, err
		}
		groups = []train.ParamGroup{{Params: model.Tensors(ad.Params())}}
	}
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 3e-4, WeightDecay: 0.1}, groups...)
	if err != nil {
		return res, err
	}
	for _, p := range opt.Params() {
		res.Trainable += p.Len()
	}
	// Random initialisation leaves float64 buffers of the whole model's
	// size behind; loaded weights would not, so the peak is taken over the
	// training steps alone, with the weights and optimizer state resident.
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	rng := tensor.NewRNG(2)
	ids := make([]int32, batch*(seq+1))
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
	}
	x, y := make([]int32, 0, batch*seq), make([]int32, 0, batch*seq)
	for b := range batch {
		row := ids[b*(seq+1) : (b+1)*(seq+1)]
		x, y = append(x, row[:seq]...), append(y, row[1:]...)
	}
	var times []float64
	var stepErr error
	err = tensor.Catch(func() {
		xt, yt := tensor.From(be, tensor.Int32, x, batch, seq), tensor.From(be, tensor.Int32, y, batch, seq)
		defer xt.Release()
		defer yt.Release()
		for i := range warmup + steps {
			t0 := time.Now()
			l := m.Loss(xt, yt)
			l.Backward()
			if stepErr = opt.Step(3e-4, train.ClipScale(train.GradNorm(opt.Params()), 1)); stepErr != nil {
				return
			}
			res.Loss = l.Item()
			l.Release()
			if i == 0 {
				res.FirstLoss = res.Loss
			}
			if i >= warmup {
				times = append(times, time.Since(t0).Seconds())
			}
		}
	})
	if err = errors.Join(err, stepErr); err != nil {
		return res, err
	}
	slices.Sort(times)
	res.StepMS = times[len(times)/2] * 1e3
	if len(times)%2 == 0 {
		res.StepMS = (times[len(times)/2-1] + times[len(times)/2]) / 2 * 1e3
	}
	res.PeakRSSMB = float64(bench.PeakRSS()) / (1 << 20)
	return res, nil
}

// resetPeakRSS restarts the kernel's count of this process's peak resident
// set (VmHWM), which Linux does on writing 5 to /proc/self/clear_refs.
// Elsewhere it does nothing, and the peak includes what came before.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
