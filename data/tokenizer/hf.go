package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// gpt2EndOfText is GPT-2's one special token, which it uses as BOS, EOS and
// end of turn alike.
const gpt2EndOfText = "<|endoftext|>"

// LoadVocabMerges reads a GPT-2 style vocabulary: vocab.json mapping each
// token to its id, and merges.txt with one "left right" merge per line in
// rank order (an optional first "#version" line is skipped). The result uses
// the "gpt-2" pre-tokenizer, and <|endoftext|>, when present, is a control
// token serving as BOS, EOS and EOT. It returns an error naming the file
// when either cannot be read or is malformed: invalid JSON, negative,
// repeated or missing ids, or a merge line that is not two symbols
// separated by one space.
func LoadVocabMerges(vocabJSON, mergesTXT string) (*Vocab, error) {
	raw, err := os.ReadFile(vocabJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var ids map[string]int64
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: not a JSON object of token ids: %v", vocabJSON, err)
	}
	tokens, err := tokensByID(ids, nil)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", vocabJSON, err)
	}
	for i, tok := range tokens {
		if tok == "" {
			return nil, fmt.Errorf("tokenizer: %s: no token has id %d (ids must run from 0 to %d)", vocabJSON, i, len(tokens)-1)
		}
	}
	raw, err = os.ReadFile(mergesTXT)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	merges, err := parseMergesTXT(string(raw))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", mergesTXT, err)
	}
	v := &Vocab{
		Model: ModelBPE, Pre: "gpt-2", Tokens: tokens, Merges: merges,
		Types: make([]TokenType, len(tokens)),
		BOS:   NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, EOT: NoToken,
	}
	for i := range v.Types {
		v.Types[i] = TypeNormal
	}
	if id, ok := ids[gpt2EndOfText]; ok {
		v.Types[id] = TypeControl
		v.BOS, v.EOS, v.EOT = int32(id), int32(id), int32(id)
	}
	return v, nil
}

// tokensByID turns a token-to-id map into a slice indexed by id, long
// enough for the ids of extra too; ids without a token are left empty. It
// returns an error for an empty token, a negative id, one beyond int32, one
// far past the number of tokens, or one shared by two tokens.
func tokensByID(ids map[string]int64, extra []hfAddedToken) ([]string, error) {
	n := int64(0)
	for tok, id := range ids {
		if id < 0 || id >= 1<<31-1 {
			return nil, fmt.Errorf("token %q has id %d, outside 0..2^31-2", tok, id)
		}
		n = max(n, id+1)
	}
	for _, a := range extra {
		if a.ID < 0 || a.ID >= 1<<31-1 {
			return nil, fmt.Errorf("added token %q has id %d, outside 0..2^31-2", a.Content, a.ID)
		}
		n = max(n, a.ID+1)
	}
	// Ids far beyond the number of tokens would be mostly holes; refuse
	// before allocating for them.
	if count := int64(len(ids) + len(extra)); n > 2*count+1024 {
		return nil, fmt.Errorf("largest id %d is far beyond the %d tokens listed", n-1, count)
	}
	tokens := make([]string, n)
	for tok, id := range ids {
		if tok == "" {
			return nil, fmt.Errorf("id %d has an empty token", id)
		}
		if tokens[id] != "" {
			a, b := tokens[id], tok
			if b < a {
				a, b = b, a
			}
			return nil, fmt.Errorf("tokens %q and %q share id %d", a, b, id)
		}
		tokens[id] = tok
	}
	return tokens, nil
}

// parseMergesTXT parses merges.txt text into "left right" strings.
func parseMergesTXT(text string) ([]string, error) {
	lines := strings.Split(text, "\n")
	var merges []string
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || (i == 0 && strings.HasPrefix(line, "#version")) {
			continue
		}
		left, right, ok := strings.Cut(line, " ")
		if !ok || left == "" || right == "" || strings.Contains(right, " ") {
			return nil, fmt.Errorf("line %d: want two symbols separated by one space, got %q", i+1, line)
		}
		merges = append(merges, line)
	}
	if len(merges) == 0 {
		return nil, errors.New("no merges")
	}
	return merges, nil
}

// hfTokenizerJSON is the part of a Hugging Face tokenizer.json that a
// byte-level BPE needs.
type hfTokenizerJSON struct {
	AddedTokens  []hfAddedToken `json:"added_tokens"`
	Normalizer   *hfComponent   `json:"normalizer"`
	PreTokenizer *hfComponent   `json:"pre_tokenizer"`
	Model        hfModel        `json:"model"`
}

type hfAddedToken struct {
	ID      int64  `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

type hfModel struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	Dropout                 *float64        `json:"dropout"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            *bool           `json:"ignore_merges"`
}

// hfComponent is a normalizer or pre-tokenizer node; each type uses some of
// the fields.
type hfComponent struct {
	Type             string        `json:"type"`
	Normalizers      []hfComponent `json:"normalizers"`
	Pretokenizers    []hfComponent `json:"pretokenizers"`
	Pattern          *hfPattern    `json:"pattern"`
	Behavior         string        `json:"behavior"`
	Invert           bool          `json:"invert"`
	AddPrefixSpace   bool          `json:"add_prefix_space"`
	UseRegex         *bool         `json:"use_regex"`
	IndividualDigits bool          `json:"individual_digits"`
}

type hfPattern struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

// hfSplitPatterns maps the Split regexes of known tokenizer.json files to
// the llama.cpp pre-tokenizer that reproduces them. The Llama 3 and Qwen2
// lines are as the models ship them and as llama.cpp rewrites them without
// (?i:), which it does not support.
var hfSplitPatterns = map[string]string{
	`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`:                                                                       "gpt-2",
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:                              "llama-bpe",
	`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: "llama-bpe",
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:                                   "qwen2",
	`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:      "qwen2",
}

// LoadHFTokenizer reads a Hugging Face tokenizer.json of a byte-level BPE
// model (GPT-2, Llama 3, Qwen2, SmolLM and the like) and, when present,
// tokenizer_config.json beside it for the BOS, EOS, PAD and UNK tokens,
// add_bos_token, add_eos_token and chat_template.
//
// Supported: model.type "BPE" with merges as "left right" strings or as
// [left, right] pairs; added_tokens, which become control tokens when
// marked special (or spelled like one, "<|...|>", as llama.cpp's converter
// decides) and user-defined tokens otherwise; a pre_tokenizer that is
// ByteLevel alone (GPT-2), Digits with individual_digits then ByteLevel
// (SmolLM), or a Split regex that llama.cpp knows (GPT-2, Llama 3, Qwen2)
// then ByteLevel without its own regex; a normalizer that is absent or NFC.
// NFC is accepted but not applied, because llama.cpp does not apply it
// either and the ids must match llama.cpp's; text already in NFC, as nearly
// all text is, tokenizes the same. byte_fallback has no effect, since every
// byte already has a token in byte-level BPE, and ignore_merges is accepted
// where llama.cpp implies the same setting from the pre-tokenizer (true
// only for Llama 3).
//
// It returns an error naming the file for invalid JSON, another model
// type, an unknown pre-tokenizer pattern or unsupported component, malformed
// merges, conflicting or invalid ids, and special tokens in
// tokenizer_config.json that are not in the vocabulary.
func LoadHFTokenizer(path string) (*Vocab, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	v, err := parseHFTokenizer(raw)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", path, err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfgRaw, err := os.ReadFile(cfgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cfgRaw = nil
	case err != nil:
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if err := applyHFConfig(v, cfgRaw); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", cfgPath, err)
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("%v (in %s)", err, path)
	}
	return v, nil
}

// parseHFTokenizer builds a vocabulary from tokenizer.json bytes, with
// special ids guessed as for a file without tokenizer_config.json.
func parseHFTokenizer(raw []byte) (*Vocab, error) {
	var f hfTokenizerJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	m := &f.Model
	if m.Type != "BPE" && !(m.Type == "" && m.Merges != nil) {
		return nil, fmt.Errorf("model type %q is not supported (want BPE)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, fmt.Errorf("model.dropout %g makes encoding random; not supported", *m.Dropout)
	}
	if p := m.ContinuingSubwordPrefix; p != nil && *p != "" {
		return nil, fmt.Errorf("model.continuing_subword_prefix %q is not supported", *p)
	}
	if p := m.EndOfWordSuffix; p != nil && *p != "" {
		return nil, fmt.Errorf("model.end_of_word_suffix %q is not supported", *p)
	}
	if err := checkHFNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	pre, err := hfPreTokenizerName(f.PreTokenizer)
	if err != nil {
		return nil, err
	}
	if m.IgnoreMerges != nil && *m.IgnoreMerges != bpeIgnoresMerges(pre) {
		return nil, fmt.Errorf("model.ignore_merges %v does not go with the %q pre-tokenizer, for which llama.cpp sets it %v",
			*m.IgnoreMerges, pre, bpeIgnoresMerges(pre))
	}
	var ids map[string]int64
	if err := json.Unmarshal(m.Vocab, &ids); err != nil || ids == nil {
		return nil, fmt.Errorf("model.vocab is not an object of token ids")
	}
	tokens, err := tokensByID(ids, f.AddedTokens)
	if err != nil {
		return nil, fmt.Errorf("model.vocab: %v", err)
	}
	types := make([]TokenType, len(tokens))
	for i := range types {
		types[i] = TypeNormal
	}
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fmt.Errorf("added token %d is empty", a.ID)
		}
		if cur := tokens[a.ID]; cur != "" && cur != a.Content {
			return nil, fmt.Errorf("added token %q has id %d, which model.vocab gives %q", a.Content, a.ID, cur)
		}
		tokens[a.ID] = a.Content
		types[a.ID] = TypeUserDefined
		if a.Special || hfLooksSpecial(a.Content) {
			types[a.ID] = TypeControl
		}
	}
	for i, tok := range tokens {
		if tok == "" {
			// Holes get the placeholder llama.cpp's converter writes.
			tokens[i] = fmt.Sprintf("[PAD%d]", i)
			types[i] = TypeUnused
		}
	}
	merges, err := parseHFMerges(m.Merges)
	if err != nil {
		return nil, err
	}
	v := &Vocab{
		Model: ModelBPE, Pre: pre, Tokens: tokens, Types: types, Merges: merges,
		BOS: NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, EOT: NoToken,
	}
	if m.UnkToken != nil && *m.UnkToken != "" {
		if v.UNK = findToken(tokens, *m.UnkToken); v.UNK == NoToken {
			return nil, fmt.Errorf("model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
	}
	if id := findToken(tokens, gpt2EndOfText); id != NoToken {
		v.BOS, v.EOS = id, id
	}
	// llama.cpp recognises the end of a turn by these texts.
	for _, eot := range []string{"<|eot_id|>", "<|im_end|>", "<|end|>", gpt2EndOfText} {
		if id := findToken(tokens, eot); id != NoToken {
			v.EOT = id
			break
		}
	}
	return v, nil
}

// hfLooksSpecial is llama.cpp's converter's guess that an added token not
// marked special is still a control token.
func hfLooksSpecial(s string) bool {
	return (strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>") && len(s) >= 4) ||
		(strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>"))
}

func findToken(tokens []string, text string) int32 {
	for i, t := range tokens {
		if t == text {
			return int32(i)
		}
	}
	return NoToken
}

// checkHFNormalizer accepts no normalizer or NFC, alone or in a sequence.
func checkHFNormalizer(n *hfComponent) error {
	if n == nil {
		return nil
	}
	switch n.Type {
	case "NFC":
		return nil
	case "Sequence":
		for i := range n.Normalizers {
			if err := checkHFNormalizer(&n.Normalizers[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("normalizer %q is not supported (only none or NFC, which llama.cpp does not apply either)", n.Type)
}

// hfPreTokenizerName maps a pre_tokenizer to the llama.cpp pre-tokenizer
// name that splits text the same way.
func hfPreTokenizerName(p *hfComponent) (string, error) {
	if p == nil {
		return "", errors.New("no pre_tokenizer: not a byte-level BPE (want ByteLevel)")
	}
	var seq []hfComponent
	if p.Type == "Sequence" {
		seq = p.Pretokenizers
	} else {
		seq = []hfComponent{*p}
	}
	kinds := make([]string, len(seq))
	for i, c := range seq {
		kinds[i] = c.Type
	}
	desc := strings.Join(kinds, "+")
	if len(seq) == 0 || seq[len(seq)-1].Type != "ByteLevel" {
		return "", fmt.Errorf("pre_tokenizer %s is not supported: it must end in ByteLevel", desc)
	}
	bl := seq[len(seq)-1]
	if bl.AddPrefixSpace {
		return "", errors.New("pre_tokenizer ByteLevel with add_prefix_space is not supported (llama.cpp has no such option)")
	}
	useRegex := bl.UseRegex == nil || *bl.UseRegex
	switch {
	case len(seq) == 1 && useRegex:
		return "gpt-2", nil
	case len(seq) == 2 && seq[0].Type == "Digits" && seq[0].IndividualDigits && useRegex:
		return "smollm", nil
	case len(seq) == 2 && seq[0].Type == "Split" && !useRegex:
		s := seq[0]
		if s.Pattern == nil || s.Pattern.Regex == nil {
			return "", errors.New("pre_tokenizer Split without a Regex pattern is not supported")
		}
		if s.Behavior != "Isolated" || s.Invert {
			return "", fmt.Errorf("pre_tokenizer Split with behavior %q, invert %v is not supported (want Isolated, false)", s.Behavior, s.Invert)
		}
		if name, ok := hfSplitPatterns[*s.Pattern.Regex]; ok {
			return name, nil
		}
		return "", fmt.Errorf("pre_tokenizer Split pattern %q is unknown (known: the GPT-2, Llama 3 and Qwen2 patterns)", *s.Pattern.Regex)
	}
	return "", fmt.Errorf("pre_tokenizer %s (ByteLevel use_regex %v) is not supported", desc, useRegex)
}

// parseHFMerges reads model.merges in either form: "left right" strings,
// or [left, right] pairs as newer tokenizer.json files write them.
func parseHFMerges(raw json.RawMessage) ([]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, errors.New("model.merges is not a list")
	}
	merges := make([]string, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		if len(it) > 0 && it[0] == '[' {
			var pair []string
			if err := json.Unmarshal(it, &pair); err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("model.merges[%d]: want a string or a pair of strings, got %s", i, it)
			}
			if pair[0] == "" || pair[1] == "" || strings.Contains(pair[0]+pair[1], " ") {
				// GGUF stores merges as "left right"; a space inside a side
				// would split in the wrong place.
				return nil, fmt.Errorf("model.merges[%d]: %q cannot be written as a \"left right\" merge", i, pair)
			}
			merges[i] = pair[0] + " " + pair[1]
			continue
		}
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, fmt.Errorf("model.merges[%d]: want a string or a pair of strings, got %s", i, it)
		}
		left, right, ok := strings.Cut(s, " ")
		if !ok || left == "" || right == "" || strings.Contains(right, " ") {
			return nil, fmt.Errorf("model.merges[%d]: want two symbols separated by one space, got %q", i, s)
		}
		merges[i] = s
	}
	return merges, nil
}

// hfConfig is the part of tokenizer_config.json that LoadHFTokenizer reads.
type hfConfig struct {
	BOS          hfTokenRef      `json:"bos_token"`
	EOS          hfTokenRef      `json:"eos_token"`
	PAD          hfTokenRef      `json:"pad_token"`
	UNK          hfTokenRef      `json:"unk_token"`
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// hfTokenRef is a special token given as its text or as an AddedToken
// object with the text in "content"; an explicit null (present but not
// set) means the model has no such token.
type hfTokenRef struct {
	text    string
	set     bool
	present bool
}

func (r *hfTokenRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	r.present = true
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '{' {
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(b, &obj); err != nil || obj.Content == nil {
			return fmt.Errorf("want a token string or an object with \"content\", got %s", b)
		}
		r.text, r.set = *obj.Content, true
		return nil
	}
	if err := json.Unmarshal(b, &r.text); err != nil {
		return fmt.Errorf("want a token string or an object with \"content\", got %s", b)
	}
	r.set = true
	return nil
}

// applyHFConfig overrides v's special tokens and flags with those of
// tokenizer_config.json (raw, nil when there is none); a token set to null
// there is removed. Without add_bos_token, a Llama 3 vocabulary adds BOS,
// as llama.cpp assumes for it.
func applyHFConfig(v *Vocab, raw []byte) error {
	var c hfConfig
	if raw != nil {
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("invalid JSON: %v", err)
		}
	}
	for _, s := range []struct {
		name string
		ref  hfTokenRef
		id   *int32
	}{{"bos_token", c.BOS, &v.BOS}, {"eos_token", c.EOS, &v.EOS}, {"pad_token", c.PAD, &v.PAD}, {"unk_token", c.UNK, &v.UNK}} {
		if !s.ref.set {
			if s.ref.present {
				*s.id = NoToken
			}
			continue
		}
		id := findToken(v.Tokens, s.ref.text)
		if id == NoToken {
			return fmt.Errorf("%s %q is not in the vocabulary", s.name, s.ref.text)
		}
		*s.id = id
	}
	switch {
	case c.AddBOS != nil:
		v.AddBOS = *c.AddBOS
	default:
		v.AddBOS = v.Pre == "llama-bpe" && v.BOS != NoToken
	}
	if c.AddEOS != nil {
		v.AddEOS = *c.AddEOS
	}
	if v.AddBOS && v.BOS == NoToken {
		return errors.New("add_bos_token is true but there is no bos_token")
	}
	if v.AddEOS && v.EOS == NoToken {
		return errors.New("add_eos_token is true but there is no eos_token")
	}
	tmpl, err := hfChatTemplate(c.ChatTemplate)
	if err != nil {
		return err
	}
	v.ChatTemplate = tmpl
	return nil
}

// hfChatTemplate reads chat_template, either a string or a list of named
// templates of which it takes the one named "default" (or else the first).
func hfChatTemplate(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", errors.New("chat_template is neither a string nor a list of {name, template}")
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	if len(named) > 0 {
		return named[0].Template, nil
	}
	return "", nil
}
