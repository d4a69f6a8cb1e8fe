package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// The roles a chat Message may have. Tool calls and other roles are not
// supported: none of the built-in formats has a way to write them.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation. It has the shape of data.Message
// (without the JSON tags), so one converts to the other directly.
type Message struct {
	Role    string
	Content string
}

// Span is a piece of a rendered conversation. Assistant marks text the
// model is to learn to produce: an assistant message's content together
// with its end-of-turn marker, so that the model also learns to stop.
type Span struct {
	Text      string
	Assistant bool
}

// Default system messages that some models' own templates insert when a
// conversation does not open with a system message. The built-in formats
// never insert one by themselves; pass one of these (or any text) to
// ChatTemplate.WithDefaultSystem to reproduce such a model's prompts, or let
// DetectChatTemplate read it from the model's template.
const (
	// Qwen2DefaultSystem is inserted by Qwen2-Instruct's template.
	Qwen2DefaultSystem = "You are a helpful assistant."
	// Qwen25DefaultSystem is inserted by Qwen2.5-Instruct's template.
	Qwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
	// SmolLM2DefaultSystem is inserted by SmolLM2-Instruct's template (it
	// has no final full stop).
	SmolLM2DefaultSystem = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
)

// ChatTemplate renders a conversation as the prompt text of one chat
// format. The zero value has no format: its Render and RenderSpans return
// an error. A ChatTemplate is a small immutable value, safe to copy and to
// use concurrently.
//
// The rendered text writes the format's special tokens (and, for llama3 and
// llama2, the BOS token) as text, exactly as Hugging Face's
// apply_chat_template does, so it must be encoded with
// EncodeOptions{ParseSpecial: true} and without AddSpecial, or the markers
// would be split as ordinary text and BOS would appear twice.
//
// The built-in formats, by name:
//
//   - "chatml" (Qwen2, Qwen2.5, SmolLM2, OpenHermes):
//     "<|im_start|>{role}\n{content}<|im_end|>\n" per message, generation
//     prompt "<|im_start|>assistant\n", content written as is.
//   - "llama3" (Meta-Llama-3-Instruct): "<|begin_of_text|>", then
//     "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>" per
//     message with the content trimmed of surrounding white space, generation
//     prompt "<|start_header_id|>assistant<|end_header_id|>\n\n".
//   - "llama2" (Llama-2-chat): "<s>[INST] {user} [/INST] {assistant} </s>"
//     per exchange, the system message wrapped in "<<SYS>>\n...\n<</SYS>>\n\n"
//     at the head of the first user message, contents trimmed; roles must
//     alternate user/assistant after an optional leading system message.
//     The format has no separate generation prompt: a conversation ending in
//     a user message already ends in "[/INST]", and addGenerationPrompt has
//     no effect, as in Meta's template.
//   - "plain", minnow's format for chat models trained from scratch, which
//     needs no special tokens: "System: {content}\n", "User: {content}\n" and
//     "Assistant: {content}<|endoftext|>\n" per message, generation prompt
//     "Assistant:". The prompt ends without a space so that a byte-level BPE
//     model produces the space together with the first word, as it saw it
//     in training; the assistant span therefore starts with that space.
//     "<|endoftext|>" ends an assistant turn (register it as the EOS or EOT
//     token when training the tokenizer so that llama.cpp stops on it);
//     "\nUser:" is a second stop string, for a model that runs on.
type ChatTemplate struct {
	f             *chatFormat
	defaultSystem string
}

// chatFormat is one built-in format.
type chatFormat struct {
	name string
	// stop lists the texts at which generation stops, the end-of-turn
	// marker first.
	stop []string
	// markers are the format's control strings. A message containing one
	// would end its turn early or open a new one (special tokens once
	// encoded with ParseSpecial; llama2's tags even as plain text), which
	// corrupts SFT data silently, so Render refuses it.
	markers []string
	// alternating formats take an optional leading system message and then
	// strictly alternating user and assistant messages, starting with user.
	alternating bool
	// render writes the conversation, whose messages have been validated.
	render func(b *spanBuilder, msgs []Message, addGenerationPrompt bool)
}

var chatFormats = []*chatFormat{
	{
		name:    "chatml",
		stop:    []string{"<|im_end|>"},
		markers: []string{"<|im_start|>", "<|im_end|>"},
		render:  renderChatML,
	},
	{
		name:        "llama2",
		stop:        []string{"</s>"},
		markers:     []string{"<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"},
		alternating: true,
		render:      renderLlama2,
	},
	{
		name:    "llama3",
		stop:    []string{"<|eot_id|>"},
		markers: []string{"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
		render:  renderLlama3,
	},
	{
		name:    "plain",
		stop:    []string{plainEndOfTurn, "\nUser:"},
		markers: []string{plainEndOfTurn},
		render:  renderPlain,
	},
}

// plainEndOfTurn closes an assistant turn in the plain format. It is
// GPT-2's end-of-text token, which a from-scratch byte-level BPE vocabulary
// usually has anyway.
const plainEndOfTurn = "<|endoftext|>"

// ChatTemplateNames returns the names of the built-in chat formats, sorted.
func ChatTemplateNames() []string {
	names := make([]string, len(chatFormats))
	for i, f := range chatFormats {
		names[i] = f.name
	}
	slices.Sort(names)
	return names
}

// ChatTemplateByName returns the built-in chat format called name ("chatml",
// "llama2", "llama3" or "plain"), without a default system message; it
// returns an error listing the known names when there is none of that name.
func ChatTemplateByName(name string) (ChatTemplate, error) {
	for _, f := range chatFormats {
		if f.name == name {
			return ChatTemplate{f: f}, nil
		}
	}
	return ChatTemplate{}, fmt.Errorf("tokenizer: unknown chat template %q (known: %s)",
		name, strings.Join(ChatTemplateNames(), ", "))
}

// Name returns the name of the template's format, or "" for the zero
// ChatTemplate.
func (t ChatTemplate) Name() string {
	if t.f == nil {
		return ""
	}
	return t.f.name
}

// DefaultSystem returns the system message Render inserts when a
// conversation does not open with one, or "" when it inserts none.
func (t ChatTemplate) DefaultSystem() string { return t.defaultSystem }

// WithDefaultSystem returns a copy of t that inserts a system message with
// content system whenever a conversation does not open with a system
// message, as Qwen2's and SmolLM2's own templates do; "" inserts none.
func (t ChatTemplate) WithDefaultSystem(system string) ChatTemplate {
	t.defaultSystem = system
	return t
}

// Stop returns the texts at which generation should stop, the format's
// end-of-turn marker first; it returns nil for the zero ChatTemplate.
func (t ChatTemplate) Stop() []string {
	if t.f == nil {
		return nil
	}
	return slices.Clone(t.f.stop)
}

// Render returns msgs as prompt text, followed by the opening of an
// assistant turn when addGenerationPrompt is set. It returns an error when
// t is the zero ChatTemplate, when msgs is empty, when a role is not
// "system", "user" or "assistant", when a content contains one of the
// format's control markers, or when the order of roles is one the format
// cannot express (llama2 requires user/assistant alternation after an
// optional leading system message).
func (t ChatTemplate) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	spans, err := t.RenderSpans(msgs, addGenerationPrompt)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, s := range spans {
		sb.WriteString(s.Text)
	}
	return sb.String(), nil
}

// RenderSpans renders msgs as Render does, split into spans whose texts
// concatenate to Render's output: the spans marked Assistant hold exactly
// each assistant message's rendered content and its end-of-turn marker,
// which is what SFT takes its loss on. Adjacent spans differ in Assistant
// and none is empty. It returns the errors Render returns.
func (t ChatTemplate) RenderSpans(msgs []Message, addGenerationPrompt bool) ([]Span, error) {
	if t.f == nil {
		return nil, fmt.Errorf("tokenizer: chat template has no format (use ChatTemplateByName or DetectChatTemplate)")
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: no messages to render", t.f.name)
	}
	for i, m := range msgs {
		if err := t.f.validate(m); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: message %d: %w", t.f.name, i, err)
		}
	}
	if t.f.alternating {
		if err := checkAlternation(msgs); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", t.f.name, err)
		}
	}
	// The default system message goes in after the checks so that their
	// message numbers are the caller's; it cannot upset the alternation,
	// since it only ever takes the place of an absent leading system
	// message.
	if t.defaultSystem != "" && msgs[0].Role != RoleSystem {
		sys := Message{Role: RoleSystem, Content: t.defaultSystem}
		if err := t.f.validate(sys); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: default system message: %w", t.f.name, err)
		}
		msgs = append([]Message{sys}, msgs...)
	}
	var b spanBuilder
	t.f.render(&b, msgs, addGenerationPrompt)
	return b.spans, nil
}

// checkAlternation checks the order of roles for an alternating format.
func checkAlternation(msgs []Message) error {
	first := 0
	if msgs[0].Role == RoleSystem {
		first = 1
	}
	if first == len(msgs) {
		// Meta's Llama 2 template would silently render nothing at all.
		return fmt.Errorf("a system message needs a user message after it")
	}
	for i := first; i < len(msgs); i++ {
		want := RoleUser
		if (i-first)%2 == 1 {
			want = RoleAssistant
		}
		if msgs[i].Role != want {
			return fmt.Errorf("message %d is %s, want %s: roles must alternate user/assistant after an optional leading system message",
				i, msgs[i].Role, want)
		}
	}
	return nil
}

// validate checks one message's role and content.
func (f *chatFormat) validate(m Message) error {
	switch m.Role {
	case RoleSystem, RoleUser, RoleAssistant:
	default:
		return fmt.Errorf("role %q is not %q, %q or %q", m.Role, RoleSystem, RoleUser, RoleAssistant)
	}
	for _, mk := range f.markers {
		if strings.Contains(m.Content, mk) {
			return fmt.Errorf("%s content contains the control marker %q", m.Role, mk)
		}
	}
	return nil
}

// spanBuilder accumulates spans, merging adjacent text of the same kind so
// that callers get the fewest spans.
type spanBuilder struct {
	spans []Span
}

func (b *spanBuilder) add(text string, assistant bool) {
	if text == "" {
		return
	}
	if n := len(b.spans); n > 0 && b.spans[n-1].Assistant == assistant {
		b.spans[n-1].Text += text
		return
	}
	b.spans = append(b.spans, Span{Text: text, Assistant: assistant})
}

// renderChatML follows Qwen2-Instruct's and SmolLM2-Instruct's templates
// (less their default system message, which ChatTemplate adds when asked):
// the content is written untouched, and the newline after <|im_end|> is not
// assistant text, since generation stops at <|im_end|>.
func renderChatML(b *spanBuilder, msgs []Message, gen bool) {
	for _, m := range msgs {
		b.add("<|im_start|>"+m.Role+"\n", false)
		b.add(m.Content+"<|im_end|>", m.Role == RoleAssistant)
		b.add("\n", false)
	}
	if gen {
		b.add("<|im_start|>assistant\n", false)
	}
}

// renderLlama3 follows Meta-Llama-3-8B-Instruct's template: BOS once, and
// every content passed through Jinja's trim filter.
func renderLlama3(b *spanBuilder, msgs []Message, gen bool) {
	b.add("<|begin_of_text|>", false)
	for _, m := range msgs {
		b.add("<|start_header_id|>"+m.Role+"<|end_header_id|>\n\n", false)
		b.add(pyStrip(m.Content)+"<|eot_id|>", m.Role == RoleAssistant)
	}
	if gen {
		b.add("<|start_header_id|>assistant<|end_header_id|>\n\n", false)
	}
}

// renderLlama2 follows Llama-2-7b-chat-hf's template. The system block is
// joined to the first user message before the whole is stripped, so of the
// white space around the system text and that message only what trails the
// message goes, as there. The template ignores add_generation_prompt, and
// so does this.
func renderLlama2(b *spanBuilder, msgs []Message, _ bool) {
	system, hasSystem := "", false
	if msgs[0].Role == RoleSystem {
		system, hasSystem = msgs[0].Content, true
		msgs = msgs[1:]
	}
	for i, m := range msgs {
		content := m.Content
		if m.Role == RoleUser {
			if i == 0 && hasSystem {
				content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
			}
			b.add("<s>[INST] "+pyStrip(content)+" [/INST]", false)
		} else {
			b.add(" "+pyStrip(content)+" </s>", true)
		}
	}
}

// renderPlain writes minnow's plain format; see ChatTemplate.
func renderPlain(b *spanBuilder, msgs []Message, gen bool) {
	for _, m := range msgs {
		switch m.Role {
		case RoleSystem:
			b.add("System: "+m.Content+"\n", false)
		case RoleUser:
			b.add("User: "+m.Content+"\n", false)
		case RoleAssistant:
			b.add("Assistant:", false)
			b.add(" "+m.Content+plainEndOfTurn, true)
			b.add("\n", false)
		}
	}
	if gen {
		b.add("Assistant:", false)
	}
}

// pyStrip trims white space as Python's str.strip() (and so Jinja's trim
// filter) does: Go's unicode.IsSpace plus the ASCII separators U+001C to
// U+001F, which Python counts as white space and Go does not.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	})
}

// DetectChatTemplate returns the built-in format that a model's chat
// template source (Jinja, as found in tokenizer_config.json's
// "chat_template" or GGUF's tokenizer.chat_template) writes, recognised by
// its markers as llama.cpp's llama_chat_detect_template does; it does not
// interpret the Jinja. A source that is just a built-in name selects that
// format. For chatml, a default system message that the template writes as
// a literal (as Qwen2's, Qwen2.5's and SmolLM2's do) becomes the returned
// template's DefaultSystem, so rendering matches the model's own template.
//
// It returns an error naming the markers it looked for when the source
// matches no format, and an error naming the marker found when the source
// belongs to a family whose prompts the built-ins would not reproduce
// exactly: Phi-4 and SmolVLM (which use <|im_start|> but are not chatml),
// reasoning templates with <think> (Qwen3, SmolLM3), Llama 3.1 and later
// (which always open with a dated system turn), and [INST] templates
// without <<SYS>> (Mistral).
func DetectChatTemplate(source string) (ChatTemplate, error) {
	src := strings.TrimSpace(source)
	if src == "" {
		return ChatTemplate{}, fmt.Errorf("tokenizer: empty chat template")
	}
	if t, err := ChatTemplateByName(src); err == nil {
		return t, nil
	}
	unsupported := func(family, marker string) (ChatTemplate, error) {
		return ChatTemplate{}, fmt.Errorf("tokenizer: chat template contains %q: %s, which no built-in format reproduces", marker, family)
	}
	has := func(s string) bool { return strings.Contains(src, s) }
	switch {
	case has("<|im_start|>"):
		switch {
		case has("<|im_sep|>"):
			return unsupported("Phi-4's format", "<|im_sep|>")
		case has("<end_of_utterance>"):
			return unsupported("SmolVLM's format", "<end_of_utterance>")
		case has("<think>"):
			return unsupported("a reasoning format that adds <think> blocks", "<think>")
		}
		t, _ := ChatTemplateByName("chatml")
		return t.WithDefaultSystem(chatMLDefaultSystem(src)), nil
	case has("[INST]"):
		if !has("<<SYS>>") {
			return unsupported("Mistral's [INST] format (Llama 2's has <<SYS>>)", "[INST]")
		}
		return ChatTemplateByName("llama2")
	case has("<|start_header_id|>") && has("<|end_header_id|>"):
		if has("Cutting Knowledge Date") {
			return unsupported("Llama 3.1 or later, whose system turn always carries dates", "Cutting Knowledge Date")
		}
		return ChatTemplateByName("llama3")
	}
	return ChatTemplate{}, fmt.Errorf("tokenizer: unrecognised chat template: looked for %q (chatml), "+
		"%q with %q (llama3), %q with %q (llama2), or a built-in name (%s)",
		"<|im_start|>", "<|start_header_id|>", "<|end_header_id|>", "[INST]", "<<SYS>>",
		strings.Join(ChatTemplateNames(), ", "))
}

// chatMLDefaultSystem returns the default system message a chatml template
// source writes as one string literal, "<|im_start|>system" and a newline
// (escaped or not) followed by the text and "<|im_end|>", or "" when it
// writes none. A candidate holding an unescaped quote or a Jinja delimiter
// crosses out of the literal, into an expression such as
// messages[0]['content'], and is skipped.
func chatMLDefaultSystem(src string) string {
	const open, end = "<|im_start|>system", "<|im_end|>"
	for rest := src; ; {
		i := strings.Index(rest, open)
		if i < 0 {
			return ""
		}
		rest = rest[i+len(open):]
		var body string
		switch {
		case strings.HasPrefix(rest, `\n`):
			body = rest[2:]
		case strings.HasPrefix(rest, "\n"):
			body = rest[1:]
		default:
			continue
		}
		j := strings.Index(body, end)
		if j < 0 {
			return ""
		}
		if text, ok := unquoteLiteral(body[:j]); ok && text != "" {
			return text
		}
	}
}

// unquoteLiteral decodes the backslash escapes of the inside of a Jinja
// string literal; ok is false when s cannot lie within one literal.
func unquoteLiteral(s string) (text string, ok bool) {
	for _, delim := range []string{"{{", "}}", "{%", "%}", "{#"} {
		if strings.Contains(s, delim) {
			return "", false
		}
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\'', '"':
			return "", false
		case '\\':
			if i+1 == len(s) {
				return "", false
			}
			i++
			switch s[i] {
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case '\\', '\'', '"':
				sb.WriteByte(s[i])
			default:
				// An escape Python would keep as written.
				sb.WriteByte('\\')
				sb.WriteByte(s[i])
			}
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String(), true
}
