package recipes

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"strings"
)

//go:embed *.yaml
var builtin embed.FS

// Builtin returns the YAML of the built-in recipe name, such as
// "shakespeare-pretrain", also found as "pretrain-shakespeare". It returns an error when there is no such recipe.
func Builtin(name string) ([]byte, error) {
	b, err := builtin.ReadFile(name + ".yaml")
	if err != nil {
		// Recipes are named <task>-<method>, but <method>-<task> (as in
		// grpo-arith) names the same one.
		if a, c, ok := strings.Cut(name, "-"); ok && !strings.Contains(c, "-") {
			if b, err := builtin.ReadFile(c + "-" + a + ".yaml"); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("no built-in recipe %q", name)
	}
	return b, nil
}

// ErrNoRecipe is LoadOrBuiltin's error for a name that is neither a
// file nor a built-in recipe.
var ErrNoRecipe = errors.New("no such recipe file or built-in recipe")

// LoadOrBuiltin loads the recipe file path, or the built-in recipe of that
// name when no such file exists (see Load and Builtin), with the
// overrides sets applied. It returns ErrNoRecipe (wrapped) for a name
// that is neither, and the errors of Load, Parse and Validate.
func LoadOrBuiltin(path string, sets ...Override) (*Recipe, error) {
	if _, err := os.Stat(path); err == nil {
		return Load(path, sets...)
	}
	b, err := Builtin(path)
	if err != nil {
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoRecipe)
		}
		return Load(path, sets...)
	}
	return parseValid(path, b, sets)
}

// BuiltinInfo describes a built-in recipe for listings.
type BuiltinInfo struct {
	// Name is the recipe's name, <task>-<method>[-<size>].
	Name string
	// Method is its method, with " + lora" when it trains LoRA adapters.
	Method string
	// Description is its one-line description.
	Description string
}

// Builtins lists the built-in recipes by name. It returns an error when
// an embedded recipe does not parse, which a test rules out.
func Builtins() ([]BuiltinInfo, error) {
	ents, err := builtin.ReadDir(".")
	if err != nil {
		return nil, err
	}
	var out []BuiltinInfo
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		b, err := Builtin(name)
		if err != nil {
			return nil, err
		}
		r, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("built-in recipe %s: %w", name, err)
		}
		m := r.Method
		if m == "" {
			m = MethodPretrain
		}
		if _, ok := r.Extensions["lora"]; ok {
			m += " + lora"
		}
		out = append(out, BuiltinInfo{Name: name, Method: m, Description: r.Description})
	}
	return out, nil
}
