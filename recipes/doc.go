// Package recipes describes a pretraining run as one typed YAML file and
// runs it: it trains or loads the tokenizer, tokenizes the text into
// shards, builds the model, resumes from the run directory's newest
// checkpoint when there is one, and trains with train.Loop.
//
// A recipe is strict: an unknown key, a value of the wrong type or out of
// range, and a missing file are errors that name the key's path (such as
// train.schedule.kind) and, where the YAML parser knows it, the line, so a
// typo never silently turns into a default. Paths may use ${MINNOW_DATA}
// (or any environment variable), expanded when the recipe is loaded.
//
// The run directory is self-contained: it holds recipe.yaml (the resolved
// recipe), tokenizer.gguf (a vocabulary-only GGUF file), config.json (the
// model's config), metrics.jsonl, the shards and the checkpoints, so that
// re-running the same recipe resumes and `minnow generate --run DIR`
// samples from it.
package recipes
