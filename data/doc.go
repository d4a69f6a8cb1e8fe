// Package data turns raw training material into what a training loop
// consumes: typed examples from JSONL files, token windows from a
// pre-tokenized corpus, deterministic shuffles and splits, and a synthetic
// arithmetic task with verifiable answers.
//
// # Examples from JSONL
//
// Load, LoadAs and Reader read one record per line in one of five layouts,
// detected from the first valid line or fixed by ReadOptions.Format:
//
//	{"text": ...}                                   Text (pretraining)
//	{"prompt": ..., "completion": ...}              PromptCompletion (SFT)
//	{"messages": [{"role": ..., "content": ...}]}   Chat (SFT; roles system, user, assistant, tool)
//	{"prompt": ..., "chosen": ..., "rejected": ...} Preference (DPO)
//	{"question": ..., "answer": ...}                Problem (GSM8K; RL with verifiable rewards)
//
// A Problem's answer is split at its last "####" into the worked Solution
// and the final Answer, normalised by NormalizeAnswer; Problem.Correct
// checks a model's output against it. A malformed line is a *LineError
// such as `train.jsonl:17: missing field "completion"`; with SkipBad such
// lines are skipped and counted in a Skipped report instead. Extra fields
// are ignored, blank lines skipped, and lines may be hundreds of
// megabytes long. WriteJSONL writes examples back in the same layouts.
//
// # Token shards
//
// BuildShards tokenizes a plain-text corpus once into little-endian shard
// files (uint16 ids when the vocabulary has at most 65536 tokens, else
// uint32) with an index.json recording the tokenizer's Fingerprint and the
// sources' sizes and modification times; a later call with the same
// sources, tokenizer and options reuses them. OpenShards memory-maps the
// shards (positioned reads where mmap is not available), and a Stream cuts
// the token stream into windows of Seq+1 tokens, splits off a validation
// tail, shuffles each epoch by seed and hands out batches.
//
// # Resuming
//
// A Cursor (epoch, position in that epoch's order) is the whole state of a
// Stream or Sampler; the order of every epoch follows from the seed, so a
// checkpoint stores the cursor as JSON and a resumed run Seeks to it and
// sees exactly the batches the uninterrupted run would have seen:
//
//	st, err := shards.Stream(data.StreamOptions{Batch: 8, Seq: 256, ValFraction: 0.05, Shuffle: true, Seed: 1})
//	if ckpt != nil {
//		err = st.Seek(ckpt.Cursor)
//	}
//	buf := make([]int32, 8*257)
//	for step := ...; ; step++ {
//		st.Next(buf)      // 8 windows of 257 tokens
//		trainStep(buf)    // inputs window[:256], targets window[1:]
//		if saveNow {
//			save(step, st.Cursor()) // the cursor after the consumed batch
//		}
//	}
//
// A loop that reads ahead must save the cursor of the batch it last
// trained on, not of the last one read.
//
// Shuffles, splits, cursors and generated problems use a SplitMix64
// generator defined in this package, so they do not change with the Go
// release.
//
// # Arithmetic
//
// Arith generates seeded multi-digit addition, subtraction and
// multiplication problems whose answers are worked column by column and
// end in "#### <answer>", as Problem values or, through WriteJSONL, as
// GSM8K-style JSONL that Load reads back. It is the built-in data set of
// the demo and of RL examples.
package data
