package data

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFormats(t *testing.T) {
	tests := []struct {
		name   string
		format Format // asked for; FormatAuto detects
		text   string
		want   []Example
		wantF  Format
	}{
		{"text", FormatAuto, `{"text":"hello"}` + "\n" + `{"text":"world","id":7}`,
			[]Example{Text{"hello"}, Text{"world"}}, FormatText},
		{"prompt completion", FormatAuto, `{"prompt":"2+2=","completion":"4"}`,
			[]Example{PromptCompletion{"2+2=", "4"}}, FormatPromptCompletion},
		{"chat", FormatAuto, `{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"tool","content":"{}"}]}`,
			[]Example{Chat{[]Message{{"system", "be brief"}, {"user", "hi"}, {"assistant", "hello"}, {"tool", "{}"}}}}, FormatChat},
		{"preference", FormatAuto, `{"prompt":"p","chosen":"good","rejected":"bad"}`,
			[]Example{Preference{"p", "good", "bad"}}, FormatPreference},
		{"problem", FormatAuto, `{"question":"How many?","answer":"3 + 4 = 7 then\n7 * 2 = 14\n#### 1,014 "}`,
			[]Example{Problem{"How many?", "3 + 4 = 7 then\n7 * 2 = 14", "1014"}}, FormatProblem},
		{"problem without solution", FormatProblem, `{"question":"q","answer":"#### -3"}`,
			[]Example{Problem{"q", "", "-3"}}, FormatProblem},
		{"blank lines, CRLF and BOM", FormatAuto, "\xef\xbb\xbf{\"text\":\"a\"}\r\n\r\n   \n{\"text\":\"b\"}\n\n",
			[]Example{Text{"a"}, Text{"b"}}, FormatText},
		{"forced format ignores extra fields", FormatText, `{"text":"x","prompt":"y","completion":"z"}`,
			[]Example{Text{"x"}}, FormatText},
		{"unicode and escapes", FormatAuto, `{"text":"caf\u00e9 \"q\" <b>\n"}`,
			[]Example{Text{"café \"q\" <b>\n"}}, FormatText},
		{"empty file", FormatAuto, "", nil, FormatAuto},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "train.jsonl", tc.text)
			got, sk, err := Load(p, ReadOptions{Format: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if sk.Count != 0 {
				t.Errorf("skipped %v", sk)
			}
			r, _ := NewReader(strings.NewReader(tc.text), "x", ReadOptions{Format: tc.format})
			for {
				if _, err := r.Next(); err != nil {
					break
				}
			}
			if r.Format() != tc.wantF {
				t.Errorf("format %q, want %q", r.Format(), tc.wantF)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	good := `{"prompt":"a","completion":"b"}` + "\n"
	tests := []struct {
		name   string
		format Format
		text   string
		want   string // the whole error message
	}{
		{"missing field", FormatAuto, good + good + `{"prompt":"a"}`, `train.jsonl:3: missing field "completion"`},
		{"mistyped field", FormatAuto, good + `{"prompt":"a","completion":5}`, `train.jsonl:2: field "completion" is a number, want a string`},
		{"null field", FormatAuto, `{"prompt":null,"completion":"b"}`, `train.jsonl:1: field "prompt" is null, want a string`},
		{"wrong format", FormatAuto, good + "\n\n" + `{"text":"x"}`, `train.jsonl:4: missing field "prompt"`},
		{"bad JSON", FormatAuto, good + `{"prompt":"a",}`, `train.jsonl:2: invalid JSON at column 15: invalid character '}' looking for beginning of object key string`},
		{"truncated JSON", FormatAuto, `{"prompt":"a"`, `train.jsonl:1: invalid JSON at column 13: unexpected end of JSON input`},
		{"trailing data", FormatAuto, `  {"text":"a"} {"text":"b"}`, `train.jsonl:1: invalid JSON at column 16: invalid character '{' after top-level value`},
		{"array", FormatAuto, good + `["a"]`, `train.jsonl:2: want a JSON object, got an array`},
		{"string line", FormatAuto, `"text"`, `train.jsonl:1: want a JSON object, got a string`},
		{"null line", FormatAuto, `null`, `train.jsonl:1: want a JSON object, got null`},
		{"unknown layout", FormatAuto, `{"input":"a","output":"b"}`, `train.jsonl:1: cannot tell the format from fields ["input", "output"]: want "text", "prompt"+"completion", "messages", "prompt"+"chosen"+"rejected" or "question"+"answer"`},
		{"bad role", FormatAuto, `{"messages":[{"role":"user","content":"a"},{"role":"bot","content":"b"}]}`, `train.jsonl:1: messages[1]: unknown role "bot" (want system, user, assistant or tool)`},
		{"missing content", FormatChat, `{"messages":[{"role":"user"}]}`, `train.jsonl:1: messages[0]: missing field "content"`},
		{"mistyped content", FormatChat, `{"messages":[{"role":"user","content":["a"]}]}`, `train.jsonl:1: messages[0]: field "content" is an array, want a string`},
		{"message not object", FormatChat, `{"messages":["hi"]}`, `train.jsonl:1: messages[0] is a string, want an object`},
		{"messages not array", FormatChat, `{"messages":{"role":"user"}}`, `train.jsonl:1: field "messages" is an object, want an array`},
		{"empty messages", FormatChat, `{"messages":[]}`, `train.jsonl:1: field "messages" is empty`},
		{"missing rejected", FormatAuto, `{"prompt":"p","chosen":"c"}`, `train.jsonl:1: missing field "rejected"`},
		{"no marker", FormatAuto, `{"question":"q","answer":"42"}`, `train.jsonl:1: answer has no "#### " final-answer marker`},
		{"empty final answer", FormatAuto, `{"question":"q","answer":"so\n####  "}`, `train.jsonl:1: answer has nothing after "####"`},
		{"mistyped answer", FormatProblem, `{"question":"q","answer":42}`, `train.jsonl:1: field "answer" is a number, want a string`},
		{"forced format", FormatPreference, good, `train.jsonl:1: missing field "chosen"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFile(t, dir, "train.jsonl", tc.text)
			_, _, err := Load(p, ReadOptions{Format: tc.format})
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v (%T), want a *LineError", err, err)
			}
			want := p + strings.TrimPrefix(tc.want, "train.jsonl")
			if err.Error() != want {
				t.Errorf("error\n  %s\nwant\n  %s", err, want)
			}
		})
	}
}

func TestSkipBad(t *testing.T) {
	lines := []string{
		`{"question":"q1","answer":"#### 1"}`,
		`not json`,
		``,
		`{"question":"q2"}`,
		`{"question":"q3","answer":"#### 3"}`,
		`{"text":"x"}`,
		`{"question":"q4","answer":"no marker"}`,
		`{"question":"q5","answer":"#### 5"}`,
		`[]`,
		`{"question":7,"answer":"#### 7"}`,
		`{"question":"q6","answer":"#### 6"}`,
	}
	p := writeFile(t, t.TempDir(), "gsm.jsonl", strings.Join(lines, "\n"))
	got, sk, err := LoadAs[Problem](p, ReadOptions{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	for _, x := range got {
		qs = append(qs, x.Question)
	}
	if want := []string{"q1", "q3", "q5", "q6"}; !reflect.DeepEqual(qs, want) {
		t.Errorf("questions %v, want %v", qs, want)
	}
	if sk.Count != 6 {
		t.Errorf("skipped %d, want 6", sk.Count)
	}
	if want := []int{2, 4, 6, 7, 9}; !reflect.DeepEqual(sk.Lines(), want) {
		t.Errorf("first skipped lines %v, want %v", sk.Lines(), want)
	}
	if want := "skipped 6 bad lines (" + p + ":2, 4, 6, 7, 9, ...)"; sk.String() != want {
		t.Errorf("report %q, want %q", sk, want)
	}
	if !strings.Contains(sk.First[1].Error(), `gsm.jsonl:4: missing field "answer"`) {
		t.Errorf("second skip reason %q", sk.First[1])
	}

	// Detection skips bad lines before the first good one.
	r, _ := NewReader(strings.NewReader("{bad\n{\"text\":\"t\"}\n"), "x.jsonl", ReadOptions{SkipBad: true})
	ex, err := r.Next()
	if err != nil || ex != (Text{"t"}) || r.Line() != 2 || r.Skipped().Count != 1 {
		t.Errorf("after a bad first line: %v, %v, line %d, %v", ex, err, r.Line(), r.Skipped())
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("at end: %v, want io.EOF", err)
	}
}

func TestLongLines(t *testing.T) {
	size := 64 << 20
	if raceEnabled || testing.Short() {
		size = 6 << 20 // still past bufio's buffers and the reader's buffer reuse limit
	}
	long := strings.Repeat("x", size)
	var b bytes.Buffer
	b.WriteString(`{"text":"short"}` + "\n")
	b.WriteString(`{"text":"` + long + `"}` + "\n")
	b.WriteString(`{"text":"end"}`) // no final newline
	p := writeFile(t, t.TempDir(), "long.jsonl", b.String())
	got, _, err := LoadAs[Text](p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Text != "short" || got[1].Text != long || got[2].Text != "end" {
		t.Fatalf("got %d records", len(got))
	}

	// Past the limit a line is malformed, and skippable.
	_, _, err = Load(p, ReadOptions{MaxLineBytes: 1 << 20})
	if err == nil || !strings.HasSuffix(err.Error(), "long.jsonl:2: line longer than 1048576 bytes") {
		t.Errorf("error %v", err)
	}
	got2, sk, err := LoadAs[Text](p, ReadOptions{MaxLineBytes: 1 << 20, SkipBad: true})
	if err != nil || len(got2) != 2 || got2[1].Text != "end" || sk.Count != 1 {
		t.Errorf("skipping the long line: %v, %v, %v", got2, sk, err)
	}
}

func TestLoadAsFormatClash(t *testing.T) {
	p := writeFile(t, t.TempDir(), "a.jsonl", `{"text":"a"}`)
	if _, _, err := LoadAs[Text](p, ReadOptions{Format: FormatChat}); err == nil {
		t.Error("no error for a format clash")
	}
	if _, _, err := LoadAs[Chat](p, ReadOptions{}); err == nil || !strings.Contains(err.Error(), `a.jsonl:1: missing field "messages"`) {
		t.Errorf("reading text as chat: %v", err)
	}
	if exs, _, err := LoadAs[Example](p, ReadOptions{}); err != nil || len(exs) != 1 || exs[0] != (Text{"a"}) {
		t.Errorf("LoadAs[Example]: %v, %v", exs, err)
	}
	if _, err := NewReader(strings.NewReader(""), "x", ReadOptions{Format: "csv"}); err == nil {
		t.Error("no error for an unknown format")
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing.jsonl"), ReadOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestWriteJSONLRoundTrip(t *testing.T) {
	exs := []Example{
		Text{"a <b> & c\n"},
		PromptCompletion{"p", "c"},
		Chat{[]Message{{RoleUser, "hi"}, {RoleAssistant, "yo"}}},
		Preference{"p", "c", "r"},
		Problem{"q?", "1+1=2", "2"},
		Problem{"q?", "", "2"},
	}
	for _, ex := range exs {
		dir := t.TempDir()
		p := filepath.Join(dir, "out.jsonl")
		if err := WriteJSONLFile(p, []Example{ex, ex}); err != nil {
			t.Fatal(err)
		}
		got, _, err := Load(p, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, []Example{ex, ex}) {
			t.Errorf("round trip of %#v gave %#v", ex, got)
		}
		b, _ := os.ReadFile(p)
		if ex.Format() == FormatText && !bytes.Contains(b, []byte("<b> &")) {
			t.Errorf("HTML escaped: %s", b)
		}
	}
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		in, norm string
		extract  string
		ok       bool
	}{
		{"1,450,000", "1450000", "", false},
		{" 18 \n", "18", "", false},
		{"so 5\n#### 1,234\n", "so5####1234", "1234", true},
		{"#### 3\nthen #### 4 apples", "####3then####4apples", "4apples", true},
		{"####", "####", "", false},
		{"#### \nmore", "####more", "", false},
	}
	for _, tc := range tests {
		if got := NormalizeAnswer(tc.in); got != tc.norm {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", tc.in, got, tc.norm)
		}
		got, ok := ExtractAnswer(tc.in)
		if got != tc.extract || ok != tc.ok {
			t.Errorf("ExtractAnswer(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.extract, tc.ok)
		}
	}
	p := Problem{Question: "q", Solution: "s", Answer: "1014"}
	for out, want := range map[string]bool{"s\n#### 1,014": true, "#### 1014\n": true, "1014": false, "#### 1015": false, "#### 1014 #### 7": false} {
		if p.Correct(out) != want {
			t.Errorf("Correct(%q) = %v, want %v", out, !want, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"", "auto", "text", "prompt_completion", "chat", "preference", "problem"} {
		f, err := ParseFormat(s)
		if err != nil || (s != "auto" && string(f) != s) {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("sharegpt"); err == nil {
		t.Error("no error for an unknown format")
	}
}

// dataPath returns $MINNOW_DATA/rel, skipping the test when MINNOW_DATA is
// unset and failing it when the file is missing.
func dataPath(t *testing.T, rel string) string {
	t.Helper()
	root := os.Getenv("MINNOW_DATA")
	if root == "" {
		t.Skipf("MINNOW_DATA is not set; set it to the shared data directory to read %s", rel)
	}
	p := filepath.Join(root, rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("MINNOW_DATA is set but %s is missing: %v", rel, err)
	}
	return p
}

func TestGSM8K(t *testing.T) {
	for _, tc := range []struct {
		file string
		n    int
	}{{"gsm8k/test.jsonl", 1319}, {"gsm8k/train.jsonl", 7473}} {
		p := dataPath(t, tc.file)
		got, sk, err := LoadAs[Problem](p, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.n || sk.Count != 0 {
			t.Fatalf("%s: %d problems, %d skipped, want %d", tc.file, len(got), sk.Count, tc.n)
		}
		for i, x := range got {
			if x.Question == "" || x.Solution == "" || x.Answer == "" {
				t.Fatalf("%s:%d: empty part in %#v", tc.file, i+1, x)
			}
			if strings.ContainsAny(x.Answer, ", ") || strings.Contains(x.Solution, AnswerMarker) {
				t.Fatalf("%s:%d: answer %q not split cleanly", tc.file, i+1, x.Answer)
			}
			if !x.Correct(x.Target()) {
				t.Fatalf("%s:%d: the reference answer does not check", tc.file, i+1)
			}
		}
		if tc.n == 1319 {
			if got[0].Answer != "18" || !strings.HasPrefix(got[0].Question, "Janet") {
				t.Errorf("first problem %#v", got[0])
			}
		}
	}
}
