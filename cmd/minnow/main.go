package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// Exit codes: 2 for bad input (flags, arguments), 1 for a failed run.
const (
	exitFailed   = 1
	exitBadInput = 2
)

func main() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) }

// run executes the command line args, writing to stdout and stderr, and
// returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.Run(args); err != nil {
		fmt.Fprintln(stderr, "minnow:", err)
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
		Commands:       []*cli.Command{versionCmd(), benchCmd(), tokenizerCmd(), dataCmd(), trainCmd(), generateCmd()},
		Writer:         stdout,
		ErrWriter:      stderr,
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {},
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

type usageErr struct{ error }

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
