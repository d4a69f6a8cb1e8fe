package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// Exit codes: 2 for bad input (flags, arguments, recipes), 1 for a
// failed run, 130 for a run stopped by Ctrl-C (after saving a checkpoint).
const (
	exitFailed      = 1
	exitBadInput    = 2
	exitInterrupted = 130
)

func main() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) }

// run executes the command line args, writing to stdout and stderr, and
// returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.Run(hoistFlags(app, args)); err != nil {
		fmt.Fprintln(stderr, "minnow:", err)
		var h hinted
		if errors.As(err, &h) {
			fmt.Fprintln(stderr, "  what to do:", h.hint)
		}
		var ec exitCode
		if errors.As(err, &ec) {
			return ec.code
		}
		var ue usageErr
		if errors.As(err, &ue) {
			return exitBadInput
		}
		return exitFailed
	}
	return 0
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:           "minnow",
		Usage:          "train, fine-tune, align and distill small language models",
		Flags:          []cli.Flag{&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: MINNOW_THREADS, else all cores)"}},
		Commands:       []*cli.Command{versionCmd(), benchCmd(), tokenizerCmd(), dataCmd(), runCmd(), validateCmd(), recipesCmd(), runsCmd(), plotCmd(), generateCmd(), importCmd(), exportCmd(), inspectCmd(), distillCmd()},
		Writer:         stdout,
		ErrWriter:      stderr,
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {},
		// --set values are YAML, whose lists have commas.
		DisableSliceFlagSeparator: true,
	}
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return usageErr{fmt.Errorf("unknown command %q (see --help)", c.Args().First())}
		}
		return cli.ShowAppHelp(c)
	}
	for _, cmd := range app.Commands {
		setUsageError(cmd)
	}
	return app
}

// setUsageError makes flag errors of cmd and its subcommands bad input.
func setUsageError(cmd *cli.Command) {
	cmd.OnUsageError = usageError
	for _, sub := range cmd.Subcommands {
		setUsageError(sub)
	}
}

// usageErr marks bad input (a flag, an argument, a recipe): exit code 2.
type usageErr struct{ error }

func (e usageErr) Unwrap() error { return e.error }

// exitCode is an error that exits with code.
type exitCode struct {
	code int
	error
}

func (e exitCode) Unwrap() error { return e.error }

// hinted is an error with a line saying what to do about it.
type hinted struct {
	error
	hint string
}

func (e hinted) Unwrap() error { return e.error }

// hoistFlags moves a command's flags ahead of its arguments, so that
// flags may follow them, as in `minnow run arith-sft --set train.steps=10`
// or `minnow recipes cp NAME FILE --force`: urfave/cli stops reading flags
// at the first argument. It finds the command through its subcommands,
// moves only the flags that command defines (an argument such as -3 stays
// an argument), and leaves everything after "--" in place.
func hoistFlags(app *cli.App, args []string) []string {
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if !strings.Contains(args[i], "=") && args[i] != "--help" && args[i] != "-h" {
			i++ // --threads N
		}
		i++
	}
	var cmd *cli.Command
	for cmds := app.Commands; i < len(args); i++ {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
	}
	if cmd == nil || i >= len(args) {
		return args
	}
	takesValue, known := map[string]bool{}, map[string]bool{"help": true, "h": true}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			known[n], takesValue[n] = true, !isBool
		}
	}
	out := append([]string{}, args[:i]...)
	var pos []string
	rest := args[i:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case a == "--":
			pos = append(pos, rest[j:]...)
			j = len(rest)
		case strings.HasPrefix(a, "-") && known[name]:
			out = append(out, a)
			if !hasValue && takesValue[name] && j+1 < len(rest) {
				out = append(out, rest[j+1])
				j++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(out, pos...)
}

func usageError(_ *cli.Context, err error, _ bool) error {
	return usageErr{fmt.Errorf("%w (see --help)", err)}
}

// backend returns the CPU backend with the thread count the flags ask for.
func backend(c *cli.Context) tensor.Backend {
	be := cpu.New(c.Int("threads"))
	tensor.SetDefault(be)
	return be
}

func versionCmd() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the Go runtime and the compute backend in use",
		Action: func(c *cli.Context) error {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintf(c.App.Writer, "minnow %s (%s %s/%s)\nbackend: %s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH, backend(c).Describe())
			return nil
		},
	}
}
