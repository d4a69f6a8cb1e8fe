// Package distill trains a small student language model from a larger
// teacher: the KD baselines (forward KL, reverse KL and generalised JSD,
// with GKD's on-policy samples) of METHODS.md §5, and DCKD, ADPA and
// ADPA+ of METHODS.md §3, which distil preference alignment from a
// DPO-aligned teacher.
//
// Teacher signals are computed once (BuildCache) and kept on disk (Write,
// Read): per response token the teacher's top-K log-probs with their token
// ids and the remainder mass, and for ADPA the reference teacher's
// log-probs of the same tokens. Training then never runs the teacher
// (except GKD's on-policy steps, whose samples are new), so a teacher and
// a student need not share memory. The cache records the tokenizer's
// fingerprint (TokenizerID), and a student of another tokenizer is a clear
// error rather than silently misaligned ids.
//
// The losses work on the reference code's K+1 bins: the teacher's top-K
// tokens and the rest, both distributions clamped to [1e-8, 1-1e-8]
// (KDLoss); with K equal to the vocabulary (DenseTargets) they are the
// exact divergences. ADPALoss is -(1/N) Σ_t Σ_{a in top-K} p_θ(a)·A(a)
// with A = log π_dpo - log π_ref, raw by default and clamped as the
// reference code does with ADPAConfig.ClampAdvantage.
//
// Objective turns them into a train.Objective over batches of cached
// sequences (Data.Batches): kd, gkd, dckd (CE on the chosen response plus
// weighted forward KL on the chosen and the rejected one) and adpa (CE on
// the chosen response plus the advantage loss on the student's own
// response). ADPA+ is adpa started from a DCKD student, a matter of the
// recipe's model.checkpoint.
//
// Data files for precomputing signals (ReadExamples, Tokenize) hold a
// prompt with a dataset completion, or chosen and rejected responses and
// optionally the student's own. JudgeArith is the arithmetic task's
// programmatic preference (right beats wrong, then shorter beats longer),
// and RejectedArith builds its dispreferred answers.
//
// Every choice METHODS.md marks as ours is a config field with a yaml tag.
package distill
