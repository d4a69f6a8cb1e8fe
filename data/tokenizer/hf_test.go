package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/internal/shareddata"
)

// hfFixture loads testdata/<dir>/tokenizer.json.
func hfFixture(t *testing.T, dir string) (*Vocab, Tokenizer) {
	t.Helper()
	v, err := LoadHFTokenizer(filepath.Join("testdata", dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	tk, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	return v, tk
}

// hfIDs returns the ids of tokens by their vocabulary text.
func hfIDs(t *testing.T, v *Vocab, texts ...string) []int32 {
	t.Helper()
	var ids []int32
	for _, s := range texts {
		id := findToken(v.Tokens, s)
		if id == NoToken {
			t.Fatalf("no token %q", s)
		}
		ids = append(ids, id)
	}
	return ids
}

// The fixtures share a vocabulary: the 256 byte characters, the results of
// the merges h+e, l+l, he+ll, hell+o, Ġ+w, o+r, Ġw+or, Ġwor+ld, l+d, 1+2,
// the token xyz that no merge builds, then each file's added tokens.
func TestLoadHFTokenizerFixtures(t *testing.T) {
	tests := []struct {
		dir      string
		pre      string
		bos, eos string
		eot      string
		addBOS   bool
		template bool
		types    map[string]TokenType
		encode   map[string][]string // text -> token texts, ParseSpecial off
	}{
		{
			dir: "hf-gpt2", pre: "gpt-2", bos: "<|endoftext|>", eos: "<|endoftext|>", eot: "<|endoftext|>",
			types: map[string]TokenType{"<|endoftext|>": TypeControl, "hello": TypeNormal},
			encode: map[string][]string{
				"hello world": {"hello", "Ġworld"},
				"xyz":         {"x", "y", "z"},
				"x12":         {"x", "12"},
			},
		},
		{
			dir: "hf-llama3", pre: "llama-bpe", bos: "<|begin_of_text|>", eos: "<|eot_id|>", eot: "<|eot_id|>",
			addBOS: true, template: true,
			types: map[string]TokenType{
				"<|begin_of_text|>": TypeControl, "<|eot_id|>": TypeControl,
				"<|python_tag|>": TypeControl, // not marked special, but spelled like a control token
				"[tool]":         TypeUserDefined,
			},
			encode: map[string][]string{
				"hello world": {"hello", "Ġworld"},
				"xyz":         {"xyz"}, // ignore_merges
				"1234":        {"12", "3", "4"},
				"a[tool]b":    {"a", "[tool]", "b"}, // user-defined tokens always match
				"<|eot_id|>":  {"<", "|", "e", "o", "t", "_", "i", "d", "|", ">"},
			},
		},
		{
			dir: "hf-qwen2", pre: "qwen2", bos: "<|endoftext|>", eos: "<|endoftext|>", eot: "<|im_end|>",
			types: map[string]TokenType{"<|im_start|>": TypeControl},
			encode: map[string][]string{
				"hello world": {"hello", "Ġworld"},
				"1234":        {"1", "2", "3", "4"},
			},
		},
		{
			dir: "hf-smollm", pre: "smollm", bos: "<|endoftext|>", eos: "<|endoftext|>", eot: "<|endoftext|>",
			encode: map[string][]string{
				"hello world": {"hello", "Ġworld"},
				"x12":         {"x", "1", "2"},
			},
		},
	}
	for _, tc := range tests {
		v, tk := hfFixture(t, tc.dir)
		if v.Model != ModelBPE || v.Pre != tc.pre {
			t.Errorf("%s: model %q pre %q, want %q %q", tc.dir, v.Model, v.Pre, ModelBPE, tc.pre)
		}
		want := hfIDs(t, v, tc.bos, tc.eos, tc.eot)
		if got := []int32{v.BOS, v.EOS, v.EOT}; !slices.Equal(got, want) {
			t.Errorf("%s: BOS, EOS, EOT = %v, want %v", tc.dir, got, want)
		}
		if v.AddBOS != tc.addBOS || v.AddEOS {
			t.Errorf("%s: AddBOS %v AddEOS %v, want %v false", tc.dir, v.AddBOS, v.AddEOS, tc.addBOS)
		}
		if (v.ChatTemplate != "") != tc.template {
			t.Errorf("%s: chat template %q", tc.dir, v.ChatTemplate)
		}
		if len(v.Merges) != 10 || v.Merges[4] != "Ġ w" || v.Merges[9] != "1 2" {
			t.Errorf("%s: merges %q", tc.dir, v.Merges)
		}
		for text, typ := range tc.types {
			if id := hfIDs(t, v, text)[0]; v.Types[id] != typ {
				t.Errorf("%s: %q has type %d, want %d", tc.dir, text, v.Types[id], typ)
			}
		}
		for text, toks := range tc.encode {
			got := tk.Encode(text, EncodeOptions{})
			if want := hfIDs(t, v, toks...); !slices.Equal(got, want) {
				t.Errorf("%s: Encode(%q) = %v, want %v (%q)", tc.dir, text, got, want, toks)
			}
			if back := tk.Decode(got, DecodeOptions{}); back != text {
				t.Errorf("%s: Decode(Encode(%q)) = %q", tc.dir, text, back)
			}
		}
		if tc.addBOS {
			got := tk.Encode("xyz", EncodeOptions{AddSpecial: true})
			if want := hfIDs(t, v, tc.bos, "xyz"); !slices.Equal(got, want) {
				t.Errorf("%s: Encode(AddSpecial) = %v, want %v", tc.dir, got, want)
			}
		}
	}
}

// hfWriteJSON marshals obj into dir/name.
func hfWriteJSON(t *testing.T, dir, name string, obj any) string {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// hfFixtureMap reads a fixture as generic JSON for a test to break.
func hfFixtureMap(t *testing.T, dir string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadHFTokenizerErrors(t *testing.T) {
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	pre := func(m map[string]any) map[string]any { return m["pre_tokenizer"].(map[string]any) }
	tests := []struct {
		name    string
		fixture string
		modify  func(m map[string]any)
		config  string // tokenizer_config.json content, if any
		want    string
	}{
		{"model type", "hf-gpt2", func(m map[string]any) { model(m)["type"] = "Unigram" }, "", `model type "Unigram"`},
		{"vocab list", "hf-gpt2", func(m map[string]any) { model(m)["vocab"] = []any{"a"} }, "", "model.vocab"},
		{"negative id", "hf-gpt2", func(m map[string]any) { model(m)["vocab"].(map[string]any)["q"] = -3 }, "", "id -3"},
		{"shared id", "hf-gpt2", func(m map[string]any) { model(m)["vocab"].(map[string]any)["qq"] = 5 }, "", "share id 5"},
		{"merge string", "hf-gpt2", func(m map[string]any) { model(m)["merges"].([]any)[2] = "hell" }, "", "merges[2]"},
		{"merge pair", "hf-llama3", func(m map[string]any) { model(m)["merges"].([]any)[1] = []any{"l", "l", "x"} }, "", "merges[1]"},
		{"merge pair space", "hf-llama3", func(m map[string]any) { model(m)["merges"].([]any)[1] = []any{"l l", "x"} }, "", "merges[1]"},
		{"merges missing", "hf-gpt2", func(m map[string]any) { delete(model(m), "merges") }, "", "model.merges"},
		{"added id clash", "hf-gpt2", func(m map[string]any) {
			m["added_tokens"].([]any)[0].(map[string]any)["id"] = 7
		}, "", "added token"},
		{"dropout", "hf-gpt2", func(m map[string]any) { model(m)["dropout"] = 0.1 }, "", "dropout"},
		{"subword prefix", "hf-gpt2", func(m map[string]any) { model(m)["continuing_subword_prefix"] = "##" }, "", "continuing_subword_prefix"},
		{"ignore_merges", "hf-gpt2", func(m map[string]any) { model(m)["ignore_merges"] = true }, "", "ignore_merges"},
		{"normalizer", "hf-gpt2", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }, "", `normalizer "Lowercase"`},
		{"no pre-tokenizer", "hf-gpt2", func(m map[string]any) { m["pre_tokenizer"] = nil }, "", "pre_tokenizer"},
		{"prefix space", "hf-gpt2", func(m map[string]any) { pre(m)["add_prefix_space"] = true }, "", "add_prefix_space"},
		{"whitespace", "hf-gpt2", func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }, "", "Whitespace"},
		{"unknown pattern", "hf-llama3", func(m map[string]any) {
			split := pre(m)["pretokenizers"].([]any)[0].(map[string]any)
			split["pattern"] = map[string]any{"Regex": `\p{N}{1,4}| ?\p{L}+`}
		}, "", "is unknown"},
		{"split behavior", "hf-llama3", func(m map[string]any) {
			pre(m)["pretokenizers"].([]any)[0].(map[string]any)["behavior"] = "Removed"
		}, "", "Removed"},
		{"bad config", "hf-gpt2", nil, `{"bos_token": `, "tokenizer_config.json"},
		{"config bos", "hf-gpt2", nil, `{"bos_token": "<s>"}`, `bos_token "<s>"`},
		{"config add_bos", "hf-smollm", func(m map[string]any) { m["added_tokens"] = []any{} }, `{"add_bos_token": true}`, "add_bos_token"},
		{"config template", "hf-gpt2", nil, `{"chat_template": 7}`, "chat_template"},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		m := hfFixtureMap(t, tc.fixture)
		if tc.modify != nil {
			tc.modify(m)
		}
		path := hfWriteJSON(t, dir, "tokenizer.json", m)
		if tc.config != "" {
			if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := LoadHFTokenizer(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: error = %v, want one naming a file in %s and mentioning %q", tc.name, err, dir, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(bad, []byte(`{"model": {"type": "BPE", "vocab": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHFTokenizer(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "invalid JSON") {
		t.Errorf("truncated JSON: error = %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nope.json")
	if _, err := LoadHFTokenizer(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: error = %v", err)
	}
}

// TestLoadHFTokenizerConfig checks tokenizer_config.json overrides, as
// Qwen2-Instruct's: no BOS (null), <|im_end|> as EOS, and add_eos_token.
func TestLoadHFTokenizerConfig(t *testing.T) {
	dir := t.TempDir()
	path := hfWriteJSON(t, dir, "tokenizer.json", hfFixtureMap(t, "hf-qwen2"))
	cfg := `{"bos_token": null, "eos_token": {"content": "<|im_end|>", "special": true}, "pad_token": "<|endoftext|>",
		"add_eos_token": true, "chat_template": "{{ m }}"}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := LoadHFTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{NoToken, hfIDs(t, v, "<|im_end|>")[0], hfIDs(t, v, "<|endoftext|>")[0]}
	if got := []int32{v.BOS, v.EOS, v.PAD}; !slices.Equal(got, want) {
		t.Errorf("BOS, EOS, PAD = %v, want %v", got, want)
	}
	if v.AddBOS || !v.AddEOS || v.ChatTemplate != "{{ m }}" {
		t.Errorf("AddBOS %v, AddEOS %v, template %q", v.AddBOS, v.AddEOS, v.ChatTemplate)
	}
	tk, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("hello", EncodeOptions{AddSpecial: true}); !slices.Equal(got, hfIDs(t, v, "hello", "<|im_end|>")) {
		t.Errorf("Encode(AddSpecial) = %v", got)
	}
}

func TestHFChatTemplateForms(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`"{{ x }}"`, "{{ x }}"},
		{`[{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]`, "D"},
		{`[{"name": "rag", "template": "R"}]`, "R"},
		{`null`, ""},
		{``, ""},
	} {
		got, err := hfChatTemplate(json.RawMessage(tc.raw))
		if err != nil || got != tc.want {
			t.Errorf("hfChatTemplate(%s) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}

func TestLoadVocabMergesGPT2(t *testing.T) {
	dir := shareddata.Path(t, bpeGPT2Dir)
	v, err := LoadVocabMerges(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 50257 || len(v.Merges) != 50000 || v.Pre != "gpt-2" || v.Model != ModelBPE {
		t.Fatalf("%d tokens, %d merges, pre %q, model %q", len(v.Tokens), len(v.Merges), v.Pre, v.Model)
	}
	if v.BOS != bpeGPT2EndOfText || v.EOS != bpeGPT2EndOfText || v.EOT != bpeGPT2EndOfText || v.Types[bpeGPT2EndOfText] != TypeControl {
		t.Errorf("BOS %d EOS %d EOT %d type %d", v.BOS, v.EOS, v.EOT, v.Types[bpeGPT2EndOfText])
	}
	if v.Tokens[0] != "!" || v.Merges[0] != "Ġ t" || v.AddBOS || v.AddEOS {
		t.Errorf("token 0 %q, merge 0 %q, AddBOS %v, AddEOS %v", v.Tokens[0], v.Merges[0], v.AddBOS, v.AddEOS)
	}
	// The same merges behind a "#version" line, with CRLF endings.
	raw, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	alt := filepath.Join(t.TempDir(), "merges.txt")
	text := "#version: 0.2\r\n" + strings.ReplaceAll(string(raw), "\n", "\r\n")
	if err := os.WriteFile(alt, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	v2, err := LoadVocabMerges(filepath.Join(dir, "vocab.json"), alt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v2.Merges, v.Merges) {
		t.Error("merges with a #version line and CRLF differ")
	}
}

func TestLoadVocabMergesErrors(t *testing.T) {
	good := `{"a": 0, "b": 1, "ab": 2}`
	tests := []struct {
		name, vocab, merges string
		bad                 string // "vocab" or "merges": the file the error must name
		want                string
	}{
		{"malformed vocab", `{"a": 0,`, "a b\n", "vocab", "JSON"},
		{"vocab not object", `["a"]`, "a b\n", "vocab", "JSON"},
		{"gap", `{"a": 0, "b": 2}`, "a b\n", "vocab", "no token has id 1"},
		{"shared id", `{"a": 0, "b": 0}`, "a b\n", "vocab", "share id 0"},
		{"negative", `{"a": -1}`, "a b\n", "vocab", "id -1"},
		{"huge id", `{"a": 4000000000}`, "a b\n", "vocab", "id 4000000000"},
		{"one symbol", good, "a b\nab\n", "merges", "line 2"},
		{"three symbols", good, "a b c\n", "merges", "line 1"},
		{"two spaces", good, "a  b\n", "merges", "line 1"},
		{"no merges", good, "#version: 0.2\n", "merges", "no merges"},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		vp, mp := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
		if err := os.WriteFile(vp, []byte(tc.vocab), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mp, []byte(tc.merges), 0o644); err != nil {
			t.Fatal(err)
		}
		named := map[string]string{"vocab": vp, "merges": mp}[tc.bad]
		_, err := LoadVocabMerges(vp, mp)
		if err == nil || !strings.Contains(err.Error(), named) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want one naming %s and mentioning %q", tc.name, err, named, tc.want)
		}
	}
	dir := t.TempDir()
	if _, err := LoadVocabMerges(filepath.Join(dir, "none.json"), filepath.Join(dir, "none.txt")); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing vocab.json: error = %v", err)
	}
}

// TestLoadHFTokenizerMatchesVocabMerges writes GPT-2's vocab.json and
// merges.txt as a tokenizer.json (merges as pairs, the newer form) and
// checks that both loaders give the same vocabulary and ids.
func TestLoadHFTokenizerMatchesVocabMerges(t *testing.T) {
	dir := shareddata.Path(t, bpeGPT2Dir)
	ref, err := LoadVocabMerges(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	rawVocab, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	pairs := make([][2]string, len(ref.Merges))
	for i, m := range ref.Merges {
		l, r, _ := strings.Cut(m, " ")
		pairs[i] = [2]string{l, r}
	}
	tj := map[string]any{
		"version": "1.0",
		"added_tokens": []any{map[string]any{
			"id": bpeGPT2EndOfText, "content": "<|endoftext|>", "special": true,
		}},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "byte_fallback": false,
			"vocab": json.RawMessage(rawVocab), "merges": pairs,
		},
	}
	v, err := LoadHFTokenizer(hfWriteJSON(t, t.TempDir(), "tokenizer.json", tj))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.Tokens, ref.Tokens) || !slices.Equal(v.Merges, ref.Merges) || !slices.Equal(v.Types, ref.Types) {
		t.Fatal("tokenizer.json vocabulary differs from vocab.json + merges.txt")
	}
	if v.Pre != ref.Pre || v.BOS != ref.BOS || v.EOS != ref.EOS || v.EOT != ref.EOT || v.AddBOS != ref.AddBOS {
		t.Errorf("settings differ: %+v vs %+v", []any{v.Pre, v.BOS, v.EOS, v.EOT, v.AddBOS}, []any{ref.Pre, ref.BOS, ref.EOS, ref.EOT, ref.AddBOS})
	}
	a, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ref)
	if err != nil {
		t.Fatal(err)
	}
	text := bpeShakespeareText(t)[:100000]
	if !reflect.DeepEqual(a.Encode(text, EncodeOptions{}), b.Encode(text, EncodeOptions{})) {
		t.Error("ids differ")
	}
}
