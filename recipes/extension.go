package recipes

import (
	"context"
	"sort"

	"github.com/minnowml/minnow/model"
)

// Extension is a recipe section that applies whatever the method, such
// as lora: (adapters on the model before training) or export: (a GGUF
// file after it). A recipe turns it on by having the section; Validate
// runs only then. An extension acts through the optional interfaces
// ModelPreparer and Finisher.
type Extension interface {
	// Section is the top-level recipe key. It must not collide with a
	// core key, a method's section or another extension's.
	Section() string
	// NewConfig returns a pointer to the section's settings with their
	// defaults; the recipe's section is decoded over it, strictly.
	NewConfig() any
	// Validate checks the section's settings (cfg, the NewConfig
	// pointer) against the recipe. It returns an error naming the key
	// path, the value and what is allowed.
	Validate(r *Recipe, cfg any) error
}

// ModelPreparer is an Extension that changes the model after Env.Model
// builds it and loads its weights, before training: LoRA adds adapters
// and freezes the rest. It returns the parameters to train, which
// Env.Train then optimizes and checkpoints instead of all of them (nil
// leaves the choice unchanged), or an error.
type ModelPreparer interface {
	PrepareModel(e *Env, m model.Model, cfg any) (trainable []model.NamedParam, err error)
}

// ModelWrapper is an Extension that puts the model inside another, after
// the ModelPreparers: a soft prompt before every input. It returns the
// model the method trains and samples, the parameters to train (which
// replace any a ModelPreparer chose), or an error.
type ModelWrapper interface {
	WrapModel(e *Env, m model.Model, cfg any) (wrapped model.Model, trainable []model.NamedParam, err error)
}

// Finisher is an Extension that acts on a run its method finished
// without error, before summary.md is written: exporting the model, say.
// It may add to s (its fields show in the summary). It returns an error
// that fails the run.
type Finisher interface {
	Finish(ctx context.Context, e *Env, cfg any, s *Summary) error
}

var extensions = map[string]Extension{}

// RegisterExtension adds x to the sections every recipe may have. Call it
// from an init function. It panics, as a programming error, when x's
// section is empty or taken by a core key, a method or another
// extension.
func RegisterExtension(x Extension) {
	registryMu.Lock()
	defer registryMu.Unlock()
	s := x.Section()
	if s == "" {
		panic("recipes: RegisterExtension: an extension needs a section")
	}
	checkSectionFree("extension "+s, s)
	if x.NewConfig() == nil {
		panic("recipes: RegisterExtension: extension " + s + "'s NewConfig returns nil")
	}
	extensions[s] = x
}

// Extensions returns the registered extensions sorted by section.
func Extensions() []Extension {
	registryMu.RLock()
	defer registryMu.RUnlock()
	xs := make([]Extension, 0, len(extensions))
	for _, x := range extensions {
		xs = append(xs, x)
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Section() < xs[j].Section() })
	return xs
}

// extension returns the extension of section s, if any.
func extension(s string) (Extension, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	x, ok := extensions[s]
	return x, ok
}

// prepareModel runs the recipe's ModelPreparer extensions on m and then
// its ModelWrapper extensions, each in section order, records the
// parameters they ask to train and returns the model as they leave it.
func (e *Env) prepareModel(m model.Model) (model.Model, error) {
	for _, x := range Extensions() {
		cfg, on := e.Recipe.Extensions[x.Section()]
		p, ok := x.(ModelPreparer)
		if !on || !ok {
			continue
		}
		trainable, err := p.PrepareModel(e, m, cfg)
		if err != nil {
			return nil, err
		}
		if trainable != nil {
			e.trainable = trainable
		}
	}
	for _, x := range Extensions() {
		cfg, on := e.Recipe.Extensions[x.Section()]
		w, ok := x.(ModelWrapper)
		if !on || !ok {
			continue
		}
		wrapped, trainable, err := w.WrapModel(e, m, cfg)
		if err != nil {
			return nil, err
		}
		m, e.trainable = wrapped, trainable
	}
	return m, nil
}

// setExt keeps an extension's state for its Finish, by section.
func (e *Env) setExt(section string, state any) {
	if e.ext == nil {
		e.ext = map[string]any{}
	}
	e.ext[section] = state
}

// finish runs the recipe's Finisher extensions in section order, those
// that also prepare the model first, so that an export sees the model as
// they leave it (LoRA's adapters merged).
func (e *Env) finish(ctx context.Context, s *Summary) error {
	xs := Extensions()
	prepares := func(x Extension) bool {
		_, p := x.(ModelPreparer)
		_, w := x.(ModelWrapper)
		return p || w
	}
	sort.SliceStable(xs, func(i, j int) bool { return prepares(xs[i]) && !prepares(xs[j]) })
	for _, x := range xs {
		cfg, on := e.Recipe.Extensions[x.Section()]
		f, ok := x.(Finisher)
		if !on || !ok {
			continue
		}
		if err := f.Finish(ctx, e, cfg, s); err != nil {
			return err
		}
	}
	return nil
}
