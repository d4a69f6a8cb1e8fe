package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/recipes"
)

func exportCmd() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export a trained model for other runtimes",
		Subcommands: []*cli.Command{{
			Name:      "gguf",
			Usage:     "write a checkpoint as a GGUF file that llama.cpp and ollama run",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "checkpoint", Usage: "run directory (its newest checkpoint) or checkpoint file; tokenizer.gguf is looked for beside it"},
				&cli.StringFlag{Name: "type", Value: "f16", Usage: "weight type: " + convert.GGUFTypeNames + " (norms and biases stay f32)"},
				&cli.StringFlag{Name: "out", Usage: "GGUF file to write"},
				&cli.StringFlag{Name: "name", Usage: "general.name (default: minnow-<architecture>)"},
				&cli.StringFlag{Name: "chat-template", Usage: "file holding a Jinja chat template to store instead of the tokenizer's"},
			},
			Action: exportGGUF,
		}},
	}
}

func exportGGUF(c *cli.Context) error {
	if c.Args().Present() {
		return usageErr{fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())}
	}
	// Checked here rather than with Required, whose error is not a usage
	// error and would exit 1 instead of 2.
	if c.String("checkpoint") == "" || c.String("out") == "" {
		return usageErr{errors.New("--checkpoint and --out are required (see --help)")}
	}
	typ, err := convert.ParseGGUFType(c.String("type"))
	if err != nil {
		return usageErr{err}
	}
	opt := convert.GGUFOptions{Type: typ, Name: c.String("name")}
	if p := c.String("chat-template"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return usageErr{err}
		}
		opt.ChatTemplate = string(b)
	}
	src, out := c.String("checkpoint"), c.String("out")
	if _, err := os.Stat(src); err != nil {
		return usageErr{err}
	}
	if p, ok := recipes.SoftPromptIn(src); ok {
		return usageErr{fmt.Errorf("%s trained a soft prompt (%s), which a GGUF file cannot carry; to export the frozen base alone, give --checkpoint %s",
			src, p, filepath.Join(src, recipes.ModelFile))}
	}
	m, v, err := recipes.LoadWithVocab(backend(c), src)
	if err != nil {
		return usageErr{err}
	}
	if err := convert.ExportGGUFFile(out, m, v, opt); err != nil {
		return err
	}
	info, err := os.Stat(out)
	if err != nil {
		return err
	}
	// Types fall back where blocks do not fit (see convert.GGUFTensorType),
	// so the file's own table says what was written.
	f, err := gguf.Open(out)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(c.App.Writer, "wrote %s (%s, %s weights; tensors: %s)\n", out, humanBytes(info.Size()), typ, typeCounts(f))
	return nil
}

func inspectCmd() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "print a GGUF file's metadata and tensor table",
		ArgsUsage: "FILE.gguf",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr{errors.New("give one GGUF file")}
			}
			f, err := gguf.Open(c.Args().First())
			if err != nil {
				return usageErr{err}
			}
			defer f.Close()
			return printGGUF(c, f)
		},
	}
}

// printGGUF writes f's metadata table (long arrays summarised) and tensor
// table.
func printGGUF(c *cli.Context, f *gguf.File) error {
	w := c.App.Writer
	fmt.Fprintf(w, "GGUF v%d, alignment %d, %d metadata entries, %d tensors\n", f.Version, f.Alignment, len(f.Metadata), len(f.Tensors))
	t := tablewriter.NewWriter(w)
	t.Header("key", "value")
	var rows [][]string
	for _, kv := range f.Metadata {
		rows = append(rows, []string{kv.Key, summarise(kv.Value)})
	}
	if err := t.Bulk(rows); err != nil {
		return err
	}
	if err := t.Render(); err != nil {
		return err
	}
	t = tablewriter.NewWriter(w)
	t.Header("tensor", "type", "shape", "bytes")
	rows = rows[:0]
	var total uint64
	for _, ti := range f.Tensors {
		dims := make([]string, len(ti.Dims))
		for i, d := range ti.Dims {
			dims[i] = strconv.FormatUint(d, 10)
		}
		rows = append(rows, []string{ti.Name, ti.Type.String(), "[" + strings.Join(dims, ", ") + "]", strconv.FormatUint(ti.Size, 10)})
		total += ti.Size
	}
	if err := t.Bulk(rows); err != nil {
		return err
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintf(w, "tensor data: %s (%s)\n", humanBytes(int64(total)), typeCounts(f))
	return nil
}

// typeCounts lists how many of f's tensors each type has, as "F32 ×3,
// Q8_0 ×1" in the types' order.
func typeCounts(f *gguf.File) string {
	counts := map[string]int{}
	for _, ti := range f.Tensors {
		counts[ti.Type.String()]++
	}
	var types []string
	for k, n := range counts {
		types = append(types, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(types)
	return strings.Join(types, ", ")
}

// summarise renders a metadata value, showing at most a few elements of
// an array and cutting long strings, so that a 150k-token vocabulary
// stays one line.
func summarise(v any) string {
	const maxElems, maxLen = 6, 120
	cut := func(s string) string {
		if len(s) > maxLen {
			return s[:maxLen] + fmt.Sprintf("… (%d bytes)", len(s))
		}
		return s
	}
	switch x := v.(type) {
	case string:
		return cut(strconv.Quote(x))
	case []string:
		var parts []string
		for _, s := range x[:min(len(x), maxElems)] {
			parts = append(parts, strconv.Quote(s))
		}
		return arraySummary("string", len(x), parts)
	}
	s := fmt.Sprint(v)
	if strings.HasPrefix(s, "[") {
		// A numeric array: fmt prints it space-separated.
		f := strings.Fields(strings.Trim(s, "[]"))
		return arraySummary(fmt.Sprintf("%T", v)[2:], len(f), f[:min(len(f), maxElems)])
	}
	return fmt.Sprintf("%s (%T)", cut(s), v)
}

func arraySummary(elem string, n int, shown []string) string {
	s := fmt.Sprintf("[%d %s] [%s", n, elem, strings.Join(shown, ", "))
	if n > len(shown) {
		s += ", …"
	}
	return s + "]"
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
