package data

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
)

// byteTok is a byte-level tokenizer (id = byte, EOS = 256, BOS = 257) so
// that token boundaries are known exactly without any data files.
type byteTok struct{ v *tokenizer.Vocab }

func newByteTok(addBOS bool) byteTok {
	return byteTok{&tokenizer.Vocab{BOS: 257, EOS: 256, UNK: -1, PAD: -1, EOT: -1, AddBOS: addBOS}}
}

func (b byteTok) Encode(text string, _ tokenizer.EncodeOptions) []int32 {
	ids := make([]int32, len(text))
	for i := range len(text) {
		ids[i] = int32(text[i])
	}
	return ids
}

func (b byteTok) Decode(ids []int32, _ tokenizer.DecodeOptions) string {
	var sb strings.Builder
	for _, id := range ids {
		if id < 256 {
			sb.WriteByte(byte(id))
		}
	}
	return sb.String()
}

func (b byteTok) Vocab() *tokenizer.Vocab { return b.v }

// split returns the decoded text of the trainable and the other tokens.
func split(tok tokenizer.Tokenizer, ids []int32, trainable []bool) (train, other string) {
	var a, b []int32
	for i, id := range ids {
		if trainable[i] {
			a = append(a, id)
		} else {
			b = append(b, id)
		}
	}
	return tok.Decode(a, tokenizer.DecodeOptions{}), tok.Decode(b, tokenizer.DecodeOptions{})
}

func TestTokenizeSFTPlain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		addBOS bool
		ex     Example
		want   []int32
		train  []bool
	}{
		{"no bos", false, PromptCompletion{Prompt: "ab", Completion: "c"}, []int32{'a', 'b', 'c', 256}, []bool{false, false, true, true}},
		{"bos", true, PromptCompletion{Prompt: "a", Completion: "bc"}, []int32{257, 'a', 'b', 'c', 256}, []bool{false, false, true, true, true}},
		{"pointer", false, &PromptCompletion{Prompt: "a", Completion: "b"}, []int32{'a', 'b', 256}, []bool{false, true, true}},
		// A worked problem trains on its solution and "#### answer".
		{"problem", false, Problem{Question: "q", Solution: "s", Answer: "7"},
			[]int32{'q', 's', '\n', '#', '#', '#', '#', ' ', '7', 256},
			[]bool{false, true, true, true, true, true, true, true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, tr, err := TokenizeSFT(tc.ex, newByteTok(tc.addBOS), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, tc.want) || !slices.Equal(tr, tc.train) {
				t.Fatalf("got %v %v, want %v %v", ids, tr, tc.want, tc.train)
			}
		})
	}
}

func TestTokenizeSFTChat(t *testing.T) {
	tmpl, err := tokenizer.ChatTemplateByName("chatml")
	if err != nil {
		t.Fatal(err)
	}
	chat := Chat{Messages: []Message{{Role: RoleSystem, Content: "Be brief."}, {Role: RoleUser, Content: "Hi"},
		{Role: RoleAssistant, Content: "Hello!"}, {Role: RoleUser, Content: "Bye"}, {Role: RoleAssistant, Content: "See you."}}}
	toks := []struct {
		name string
		tok  func(t *testing.T) tokenizer.Tokenizer
	}{
		{"bytes", func(*testing.T) tokenizer.Tokenizer { return newByteTok(false) }},
		{"gpt2", gpt2Tok},
	}
	for _, tk := range toks {
		for _, ex := range []Example{chat, PromptCompletion{Prompt: "2+2?", Completion: "4"}} {
			t.Run(tk.name+"/"+string(ex.Format()), func(t *testing.T) {
				tok := tk.tok(t)
				ids, tr, err := TokenizeSFT(ex, tok, &tmpl)
				if err != nil {
					t.Fatal(err)
				}
				msgs := []tokenizer.Message{}
				if c, ok := ex.(Chat); ok {
					for _, m := range c.Messages {
						msgs = append(msgs, tokenizer.Message(m))
					}
				} else {
					pc := ex.(PromptCompletion)
					msgs = []tokenizer.Message{{Role: "user", Content: pc.Prompt}, {Role: "assistant", Content: pc.Completion}}
				}
				spans, err := tmpl.RenderSpans(msgs, false)
				if err != nil {
					t.Fatal(err)
				}
				var wantTrain, wantOther string
				for _, s := range spans {
					if s.Assistant {
						wantTrain += s.Text
					} else {
						wantOther += s.Text
					}
				}
				gotTrain, gotOther := split(tok, ids, tr)
				if gotTrain != wantTrain || gotOther != wantOther {
					t.Fatalf("trainable %q, other %q; want %q, %q", gotTrain, gotOther, wantTrain, wantOther)
				}
				if !strings.Contains(gotTrain, "<|im_end|>") || strings.Contains(gotTrain, "Be brief") || strings.Contains(gotTrain, "Hi") {
					t.Fatalf("trainable text %q should hold the assistant turns and their end marker only", gotTrain)
				}
			})
		}
	}
}

// gpt2Tok loads the GPT-2 vocabulary from MINNOW_DATA, skipping without it.
func gpt2Tok(t *testing.T) tokenizer.Tokenizer {
	t.Helper()
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		t.Skip("MINNOW_DATA is not set")
	}
	tok, err := tokenizer.LoadGGUF(filepath.Join(dir, "llama-vocab", "ggml-vocab-gpt-2.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenizeSFTPlainGPT2(t *testing.T) {
	tok := gpt2Tok(t)
	ex := PromptCompletion{Prompt: "Question: what is the capital of France?\nAnswer:", Completion: " Paris."}
	ids, tr, err := TokenizeSFT(ex, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := tok.Encode(ex.Prompt, tokenizer.EncodeOptions{})
	c := tok.Encode(ex.Completion, tokenizer.EncodeOptions{})
	want := slices.Concat(p, c, []int32{tok.Vocab().EOS})
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	for i := range tr {
		if tr[i] != (i >= len(p)) {
			t.Fatalf("token %d (%d of prompt) trainable=%v", i, len(p), tr[i])
		}
	}
}

func TestTokenizeSFTErrors(t *testing.T) {
	tmpl, err := tokenizer.ChatTemplateByName("chatml")
	if err != nil {
		t.Fatal(err)
	}
	noEOS := byteTok{&tokenizer.Vocab{BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}}
	for _, tc := range []struct {
		name string
		ex   Example
		tok  tokenizer.Tokenizer
		tmpl *tokenizer.ChatTemplate
		want string
	}{
		{"text", Text{Text: "x"}, newByteTok(false), nil, "cannot be fine-tuned"},
		{"chat without template", Chat{Messages: []Message{{Role: RoleUser, Content: "x"}}}, newByteTok(false), nil, "needs a chat template"},
		{"no assistant", Chat{Messages: []Message{{Role: RoleUser, Content: "x"}}}, newByteTok(false), &tmpl, "no trainable token"},
		{"no eos", PromptCompletion{Prompt: "a", Completion: "b"}, noEOS, nil, "no EOS"},
		{"bad role", Chat{Messages: []Message{{Role: RoleTool, Content: "x"}}}, newByteTok(false), &tmpl, "data: sft:"},
		{"no tokenizer", PromptCompletion{Prompt: "a", Completion: "b"}, nil, nil, "no tokenizer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := TokenizeSFT(tc.ex, tc.tok, tc.tmpl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// seq returns an example of n tokens first, first+1, ...; the first k are
// prompt.
func seq(first int32, n, k int) SFTSequence {
	s := SFTSequence{}
	for i := range n {
		s.IDs = append(s.IDs, first+int32(i))
		s.Trainable = append(s.Trainable, i >= k)
	}
	return s
}

func TestPackSFT(t *testing.T) {
	const pad = 0
	for _, tc := range []struct {
		name    string
		seqs    []SFTSequence
		seqLen  int
		docLens [][]int
	}{
		{"one short", []SFTSequence{seq(10, 3, 1)}, 6, [][]int{{3, 3}}},
		{"two fit", []SFTSequence{seq(10, 3, 1), seq(20, 4, 2)}, 6, [][]int{{3, 3}}},
		{"exact fill", []SFTSequence{seq(10, 3, 1), seq(20, 3, 2)}, 6, [][]int{{3, 3}}},
		{"spill", []SFTSequence{seq(10, 4, 1), seq(20, 4, 2), seq(30, 2, 0)}, 6, [][]int{{4, 2}, {4, 2}}},
		{"one pad target", []SFTSequence{seq(10, 6, 2)}, 6, [][]int{{6}}},
		{"max length", []SFTSequence{seq(10, 7, 2), seq(20, 2, 1)}, 6, [][]int{{6}, {2, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := PackSFT(tc.seqs, tc.seqLen, pad)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tc.docLens) {
				t.Fatalf("%d rows, want %d", len(rows), len(tc.docLens))
			}
			next := 0 // the next example to find
			for ri, r := range rows {
				if !slices.Equal(r.DocLens, tc.docLens[ri]) {
					t.Fatalf("row %d doc lengths %v, want %v", ri, r.DocLens, tc.docLens[ri])
				}
				if len(r.IDs) != tc.seqLen || len(r.Targets) != tc.seqLen || len(r.Positions) != tc.seqLen {
					t.Fatalf("row %d has lengths %d %d %d", ri, len(r.IDs), len(r.Targets), len(r.Positions))
				}
				at := 0
				for _, l := range r.DocLens {
					for i := range l {
						if r.Positions[at+i] != int32(i) {
							t.Fatalf("row %d position %d = %d, want %d", ri, at+i, r.Positions[at+i], i)
						}
					}
					// The document is either the next example, whole (its
					// last token maybe only as the row's extra target), or
					// padding.
					if next < len(tc.seqs) && r.IDs[at] == tc.seqs[next].IDs[0] {
						s := tc.seqs[next]
						next++
						if l != len(s.IDs) && !(l == len(s.IDs)-1 && at+l == tc.seqLen) {
							t.Fatalf("row %d: example %d of %d tokens split to %d", ri, next-1, len(s.IDs), l)
						}
						for i := range l {
							want := int32(-100)
							if i+1 < len(s.IDs) && s.Trainable[i+1] {
								want = s.IDs[i+1]
							}
							if r.IDs[at+i] != s.IDs[i] || r.Targets[at+i] != want {
								t.Fatalf("row %d token %d: id %d target %d, want %d %d", ri, at+i, r.IDs[at+i], r.Targets[at+i], s.IDs[i], want)
							}
						}
					} else {
						for i := range l {
							if r.IDs[at+i] != pad || r.Targets[at+i] != -100 {
								t.Fatalf("row %d padding token %d: id %d target %d", ri, at+i, r.IDs[at+i], r.Targets[at+i])
							}
						}
					}
					at += l
				}
				if at != tc.seqLen {
					t.Fatalf("row %d doc lengths add up to %d", ri, at)
				}
			}
			if next != len(tc.seqs) {
				t.Fatalf("found %d of %d examples", next, len(tc.seqs))
			}
		})
	}
}

func TestPackSFTErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		seqs   []SFTSequence
		seqLen int
		want   string
	}{
		{"too long", []SFTSequence{seq(1, 8, 1)}, 6, "more than sequence length"},
		{"too short", []SFTSequence{seq(1, 1, 0)}, 6, "at least 2"},
		{"mismatch", []SFTSequence{{IDs: []int32{1, 2}, Trainable: []bool{true}}}, 6, "trainable flags"},
		{"seq len", nil, 0, "sequence length 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PackSFT(tc.seqs, tc.seqLen, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
