// Package recipes describes a training run as one typed YAML file and
// runs it: a Recipe names the model, the tokenizer, the data, the method
// and the loop's settings; Run creates the run directory and hands the
// recipe to its Method.
//
// # Strictness
//
// A recipe is strict: an unknown key, a value of the wrong type or out of
// range, and a missing file are errors that name the key's path (such as
// train.schedule.kind) and, where the YAML parser knows it, the line, so a
// typo never silently turns into a default. An unknown key also names the
// nearest allowed key by edit distance ("did you mean clip_norm?"). Paths
// may use ${MINNOW_DATA} (or any environment variable), expanded when the
// recipe is loaded.
//
// Overrides (Override, `minnow run --set key.path=value`) are applied to
// the YAML tree before it is decoded, so they are checked exactly as keys
// in the file are; their values are read as YAML (train.steps=100,
// data.arith.ops=[+,-], out=runs/x).
//
// # The run directory
//
// The default run directory is runs/<name>-<timestamp> (NewRunDir), and
// runs/<name>-latest links to the newest one; out: names another. It is
// self-contained: recipe.yaml (the resolved recipe, with out: filled in),
// tokenizer.gguf (a vocabulary-only GGUF file), config.json (the model's
// config), metrics.jsonl (one JSON object per update), the checkpoints,
// samples.jsonl (see SampleSpec) and summary.md. Running a recipe whose
// directory holds checkpoints resumes from the newest, bit for bit, so
// `minnow run --resume DIR` is Run on DIR/recipe.yaml.
//
// data.arith generates the arithmetic task (package data) into the run
// directory, so built-in recipes such as arith-pretrain need no files.
//
// # Adding a method
//
// A method (grpo, tldr, dpo, distill, ...) is a type implementing Method,
// registered from an init function of its package:
//
//	type GRPOConfig struct {
//		Group       int     `yaml:"group"`
//		KLCoef      float64 `yaml:"kl_coef"`
//	}
//
//	type grpo struct{}
//
//	func (grpo) Name() string        { return "grpo" }
//	func (grpo) Description() string { return "group-relative policy optimisation with verifiable rewards" }
//	func (grpo) Section() string     { return "grpo" }               // the recipe's grpo: key
//	func (grpo) NewConfig() any      { return &GRPOConfig{Group: 8} } // defaults; the section decodes over them
//
//	func (grpo) Validate(r *recipes.Recipe) error {
//		c := r.MethodConfig.(*GRPOConfig)
//		if c.Group < 2 {
//			return fmt.Errorf("grpo.group: %d is out of range (allowed: 2 or more)", c.Group)
//		}
//		return nil
//	}
//
//	func (grpo) Run(ctx context.Context, e *recipes.Env) (recipes.Summary, error) {
//		tok, err := e.Tokenizer()         // tokenizer.gguf written to e.Dir
//		...
//		m, cfg, cfgJSON, err := e.Model(len(tok.Vocab().Tokens)) // model.checkpoint loaded
//		problems, err := e.ArithProblems() // or read e.Recipe.Data.JSONL
//		...
//		// A method built on train.Loop hands it to e.Train, which adds the
//		// optimizer, schedule, resumption, checkpoints, metrics.jsonl and
//		// samples: e.Train(ctx, recipes.TrainJob{Model: m, Objective: obj,
//		// Batches: b, Config: cfgJSON, Arch: cfg.ModelType}).
//		// Others write one JSON object per update to e.Metrics(), with
//		// "step", "loss" (lines with a loss are what progress shows) and
//		// any metrics ("reward", "completion_length_mean"), which runs ls
//		// and plot pick up by name, and may call e.Sample at the end.
//	}
//
//	func init() { recipes.Register(grpo{}) }
//
// train.steps stays the number of updates a method makes, since the
// command's progress bar and ETA count to it, and the train: section's
// optimizer and schedule apply when the method has an optimizer at all.
// The section's struct is decoded strictly: its yaml tags are its keys,
// and an unknown one gets the same error and suggestion as a core key. A
// section of another method than the recipe's is an error. A program
// offers the method by importing its package (for the minnow command, a
// blank import in cmd/minnow); nothing in this package changes.
package recipes
