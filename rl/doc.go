// Package rl trains language models with reinforcement learning and
// preference optimisation: GRPO and its variants (DAPO, Dr. GRPO) with
// verifiable rewards, TLDR's length-regularised rewards and temperature
// scaling of the end-of-thinking token, and DPO (with IPO and SimPO), as
// specified in METHODS.md §1, §2 and §4.
//
// Rollouts, the policy being trained and the reference run the same
// forward code in one process, so there is no weight syncing and no
// log-prob mismatch between a generator and a trainer.
//
// The pieces, each usable alone:
//   - Rewards: the Reward interface, weighted sums with per-reward logs
//     (Rewards), the built-ins AnswerMatch, Format, SoftOverlong and
//     TLDRReward, External for a scoring command in any language, and
//     BuildRewards from recipe configs.
//   - Generate: G completions per prompt through the KV cache, seeded per
//     (step, prompt, completion), with an optional LogitProcessor such as
//     ThinkingTemperature or BudgetForcing.
//   - CompletionLogProbs: per-token log-probs of completions with
//     gradients; a Reference gives the frozen policy's (ModelReference,
//     AdapterOffReference for a LoRA base, ReferenceFunc).
//   - GroupAdvantages and GRPOLoss: the objective of METHODS §1, built from
//     differentiable tensor ops; DPOLoss: METHODS §4.
//   - GRPOTrainer and DPOTrainer: steps that drive the above with AdamW and
//     write one JSON metrics line per step.
//
// Where METHODS.md marks a choice as ours (TLDR's prompt tag, reward form
// and weights; dynamic sampling's refill; the log-prob temperature), it is
// a config field with a yaml tag, so recipes can set it.
package rl
