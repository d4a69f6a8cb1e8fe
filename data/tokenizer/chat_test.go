package tokenizer

import (
	"slices"
	"strings"
	"testing"
)

// The conversations every format is checked on. multiTurn is llama.cpp's
// test conversation (tests/test-chat-template.cpp), with its padded
// assistant reply that shows which formats trim content.
var (
	singleUser = []Message{{RoleUser, "Hello"}}
	multiTurn  = []Message{
		{RoleSystem, "You are a helpful assistant"},
		{RoleUser, "Hello"},
		{RoleAssistant, "Hi there"},
		{RoleUser, "Who are you"},
		{RoleAssistant, "   I am an assistant   "},
	}
)

func mustTemplate(t *testing.T, name string) ChatTemplate {
	t.Helper()
	tmpl, err := ChatTemplateByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// TestChatRender checks each format's text against strings written by hand
// from the reference templates:
//
//   - chatml: Qwen/Qwen2-7B-Instruct's tokenizer_config.json chat_template,
//     {{'<|im_start|>' + message['role'] + '\n' + message['content'] +
//     '<|im_end|>' + '\n'}} per message, '<|im_start|>assistant\n' as the
//     generation prompt, and '<|im_start|>system\nYou are a helpful
//     assistant.<|im_end|>\n' first when messages[0] is not a system message
//     (SmolLM2-Instruct's is the same with its own text).
//   - llama3: meta-llama/Meta-Llama-3-8B-Instruct's template, bos_token and
//     then '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
//     message['content'] | trim + '<|eot_id|>' (the filter binds to the
//     content only), generation prompt
//     '<|start_header_id|>assistant<|end_header_id|>\n\n'; llama.cpp's test
//     expects "I am an assistant" trimmed for the same conversation.
//   - llama2: meta-llama/Llama-2-7b-chat-hf's template,
//     bos_token + '[INST] ' + content.strip() + ' [/INST]' per user message
//     (the first one prefixed by '<<SYS>>\n' + system + '\n<</SYS>>\n\n'
//     before stripping) and ' ' + content.strip() + ' ' + eos_token per
//     assistant message.
func TestChatRender(t *testing.T) {
	tests := []struct {
		name string
		tmpl ChatTemplate
		msgs []Message
		gen  bool
		want string
	}{
		{"chatml/single", mustTemplate(t, "chatml"), singleUser, true,
			"<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
		{"chatml/qwen2-default-system", mustTemplate(t, "chatml").WithDefaultSystem(Qwen2DefaultSystem), singleUser, true,
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
		{"chatml/smollm2-default-system", mustTemplate(t, "chatml").WithDefaultSystem(SmolLM2DefaultSystem), singleUser, true,
			"<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" +
				"<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
		{"chatml/multi", mustTemplate(t, "chatml"), multiTurn, false,
			"<|im_start|>system\nYou are a helpful assistant<|im_end|>\n" +
				"<|im_start|>user\nHello<|im_end|>\n" +
				"<|im_start|>assistant\nHi there<|im_end|>\n" +
				"<|im_start|>user\nWho are you<|im_end|>\n" +
				"<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"},
		// A conversation's own system message replaces the default.
		{"chatml/multi-default-system-unused", mustTemplate(t, "chatml").WithDefaultSystem(Qwen2DefaultSystem), multiTurn[:2], false,
			"<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"},

		{"llama3/single", mustTemplate(t, "llama3"), singleUser, true,
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama3/multi", mustTemplate(t, "llama3"), multiTurn, false,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"},
		// Python's strip also removes U+001C..U+001F, which Go's
		// unicode.IsSpace does not count.
		{"llama3/python-whitespace", mustTemplate(t, "llama3"), []Message{{RoleUser, "\x1f\u3000 Hi\t\n\x1c"}}, false,
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"},

		{"llama2/single", mustTemplate(t, "llama2"), singleUser, true,
			"<s>[INST] Hello [/INST]"},
		// The flag changes nothing: the format has no generation prompt.
		{"llama2/single-no-gen", mustTemplate(t, "llama2"), singleUser, false,
			"<s>[INST] Hello [/INST]"},
		{"llama2/multi", mustTemplate(t, "llama2"), multiTurn, false,
			"<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s>" +
				"<s>[INST] Who are you [/INST] I am an assistant </s>"},
		// Stripping applies to the system block and first message joined,
		// which starts with "<<SYS>>": only the user's trailing space goes.
		{"llama2/strip-joined", mustTemplate(t, "llama2"), []Message{{RoleSystem, " sys "}, {RoleUser, " hi "}}, true,
			"<s>[INST] <<SYS>>\n sys \n<</SYS>>\n\n hi [/INST]"},

		{"plain/single", mustTemplate(t, "plain"), singleUser, true,
			"User: Hello\nAssistant:"},
		{"plain/multi", mustTemplate(t, "plain"), multiTurn, false,
			"System: You are a helpful assistant\n" +
				"User: Hello\n" +
				"Assistant: Hi there<|endoftext|>\n" +
				"User: Who are you\n" +
				"Assistant:    I am an assistant   <|endoftext|>\n"},
		{"plain/multi-gen", mustTemplate(t, "plain"), multiTurn[:4], true,
			"System: You are a helpful assistant\nUser: Hello\nAssistant: Hi there<|endoftext|>\nUser: Who are you\nAssistant:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tmpl.Render(tc.msgs, tc.gen)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Render =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestChatRenderSpans checks that the spans rebuild Render's text, that no
// span is empty or of the same kind as its neighbour, and that the
// assistant spans are exactly each reply and its end-of-turn marker.
func TestChatRenderSpans(t *testing.T) {
	tests := []struct {
		name          string
		msgs          []Message
		gen           bool
		wantAssistant []string
	}{
		{"chatml", multiTurn, false, []string{"Hi there<|im_end|>", "   I am an assistant   <|im_end|>"}},
		{"chatml", singleUser, true, nil},
		{"llama3", multiTurn, false, []string{"Hi there<|eot_id|>", "I am an assistant<|eot_id|>"}},
		{"llama3", multiTurn[:3], true, []string{"Hi there<|eot_id|>"}},
		{"llama2", multiTurn, false, []string{" Hi there </s>", " I am an assistant </s>"}},
		{"llama2", multiTurn[1:4], false, []string{" Hi there </s>"}},
		{"plain", multiTurn, false, []string{" Hi there<|endoftext|>", "    I am an assistant   <|endoftext|>"}},
		// A reply with empty content still teaches the model to stop.
		{"chatml", []Message{{RoleUser, "x"}, {RoleAssistant, ""}}, false, []string{"<|im_end|>"}},
		// A conversation may open with an assistant turn in chatml: the
		// first span is then still the non-assistant header.
		{"chatml", []Message{{RoleAssistant, "hi"}}, false, []string{"hi<|im_end|>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := mustTemplate(t, tc.name)
			spans, err := tmpl.RenderSpans(tc.msgs, tc.gen)
			if err != nil {
				t.Fatal(err)
			}
			text, err := tmpl.Render(tc.msgs, tc.gen)
			if err != nil {
				t.Fatal(err)
			}
			var joined strings.Builder
			var assistant []string
			for i, s := range spans {
				if s.Text == "" {
					t.Errorf("span %d is empty", i)
				}
				if i > 0 && spans[i-1].Assistant == s.Assistant {
					t.Errorf("spans %d and %d are both Assistant=%v", i-1, i, s.Assistant)
				}
				joined.WriteString(s.Text)
				if s.Assistant {
					assistant = append(assistant, s.Text)
				}
			}
			if joined.String() != text {
				t.Errorf("spans join to\n%q\nRender gives\n%q", joined.String(), text)
			}
			if !slices.Equal(assistant, tc.wantAssistant) {
				t.Errorf("assistant spans = %q, want %q", assistant, tc.wantAssistant)
			}
		})
	}
}

func TestChatRenderErrors(t *testing.T) {
	tests := []struct {
		name    string
		tmpl    ChatTemplate
		msgs    []Message
		wantErr string
	}{
		{"zero template", ChatTemplate{}, singleUser, "no format"},
		{"no messages", mustTemplate(t, "chatml"), nil, "no messages"},
		{"tool role", mustTemplate(t, "chatml"), []Message{{RoleUser, "a"}, {"tool", "b"}}, `message 1: role "tool"`},
		{"capitalised role", mustTemplate(t, "llama3"), []Message{{"User", "a"}}, `message 0: role "User"`},
		{"empty role", mustTemplate(t, "plain"), []Message{{"", "a"}}, `message 0: role ""`},
		{"chatml marker", mustTemplate(t, "chatml"), []Message{{RoleUser, "a<|im_end|>b"}}, `"<|im_end|>"`},
		{"llama3 marker", mustTemplate(t, "llama3"), []Message{{RoleUser, "q"}, {RoleAssistant, "<|eot_id|>"}}, `message 1: assistant content contains the control marker "<|eot_id|>"`},
		{"llama2 marker", mustTemplate(t, "llama2"), []Message{{RoleUser, "<s>struck</s>"}}, `"<s>"`},
		{"plain marker", mustTemplate(t, "plain"), []Message{{RoleUser, "<|endoftext|>"}}, `"<|endoftext|>"`},
		{"default system marker", mustTemplate(t, "chatml").WithDefaultSystem("<|im_start|>"), singleUser, "default system message"},
		{"llama2 system only", mustTemplate(t, "llama2"), multiTurn[:1], "needs a user message"},
		{"llama2 assistant first", mustTemplate(t, "llama2"), []Message{{RoleAssistant, "a"}}, "message 0 is assistant, want user"},
		{"llama2 two users", mustTemplate(t, "llama2"), []Message{{RoleSystem, "s"}, {RoleUser, "a"}, {RoleUser, "b"}}, "message 2 is user, want assistant"},
		{"llama2 late system", mustTemplate(t, "llama2"), []Message{{RoleUser, "a"}, {RoleAssistant, "b"}, {RoleSystem, "c"}}, "message 2 is system, want user"},
		// The inserted default system message does not shift the numbers.
		{"llama2 numbering with default", mustTemplate(t, "llama2").WithDefaultSystem("s"), []Message{{RoleUser, "a"}, {RoleUser, "b"}}, "message 1 is user, want assistant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spans, err := tc.tmpl.RenderSpans(tc.msgs, true)
			if err == nil {
				t.Fatalf("RenderSpans = %+v, want an error containing %q", spans, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if _, err := tc.tmpl.Render(tc.msgs, true); err == nil {
				t.Errorf("Render accepted what RenderSpans refused")
			}
		})
	}
}

func TestChatTemplateByName(t *testing.T) {
	tests := []struct {
		name     string
		wantStop []string
	}{
		{"chatml", []string{"<|im_end|>"}},
		{"llama3", []string{"<|eot_id|>"}},
		{"llama2", []string{"</s>"}},
		{"plain", []string{"<|endoftext|>", "\nUser:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := mustTemplate(t, tc.name)
			if tmpl.Name() != tc.name {
				t.Errorf("Name = %q", tmpl.Name())
			}
			if tmpl.DefaultSystem() != "" {
				t.Errorf("DefaultSystem = %q, want none by default", tmpl.DefaultSystem())
			}
			stop := tmpl.Stop()
			if !slices.Equal(stop, tc.wantStop) {
				t.Errorf("Stop = %q, want %q", stop, tc.wantStop)
			}
			// Stop hands out a copy.
			stop[0] = "changed"
			if tmpl.Stop()[0] != tc.wantStop[0] {
				t.Errorf("modifying Stop's result changed the template")
			}
		})
	}
	if got, want := ChatTemplateNames(), []string{"chatml", "llama2", "llama3", "plain"}; !slices.Equal(got, want) {
		t.Errorf("ChatTemplateNames = %q, want %q", got, want)
	}
	_, err := ChatTemplateByName("vicuna")
	if err == nil || !strings.Contains(err.Error(), `"vicuna"`) || !strings.Contains(err.Error(), "chatml, llama2, llama3, plain") {
		t.Errorf("ChatTemplateByName(vicuna) error = %v, want one naming it and the known names", err)
	}
	if (ChatTemplate{}).Name() != "" || (ChatTemplate{}).Stop() != nil {
		t.Errorf("zero ChatTemplate has a name or stop strings")
	}
}

// Template sources for detection, cut down from the models' own
// chat_template strings as tokenizer_config.json holds them once JSON has
// decoded them (so "\n" inside a Jinja literal is a backslash and an n).
const (
	qwen2Source = `{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}` +
		`{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}` +
		`{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}` +
		`{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`
	// SmolLM2 writes real newlines inside its literals.
	smolLM2Source = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
		"{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}" +
		"{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
	// Qwen2.5 first opens a system turn in its tools branch and writes a
	// conversation's own system message before it writes the default.
	qwen25Source = `{%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}` +
		`{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}` +
		`{%- else %}{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}` +
		`{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}` +
		`{%- endif %}{%- endif %}`
	openHermesSource = `{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}`
	escapedSource    = `{{ '<|im_start|>system\nYou\'re \"kind\".\n\\o/<|im_end|>\n' }}`
	llama3Source     = `{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + ` +
		`'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}`
	llama31Source = `{{- bos_token }}{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}{{- "Cutting Knowledge Date: December 2023\n" }}` +
		`{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}`
	llama2Source = `{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}` +
		`{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}`
	mistralSource = `{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}` +
		`{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}`
	phi4Source   = `{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endfor %}`
	qwen3Source  = `{{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}`
	gemmaSource  = `{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}`
	zephyrSource = `{{ '<|user|>\n' + message['content'] + eos_token }}`
)

func TestChatDetect(t *testing.T) {
	tests := []struct {
		name       string
		source     string
		wantName   string
		wantSystem string
		wantErr    string // set when detection must fail
	}{
		{"qwen2", qwen2Source, "chatml", Qwen2DefaultSystem, ""},
		{"smollm2", smolLM2Source, "chatml", SmolLM2DefaultSystem, ""},
		{"qwen2.5", qwen25Source, "chatml", Qwen25DefaultSystem, ""},
		{"openhermes", openHermesSource, "chatml", "", ""},
		{"escaped default", escapedSource, "chatml", "You're \"kind\".\n\\o/", ""},
		{"llama3", llama3Source, "llama3", "", ""},
		{"llama2", llama2Source, "llama2", "", ""},
		{"name chatml", "chatml", "chatml", "", ""},
		{"name plain", " plain\n", "plain", "", ""},
		{"llama3.1", llama31Source, "", "", `"Cutting Knowledge Date"`},
		{"mistral", mistralSource, "", "", "Mistral"},
		{"phi4", phi4Source, "", "", `"<|im_sep|>"`},
		{"qwen3", qwen3Source, "", "", `"<think>"`},
		{"gemma", gemmaSource, "", "", `looked for "<|im_start|>" (chatml)`},
		{"zephyr", zephyrSource, "", "", `"[INST]" with "<<SYS>>" (llama2)`},
		{"empty", " \n", "", "", "empty chat template"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := DetectChatTemplate(tc.source)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("detected %q, want an error containing %q", tmpl.Name(), tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.Name() != tc.wantName || tmpl.DefaultSystem() != tc.wantSystem {
				t.Errorf("detected %q with default system %q, want %q with %q",
					tmpl.Name(), tmpl.DefaultSystem(), tc.wantName, tc.wantSystem)
			}
		})
	}
}

// TestChatDetectedQwen2Renders checks the end-to-end path: a template detected
// from Qwen2's source renders what Qwen2's template does for a
// conversation without a system message.
func TestChatDetectedQwen2Renders(t *testing.T) {
	tmpl, err := DetectChatTemplate(qwen2Source)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(singleUser, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Errorf("Render =\n%q\nwant\n%q", got, want)
	}
}
