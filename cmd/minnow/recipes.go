package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/olekukonko/tablewriter"
	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/recipes"
)

func recipesCmd() *cli.Command {
	return &cli.Command{
		Name:  "recipes",
		Usage: "list, show and copy the built-in recipes",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list the built-in recipes (<task>-<method>[-<size>]) with their descriptions",
				Action: func(c *cli.Context) error {
					list, err := recipes.Builtins()
					if err != nil {
						return err
					}
					t := tablewriter.NewWriter(c.App.Writer)
					t.Header("name", "method", "description")
					for _, b := range list {
						if err := t.Append(b.Name, b.Method, b.Description); err != nil {
							return err
						}
					}
					return t.Render()
				},
			},
			{
				Name:      "show",
				Usage:     "print a built-in recipe's YAML",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					b, err := builtinArg(c)
					if err != nil {
						return err
					}
					_, err = c.App.Writer.Write(b)
					return err
				},
			},
			{
				Name:      "cp",
				Usage:     "copy a built-in recipe to FILE to edit it, then `minnow run FILE`",
				ArgsUsage: "NAME FILE",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "overwrite FILE"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return usageErr{errors.New("recipes cp takes NAME FILE")}
					}
					b, err := builtinArg(c)
					if err != nil {
						return err
					}
					dst := c.Args().Get(1)
					flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
					if c.Bool("force") {
						flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
					}
					f, err := os.OpenFile(dst, flags, 0o644)
					if errors.Is(err, os.ErrExist) {
						return hinted{usageErr{fmt.Errorf("%s already exists", dst)}, "pick another FILE, or add --force to overwrite it"}
					}
					if err != nil {
						return usageErr{err}
					}
					if _, err := f.Write(b); err != nil {
						f.Close()
						return err
					}
					if err := f.Close(); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "wrote %s; edit it, check it with `minnow validate %s`, run it with `minnow run %s`\n", dst, dst, dst)
					return nil
				},
			},
		},
	}
}

// builtinArg returns the YAML of the built-in recipe the first argument
// names.
func builtinArg(c *cli.Context) ([]byte, error) {
	if c.NArg() < 1 {
		return nil, hinted{usageErr{errors.New("name a built-in recipe")}, "`minnow recipes ls` lists them"}
	}
	b, err := recipes.Builtin(c.Args().First())
	if err != nil {
		return nil, hinted{usageErr{err}, "`minnow recipes ls` lists the built-in recipes"}
	}
	return b, nil
}
