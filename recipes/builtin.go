package recipes

import (
	"embed"
	"fmt"
	"os"
)

//go:embed *.yaml
var builtin embed.FS

// Builtin returns the YAML of the built-in recipe name, such as
// "shakespeare-pretrain". It returns an error when there is no such recipe.
func Builtin(name string) ([]byte, error) {
	b, err := builtin.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no built-in recipe %q", name)
	}
	return b, nil
}

// LoadOrBuiltin loads the recipe file path, or the built-in recipe of that
// name when no such file exists (see Load and Builtin). It returns the
// errors of Load, Parse and Validate.
func LoadOrBuiltin(path string) (*Recipe, error) {
	if _, err := os.Stat(path); err == nil {
		return Load(path)
	}
	b, err := Builtin(path)
	if err != nil {
		return Load(path)
	}
	return parseValid(path, b)
}
