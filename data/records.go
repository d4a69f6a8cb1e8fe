package data

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Format names the layout of a JSONL record.
type Format string

// The record layouts. FormatAuto asks the reader to detect the layout from
// the first valid line.
const (
	FormatAuto             Format = ""
	FormatText             Format = "text"              // {"text"}
	FormatPromptCompletion Format = "prompt_completion" // {"prompt","completion"}
	FormatChat             Format = "chat"              // {"messages":[{"role","content"}]}
	FormatPreference       Format = "preference"        // {"prompt","chosen","rejected"}
	FormatProblem          Format = "problem"           // {"question","answer"} (GSM8K)
)

var formats = []Format{FormatText, FormatPromptCompletion, FormatChat, FormatPreference, FormatProblem}

// ParseFormat returns the Format named s ("auto" or "" for FormatAuto); it
// returns an error naming the known formats when s is none of them.
func ParseFormat(s string) (Format, error) {
	if s == "" || s == "auto" {
		return FormatAuto, nil
	}
	for _, f := range formats {
		if string(f) == s {
			return f, nil
		}
	}
	return FormatAuto, fmt.Errorf("data: unknown format %q (want auto, text, prompt_completion, chat, preference or problem)", s)
}

// Example is one training record: a Text, PromptCompletion, Chat,
// Preference or Problem. The set is closed so that a type switch over it
// can be exhaustive.
type Example interface {
	// Format returns the record layout the example is read from and
	// written as.
	Format() Format
	example()
}

// Text is a plain document for pretraining.
type Text struct {
	Text string `json:"text"`
}

// PromptCompletion is an SFT pair: the loss is taken on Completion only.
type PromptCompletion struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// The roles a Message may have.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Chat is a conversation for chat SFT.
type Chat struct {
	Messages []Message `json:"messages"`
}

// Preference is a DPO-style record: a prompt with a preferred and a
// dispreferred completion.
type Preference struct {
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
}

// Problem is a question with a verifiable final answer, in GSM8K's
// convention: the answer text is a worked solution followed by a line
// "#### <final answer>".
type Problem struct {
	Question string
	// Solution is the worked solution: the answer text before the
	// "####" marker, without trailing space.
	Solution string
	// Answer is the final answer, normalised by NormalizeAnswer.
	Answer string
}

// Format returns FormatText.
func (Text) Format() Format { return FormatText }

// Format returns FormatPromptCompletion.
func (PromptCompletion) Format() Format { return FormatPromptCompletion }

// Format returns FormatChat.
func (Chat) Format() Format { return FormatChat }

// Format returns FormatPreference.
func (Preference) Format() Format { return FormatPreference }

// Format returns FormatProblem.
func (Problem) Format() Format { return FormatProblem }

func (Text) example()             {}
func (PromptCompletion) example() {}
func (Chat) example()             {}
func (Preference) example()       {}
func (Problem) example()          {}

// AnswerMarker introduces the final answer in GSM8K-style answers.
const AnswerMarker = "####"

// Target returns the full answer text, the worked solution then the line
// "#### <answer>", which is what a model is trained to produce; it never
// fails.
func (p Problem) Target() string {
	if p.Solution == "" {
		return AnswerMarker + " " + p.Answer
	}
	return p.Solution + "\n" + AnswerMarker + " " + p.Answer
}

// Correct reports whether a model's output states p's final answer: its
// last "####" line, normalised, equals p.Answer. It is the verifiable
// reward of RL on problems and never fails.
func (p Problem) Correct(output string) bool {
	got, ok := ExtractAnswer(output)
	return ok && got == p.Answer
}

// MarshalJSON writes p in GSM8K's layout {"question","answer"}, so that
// the JSONL reader reads it back; it returns no error of its own.
func (p Problem) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Question string `json:"question"`
		Answer   string `json:"answer"`
	}{p.Question, p.Target()})
}

// UnmarshalJSON reads p from GSM8K's layout; it returns an error when a
// field is missing or not a string, or the answer has no final answer.
func (p *Problem) UnmarshalJSON(b []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	q, err := parseProblem(obj)
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// NormalizeAnswer returns a final answer in canonical form for comparison:
// without thousands separators (commas) or white space, so that "1,450,000"
// and "1450000" compare equal.
func NormalizeAnswer(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ',' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// ExtractAnswer returns the normalised final answer of a GSM8K-style text:
// what follows the last "####" up to the end of its line. It reports false
// when there is no marker or nothing follows it.
func ExtractAnswer(text string) (string, bool) {
	i := strings.LastIndex(text, AnswerMarker)
	if i < 0 {
		return "", false
	}
	rest := text[i+len(AnswerMarker):]
	if j := strings.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	a := NormalizeAnswer(rest)
	return a, a != ""
}

// splitAnswer splits a GSM8K answer into its worked solution and final
// answer.
func splitAnswer(answer string) (solution, final string, err error) {
	i := strings.LastIndex(answer, AnswerMarker)
	if i < 0 {
		return "", "", fmt.Errorf("answer has no %q final-answer marker", AnswerMarker+" ")
	}
	final = NormalizeAnswer(answer[i+len(AnswerMarker):])
	if final == "" {
		return "", "", fmt.Errorf("answer has nothing after %q", AnswerMarker)
	}
	return strings.TrimRightFunc(answer[:i], unicode.IsSpace), final, nil
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw json.RawMessage) string {
	s := strings.TrimLeft(string(raw[:min(len(raw), 8)]), " \t\r\n")
	if s == "" {
		return "empty"
	}
	switch s[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// stringField returns the string field name of obj; the error says whether
// it is missing or of another type.
func stringField(obj map[string]json.RawMessage, name string) (string, error) {
	raw, ok := obj[name]
	if !ok {
		return "", fmt.Errorf("missing field %q", name)
	}
	var s string
	if k := jsonKind(raw); k != "a string" {
		return "", fmt.Errorf("field %q is %s, want a string", name, k)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q: %v", name, err)
	}
	return s, nil
}

func parseText(obj map[string]json.RawMessage) (Text, error) {
	s, err := stringField(obj, "text")
	return Text{s}, err
}

func parsePromptCompletion(obj map[string]json.RawMessage) (PromptCompletion, error) {
	var x PromptCompletion
	var err error
	if x.Prompt, err = stringField(obj, "prompt"); err != nil {
		return x, err
	}
	x.Completion, err = stringField(obj, "completion")
	return x, err
}

func parsePreference(obj map[string]json.RawMessage) (Preference, error) {
	var x Preference
	var err error
	if x.Prompt, err = stringField(obj, "prompt"); err != nil {
		return x, err
	}
	if x.Chosen, err = stringField(obj, "chosen"); err != nil {
		return x, err
	}
	x.Rejected, err = stringField(obj, "rejected")
	return x, err
}

func parseProblem(obj map[string]json.RawMessage) (Problem, error) {
	var x Problem
	var err error
	if x.Question, err = stringField(obj, "question"); err != nil {
		return x, err
	}
	answer, err := stringField(obj, "answer")
	if err != nil {
		return x, err
	}
	x.Solution, x.Answer, err = splitAnswer(answer)
	return x, err
}

func parseChat(obj map[string]json.RawMessage) (Chat, error) {
	raw, ok := obj["messages"]
	if !ok {
		return Chat{}, fmt.Errorf("missing field %q", "messages")
	}
	if k := jsonKind(raw); k != "an array" {
		return Chat{}, fmt.Errorf("field %q is %s, want an array", "messages", k)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return Chat{}, fmt.Errorf("field %q: %v", "messages", err)
	}
	if len(items) == 0 {
		return Chat{}, fmt.Errorf("field %q is empty", "messages")
	}
	c := Chat{Messages: make([]Message, len(items))}
	for i, item := range items {
		if k := jsonKind(item); k != "an object" {
			return Chat{}, fmt.Errorf("messages[%d] is %s, want an object", i, k)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(item, &m); err != nil {
			return Chat{}, fmt.Errorf("messages[%d]: %v", i, err)
		}
		role, err := stringField(m, "role")
		if err != nil {
			return Chat{}, fmt.Errorf("messages[%d]: %v", i, err)
		}
		switch role {
		case RoleSystem, RoleUser, RoleAssistant, RoleTool:
		default:
			return Chat{}, fmt.Errorf("messages[%d]: unknown role %q (want system, user, assistant or tool)", i, role)
		}
		content, err := stringField(m, "content")
		if err != nil {
			return Chat{}, fmt.Errorf("messages[%d]: %v", i, err)
		}
		c.Messages[i] = Message{Role: role, Content: content}
	}
	return c, nil
}

// parseRecord parses obj as format f.
func parseRecord(f Format, obj map[string]json.RawMessage) (Example, error) {
	switch f {
	case FormatText:
		return parseText(obj)
	case FormatPromptCompletion:
		return parsePromptCompletion(obj)
	case FormatChat:
		return parseChat(obj)
	case FormatPreference:
		return parsePreference(obj)
	case FormatProblem:
		return parseProblem(obj)
	}
	panic(fmt.Sprintf("data: parseRecord of format %q", f))
}

// detectFormat tells a record's format from its keys. Keys are tested from
// the most specific layout to the least, since a preference record also has
// a "prompt" and any record may carry a stray "text".
func detectFormat(obj map[string]json.RawMessage) (Format, error) {
	has := func(k string) bool { _, ok := obj[k]; return ok }
	switch {
	case has("messages"):
		return FormatChat, nil
	case has("chosen") || has("rejected"):
		return FormatPreference, nil
	case has("question") || has("answer"):
		return FormatProblem, nil
	case has("prompt") || has("completion"):
		return FormatPromptCompletion, nil
	case has("text"):
		return FormatText, nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, fmt.Sprintf("%q", k))
	}
	slices.Sort(keys)
	return FormatAuto, fmt.Errorf("cannot tell the format from fields [%s]: want \"text\", \"prompt\"+\"completion\", \"messages\", \"prompt\"+\"chosen\"+\"rejected\" or \"question\"+\"answer\"", strings.Join(keys, ", "))
}
