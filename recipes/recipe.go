package recipes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/train"
)

// Recipe is a training run. Its YAML keys are the snake_case names in
// the field tags, plus the section of its method when the method has one.
type Recipe struct {
	// Name names the run; the default run directory is
	// runs/<name>-<timestamp>.
	Name string `yaml:"name"`
	// Description is one line saying what the recipe does, for listings.
	Description string `yaml:"description,omitempty"`
	// Method names a registered Method: "pretrain" (the default:
	// next-token loss on every token of data.text), "sft" (loss on
	// completion and assistant tokens only, of the examples in
	// data.jsonl, packed with per-document attention), or one that
	// another package registers.
	Method string `yaml:"method,omitempty"`
	// Seed seeds the model's initial weights and the data order.
	Seed uint64 `yaml:"seed"`
	// Model says which model to train.
	Model ModelSpec `yaml:"model"`
	// Tokenizer says which tokenizer to use or train.
	Tokenizer TokenizerSpec `yaml:"tokenizer"`
	// Data says what text to train on and how to batch it.
	Data DataSpec `yaml:"data"`
	// Train holds the loop's settings.
	Train TrainSpec `yaml:"train"`
	// Sample, when set, samples completions at the end of the run.
	Sample *SampleSpec `yaml:"sample,omitempty"`
	// Out is the run directory; empty means a new
	// runs/<name>-<timestamp>. Running a recipe whose run directory
	// holds checkpoints resumes from the newest.
	Out string `yaml:"out,omitempty"`
	// MethodConfig is the method's section (see Method.NewConfig), nil
	// for a method without one.
	MethodConfig any `yaml:"-"`
	// Extensions holds the sections of registered extensions the recipe
	// has, by section (see Extension.NewConfig).
	Extensions map[string]any `yaml:"-"`
}

// ModelSpec names the model in one of three ways: Config, a Hugging Face
// config.json path; Checkpoint, a checkpoint file or run directory whose
// weights training continues from; or inline model.Config fields, such as
// hidden_size, written under model: directly.
type ModelSpec struct {
	// Config is the path of a config.json.
	Config string
	// Checkpoint is a checkpoint file, or a run directory whose newest
	// checkpoint is meant.
	Checkpoint string
	// Inline holds the inline config.json fields as YAML gave them.
	Inline map[string]any
	// Resolved is the parsed config of Inline; Run fills it from Config
	// or Checkpoint.
	Resolved model.Config
}

// TokenizerSpec names a tokenizer file (Path, any format tokenizer.Load
// reads) or asks for a byte-level BPE vocabulary trained on the recipe's
// text (Train); exactly one must be set.
type TokenizerSpec struct {
	Path  string          `yaml:"path,omitempty"`
	Train *TokenizerTrain `yaml:"train,omitempty"`
}

// TokenizerTrain configures tokenizer.TrainFiles.
type TokenizerTrain struct {
	// VocabSize counts the 256 byte tokens and the specials.
	VocabSize int `yaml:"vocab_size"`
	// Special lists special tokens such as "<|endoftext|>".
	Special []string `yaml:"special,omitempty"`
	// Pre is the pre-tokenizer: gpt-2 (the default), llama-bpe, qwen2 or
	// smollm.
	Pre string `yaml:"pre,omitempty"`
	// MinFrequency stops merging when no pair occurs this often (0: 2).
	MinFrequency int `yaml:"min_frequency,omitempty"`
}

// DataSpec is the training text and its batching. The last ValFraction of
// the windows is held out for evaluation.
type DataSpec struct {
	// Text lists the text files of a pretraining run.
	Text []string `yaml:"text,omitempty"`
	// Arith generates the arithmetic task instead of reading files.
	Arith *ArithSpec `yaml:"arith,omitempty"`
	// JSONL lists the example files of an SFT run: prompt/completion or
	// chat records.
	JSONL []string `yaml:"jsonl,omitempty"`
	// ChatTemplate names the template chat examples render with (chatml,
	// llama3, llama2, plain); prompt/completion examples without one are
	// prompt + completion + EOS.
	ChatTemplate string  `yaml:"chat_template,omitempty"`
	ValFraction  float64 `yaml:"val_fraction"`
	Batch        int     `yaml:"batch"`
	Seq          int     `yaml:"seq"`
	Shuffle      bool    `yaml:"shuffle"`
}

// TrainSpec holds train.LoopConfig's settings and the optimizer's.
type TrainSpec struct {
	Steps           int                  `yaml:"steps"`
	GradAccum       int                  `yaml:"grad_accum,omitempty"`
	ClipNorm        float64              `yaml:"clip_norm,omitempty"`
	Optimizer       train.AdamWConfig    `yaml:"optimizer"`
	Schedule        train.ScheduleConfig `yaml:"schedule"`
	EvalEvery       int                  `yaml:"eval_every,omitempty"`
	EvalBatches     int                  `yaml:"eval_batches,omitempty"`
	CheckpointEvery int                  `yaml:"checkpoint_every,omitempty"`
	Keep            int                  `yaml:"keep,omitempty"`
}

// UnmarshalYAML decodes the model section by hand because its inline
// fields belong to model.Config, which has JSON tags only: they go through
// model.ParseConfig, and keys it does not know are rejected with their
// line. It returns an error for a non-mapping section, a non-string
// config or checkpoint, an unknown key, or an invalid config.
func (m *ModelSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: model: want a mapping with config:, checkpoint: or model.Config fields", n.Line)
	}
	lines := map[string]int{}
	inline := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "config", "checkpoint":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				return fmt.Errorf("line %d: model.%s: want a file path string, got %q", v.Line, k.Value, v.Value)
			}
			if k.Value == "config" {
				m.Config = v.Value
			} else {
				m.Checkpoint = v.Value
			}
		default:
			lines[k.Value] = k.Line
			inline.Content = append(inline.Content, k, v)
		}
	}
	if len(inline.Content) == 0 {
		return nil
	}
	if m.Config != "" || m.Checkpoint != "" {
		return fmt.Errorf("line %d: model: inline config fields cannot be combined with config: or checkpoint:", inline.Content[0].Line)
	}
	if err := inline.Decode(&m.Inline); err != nil {
		return err
	}
	// vocab_size may be left to the tokenizer; a placeholder lets the
	// rest of the config be validated now.
	probe := map[string]any{}
	for k, v := range m.Inline {
		probe[k] = v
	}
	_, hasVocab := probe["vocab_size"]
	if !hasVocab {
		probe["vocab_size"] = 1
	}
	js, err := json.Marshal(probe)
	if err != nil {
		return fmt.Errorf("line %d: model: %w", n.Line, err)
	}
	// Unknown keys first: a typo usually also leaves a required key out,
	// and the typo is the more useful message.
	var cfg model.Config
	if err := json.Unmarshal(js, &cfg); err != nil {
		return fmt.Errorf("line %d: model: %w", n.Line, err)
	}
	if len(cfg.Extra) > 0 {
		keys := make([]string, 0, len(cfg.Extra))
		for k := range cfg.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return fmt.Errorf("line %d: model.%s: unknown key (model.Config fields are config.json names such as hidden_size)", lines[keys[0]], keys[0])
	}
	if cfg, err = model.ParseConfig(js); err != nil {
		return fmt.Errorf("line %d: model: %w", n.Line, err)
	}
	if !hasVocab {
		cfg.VocabSize = 0
	}
	m.Resolved = cfg
	return nil
}

// MarshalYAML writes the model section back in the form it was read in.
func (m ModelSpec) MarshalYAML() (any, error) {
	switch {
	case m.Config != "":
		return map[string]string{"config": m.Config}, nil
	case m.Checkpoint != "":
		return map[string]string{"checkpoint": m.Checkpoint}, nil
	}
	return m.Inline, nil
}

// Load reads, decodes and validates the recipe at path with the
// overrides sets applied (see Parse and Validate). Relative paths inside
// it stay relative to the working directory, as on the command line. It
// returns the errors of reading, Parse and Validate.
func Load(path string, sets ...Override) (*Recipe, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseValid(path, b, sets)
}

// parseValid parses and validates a recipe, prefixing errors with name.
func parseValid(name string, b []byte, sets []Override) (*Recipe, error) {
	r, err := Parse(b, sets...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}

// Parse decodes a recipe from YAML, applies the overrides sets (as
// `minnow run --set` does) before decoding, decodes the method's section
// into MethodConfig, and expands environment variables such as
// ${MINNOW_DATA} in its paths; it does not validate. It returns an error
// naming the key's path and line for an unknown key (suggesting the
// nearest allowed key) or a value of the wrong type, an error for an
// override of an unknown path, a section of another method, malformed
// YAML, or a document that is not a single mapping.
func Parse(b []byte, sets ...Override) (*Recipe, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	if root.Kind == 0 {
		root = yaml.Node{Kind: yaml.DocumentNode}
	}
	for i, o := range sets {
		if err := o.apply(&root, setLine+i); err != nil {
			return nil, err
		}
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("a recipe is one YAML mapping of name:, model:, data:, train:, ...")
	}
	if err := checkKeys(&root, recipeType, ""); err != nil {
		return nil, err
	}
	paths := map[int][]keyAt{}
	linePaths(&root, "", paths)
	for i, o := range sets {
		paths[setLine+i] = []keyAt{{o.Path, ""}}
	}
	var r Recipe
	if err := root.Decode(&r); err != nil {
		return nil, annotate(err, paths)
	}
	if err := r.decodeSection(root.Content[0], paths); err != nil {
		return nil, err
	}
	r.expand()
	return &r, nil
}

// decodeSection decodes the method's section of the mapping top into
// r.MethodConfig, over the method's defaults, and the extensions'
// sections into r.Extensions (leaving out empty ones). A section of
// another registered method is an error, since it would silently do
// nothing.
func (r *Recipe) decodeSection(top *yaml.Node, paths map[int][]keyAt) error {
	own, _ := Lookup(r.Method)
	if own != nil && own.Section() != "" {
		r.MethodConfig = own.NewConfig()
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		if x, ok := extension(k.Value); ok {
			// An empty section (export: null, or --set export=null) turns
			// the extension off, so that an override can remove one.
			if top.Content[i+1].Tag == "!!null" {
				continue
			}
			cfg := x.NewConfig()
			if err := top.Content[i+1].Decode(cfg); err != nil {
				return annotate(err, paths)
			}
			if r.Extensions == nil {
				r.Extensions = map[string]any{}
			}
			r.Extensions[k.Value] = cfg
			continue
		}
		for _, m := range Methods() {
			if m.Section() != k.Value {
				continue
			}
			if own == nil || m.Name() != own.Name() {
				return fmt.Errorf("%s%s: this section belongs to method: %s, but the recipe's method is %q", lineOf(k), k.Value, m.Name(), r.Method)
			}
			if err := top.Content[i+1].Decode(r.MethodConfig); err != nil {
				return annotate(err, paths)
			}
		}
	}
	return nil
}

// keyAt is a key path found on a line, with its value when that is a
// scalar.
type keyAt struct{ path, value string }

// linePaths records, per line, the dotted paths of the keys and list
// elements on it, since yaml.v3's errors name lines but not keys; a flow
// mapping puts several on one line.
func linePaths(n *yaml.Node, path string, out map[int][]keyAt) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			linePaths(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			v := n.Content[i+1]
			out[n.Content[i].Line] = append(out[n.Content[i].Line], keyAt{p, scalarValue(v)})
			linePaths(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			out[c.Line] = append(out[c.Line], keyAt{p, scalarValue(c)})
			linePaths(c, p, out)
		}
	}
}

// notScalar is the value keyAt records for a list or mapping; it matches
// no quoted value.
const notScalar = "\x00"

func scalarValue(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return notScalar
}

// pathOn returns the path on line an error message is about: the one
// whose value the message quotes (yaml.v3 writes it in backquotes), else
// the line's last key, else "".
func pathOn(keys []keyAt, msg string) string {
	if len(keys) == 0 {
		return ""
	}
	if m := quotedRE.FindStringSubmatch(msg); m != nil {
		for k := len(keys) - 1; k >= 0; k-- {
			if keys[k].value == m[1] {
				return keys[k].path
			}
		}
	} else {
		// No value quoted: the error is about a list or mapping value.
		for k := len(keys) - 1; k >= 0; k-- {
			if keys[k].value == notScalar {
				return keys[k].path
			}
		}
	}
	// The first key of a line is its outermost; the deepest came last.
	return keys[len(keys)-1].path
}

var (
	quotedRE  = regexp.MustCompile("`([^`]*)`")
	lineRE    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	typeRE    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `([^`]*)`)? into (\\S+)$")
)

// annotate rewrites yaml.v3's "line N: ..." messages to name the key path.
func annotate(err error, paths map[int][]keyAt) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		sm := lineRE.FindStringSubmatch(m)
		if sm == nil {
			out = append(out, m)
			continue
		}
		line, _ := strconv.Atoi(sm[1])
		msg := sm[2]
		if u := unknownRE.FindStringSubmatch(msg); u != nil {
			msg = "unknown key " + strconv.Quote(u[1])
		}
		p := pathOn(paths[line], msg)
		if tm := typeRE.FindStringSubmatch(msg); tm != nil {
			msg = typeMessage(tm[1], tm[2], tm[3])
		}
		if p != "" && !strings.HasPrefix(msg, p) && !strings.HasPrefix(msg, "model") {
			msg = p + ": " + msg
		}
		if line >= setLine {
			out = append(out, "--set "+msg)
			continue
		}
		out = append(out, "line "+sm[1]+": "+msg)
	}
	return errors.New(strings.Join(out, "; "))
}

// typeMessage rewrites yaml.v3's "cannot unmarshal !!tag `value` into
// type" as the value and what is allowed, in recipe terms.
func typeMessage(tag, value, goType string) string {
	got := map[string]string{"seq": "a list", "map": "a mapping", "null": "an empty value"}[tag]
	if got == "" {
		got = strconv.Quote(value)
	}
	var allowed string
	switch {
	case strings.HasPrefix(goType, "[]string"):
		allowed = "a list of strings"
	case strings.HasPrefix(goType, "[]"):
		allowed = "a list"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		allowed = "a mapping"
		if goType == "train.DecayShape" {
			allowed = "a string"
		}
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		allowed = "an integer"
	case strings.HasPrefix(goType, "float"):
		allowed = "a number"
	case goType == "bool":
		allowed = "true or false"
	default:
		allowed = "a " + goType
	}
	return fmt.Sprintf("%s has the wrong type (allowed: %s)", got, allowed)
}

// expand substitutes environment variables in every path of r.
func (r *Recipe) expand() {
	r.Model.Config = os.ExpandEnv(r.Model.Config)
	r.Model.Checkpoint = os.ExpandEnv(r.Model.Checkpoint)
	r.Tokenizer.Path = os.ExpandEnv(r.Tokenizer.Path)
	for i, t := range r.Data.Text {
		r.Data.Text[i] = os.ExpandEnv(t)
	}
	for i, t := range r.Data.JSONL {
		r.Data.JSONL[i] = os.ExpandEnv(t)
	}
	r.Out = os.ExpandEnv(r.Out)
}

// rangeErr is an out-of-range value: its path, value and what is allowed.
func rangeErr(path string, v any, allowed string) error {
	return fmt.Errorf("%s: %v is out of range (allowed: %s)", path, v, allowed)
}

// Validate checks every value's range, that every named file exists, and
// the rules of the recipe's method (Method.Validate). It returns the
// first problem as an error naming the key's path, the value and what is
// allowed, a *FileError for a missing file, or Lookup's error for an
// unknown method.
func (r *Recipe) Validate() error {
	if r.Name == "" || strings.ContainsAny(r.Name, `/\`) {
		return rangeErr("name", strconv.Quote(r.Name), "a non-empty name without slashes")
	}
	m := r.Model
	set := 0
	for _, s := range []bool{m.Config != "", m.Checkpoint != "", m.Inline != nil} {
		if s {
			set++
		}
	}
	if set != 1 {
		return errors.New("model: give exactly one of config: (a config.json), checkpoint: (a checkpoint file or run directory) or inline model.Config fields")
	}
	if err := r.validateTokenizer(); err != nil {
		return err
	}
	tokPath := "tokenizer.path"
	if r.Tokenizer.Path == "" {
		tokPath = "tokenizer (taken from model.checkpoint's run)"
	}
	for _, f := range []struct{ path, file string }{{"model.config", m.Config}, {"model.checkpoint", m.Checkpoint}, {tokPath, r.TokenizerPath()}} {
		if err := exists(f.path, f.file); err != nil {
			return err
		}
	}
	d := r.Data
	meth, err := Lookup(r.Method)
	if err != nil {
		return err
	}
	if d.Arith != nil {
		if len(d.Text) > 0 || len(d.JSONL) > 0 {
			return errors.New("data.arith: generate the data or read data.text/data.jsonl, not both")
		}
		if err := d.Arith.validate(); err != nil {
			return err
		}
	}
	if r.Sample != nil {
		if err := r.Sample.validate(r); err != nil {
			return err
		}
	}
	if err := meth.Validate(r); err != nil {
		return err
	}
	for _, x := range Extensions() {
		if cfg, on := r.Extensions[x.Section()]; on {
			if err := x.Validate(r, cfg); err != nil {
				return err
			}
		}
	}
	for i, f := range d.Text {
		if err := exists(fmt.Sprintf("data.text[%d]", i), f); err != nil {
			return err
		}
	}
	for i, f := range d.JSONL {
		if err := exists(fmt.Sprintf("data.jsonl[%d]", i), f); err != nil {
			return err
		}
	}
	if d.ValFraction < 0 || d.ValFraction >= 1 {
		return rangeErr("data.val_fraction", d.ValFraction, "0 <= val_fraction < 1")
	}
	if d.Batch <= 0 {
		return rangeErr("data.batch", d.Batch, "a positive integer")
	}
	if d.Seq <= 0 {
		return rangeErr("data.seq", d.Seq, "a positive integer")
	}
	if m.Inline != nil && m.Resolved.MaxPositionEmbeddings > 0 && d.Seq > m.Resolved.MaxPositionEmbeddings {
		return rangeErr("data.seq", d.Seq, fmt.Sprintf("at most model.max_position_embeddings (%d)", m.Resolved.MaxPositionEmbeddings))
	}
	return r.validateTrain()
}

// The training methods this package registers.
const (
	MethodPretrain = "pretrain"
	MethodSFT      = "sft"
)

func (r *Recipe) validateTokenizer() error {
	t := r.Tokenizer
	if t.Path != "" && t.Train != nil {
		return errors.New("tokenizer: give exactly one of path: (a tokenizer file) or train: {vocab_size, special, pre}")
	}
	if t.Path == "" && t.Train == nil && r.Model.Checkpoint == "" {
		return errors.New("tokenizer: give path: (a tokenizer file) or train: {vocab_size, special, pre}; only a model.checkpoint run brings its own")
	}
	if t.Train == nil {
		return nil
	}
	if t.Train.VocabSize < 257+len(t.Train.Special) {
		return rangeErr("tokenizer.train.vocab_size", t.Train.VocabSize, fmt.Sprintf("at least 257 + the %d special tokens", len(t.Train.Special)))
	}
	switch t.Train.Pre {
	case "", "gpt-2", "llama-bpe", "qwen2", "smollm":
	default:
		return rangeErr("tokenizer.train.pre", strconv.Quote(t.Train.Pre), "gpt-2, llama-bpe, qwen2 or smollm")
	}
	if t.Train.MinFrequency < 0 {
		return rangeErr("tokenizer.train.min_frequency", t.Train.MinFrequency, "0 (meaning 2) or more")
	}
	if v := r.Model.Resolved.VocabSize; r.Model.Inline != nil && v != 0 && v < t.Train.VocabSize {
		return rangeErr("model.vocab_size", v, fmt.Sprintf("at least tokenizer.train.vocab_size (%d), or leave it out to take the tokenizer's", t.Train.VocabSize))
	}
	return nil
}

func (r *Recipe) validateTrain() error {
	t := r.Train
	ints := []struct {
		path string
		v    int
		min  int
	}{{"train.steps", t.Steps, 1}, {"train.grad_accum", t.GradAccum, 0}, {"train.eval_every", t.EvalEvery, 0},
		{"train.eval_batches", t.EvalBatches, 0}, {"train.checkpoint_every", t.CheckpointEvery, 0}, {"train.keep", t.Keep, 0}}
	for _, f := range ints {
		if f.v < f.min {
			return rangeErr(f.path, f.v, fmt.Sprintf("an integer >= %d", f.min))
		}
	}
	if t.ClipNorm < 0 {
		return rangeErr("train.clip_norm", t.ClipNorm, "0 (off) or a positive norm")
	}
	o := t.Optimizer
	if o.LR < 0 {
		return rangeErr("train.optimizer.lr", o.LR, "lr >= 0; the schedule gives each step's rate")
	}
	if o.Beta1 < 0 || o.Beta1 >= 1 {
		return rangeErr("train.optimizer.beta1", o.Beta1, "0 <= beta1 < 1 (0 means 0.9)")
	}
	if o.Beta2 < 0 || o.Beta2 >= 1 {
		return rangeErr("train.optimizer.beta2", o.Beta2, "0 <= beta2 < 1 (0 means 0.95)")
	}
	if o.Eps < 0 || o.WeightDecay < 0 {
		return rangeErr("train.optimizer.eps/weight_decay", fmt.Sprint(o.Eps, "/", o.WeightDecay), "non-negative values")
	}
	if _, err := t.Schedule.Build(t.Steps); err != nil {
		return fmt.Errorf("train.schedule: %w", err)
	}
	if t.EvalEvery > 0 && r.Data.ValFraction == 0 {
		return rangeErr("train.eval_every", t.EvalEvery, "0 when data.val_fraction is 0, since nothing is held out")
	}
	return nil
}

// FileError is a file a recipe names that does not exist.
type FileError struct {
	// Key is the recipe key naming the file, such as data.text[0].
	Key string
	// File is the missing path.
	File string
}

// Error names the key and the file.
func (e *FileError) Error() string {
	return fmt.Sprintf("%s: file %s does not exist", e.Key, e.File)
}

// exists returns a *FileError when file is set and missing, and an error
// naming path when it cannot be checked.
func exists(path, file string) error {
	if file == "" {
		return nil
	}
	if _, err := os.Stat(file); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &FileError{Key: path, File: file}
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Marshal returns r as YAML, as Run saves it to <run>/recipe.yaml. It
// returns an error when a value cannot be encoded.
func (r *Recipe) Marshal() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(r); err != nil {
		return nil, err
	}
	sections := map[string]any{}
	if m, err := Lookup(r.Method); err == nil && m.Section() != "" && r.MethodConfig != nil {
		sections[m.Section()] = r.MethodConfig
	}
	for s, cfg := range r.Extensions {
		sections[s] = cfg
	}
	keys := make([]string, 0, len(sections))
	for s := range sections {
		keys = append(keys, s)
	}
	sort.Strings(keys)
	for _, s := range keys {
		var sec yaml.Node
		if err := sec.Encode(sections[s]); err != nil {
			return nil, err
		}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}, &sec)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
