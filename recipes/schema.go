package recipes

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/minnowml/minnow/model"
)

// field is one key a recipe mapping allows and the Go type its value
// decodes into.
type field struct {
	name string
	typ  reflect.Type
}

var (
	recipeType      = reflect.TypeOf(Recipe{})
	modelSpecType   = reflect.TypeOf(ModelSpec{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// fieldsOf returns the keys a mapping decoded into t allows, or ok false
// when t takes any mapping (a map, an interface) or is not a mapping at
// all. The recipe's root also allows every registered method's and
// extension's section,
// and the model section allows config.json's names besides config: and
// checkpoint:.
func fieldsOf(t reflect.Type) (fs []field, ok bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case modelSpecType:
		str := reflect.TypeOf("")
		fs = append(fs, field{"config", str}, field{"checkpoint", str})
		inline, _ := fieldsOf(reflect.TypeOf(model.Config{}))
		return append(fs, inline...), true
	}
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if t == reflect.TypeOf(model.Config{}) {
			tag = f.Tag.Get("json")
		}
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case name == "-":
			continue
		case name == "":
			name = strings.ToLower(f.Name)
		}
		fs = append(fs, field{name, f.Type})
	}
	if t == recipeType {
		for _, m := range Methods() {
			if s := m.Section(); s != "" {
				fs = append(fs, field{s, reflect.TypeOf(m.NewConfig())})
			}
		}
		for _, x := range Extensions() {
			fs = append(fs, field{x.Section(), reflect.TypeOf(x.NewConfig())})
		}
	}
	return fs, true
}

// lookupField returns the type of key under t.
func lookupField(fs []field, key string) (reflect.Type, bool) {
	for _, f := range fs {
		if f.name == key {
			return f.typ, true
		}
	}
	return nil, false
}

// unknownKey is the message for key, unknown at path, with the nearest
// allowed key suggested when one is close, else the allowed keys listed.
func unknownKey(path, key string, fs []field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	msg := fmt.Sprintf("%s: unknown key %q", joinPath(path, key), key)
	if s, ok := nearest(key, names); ok {
		return msg + fmt.Sprintf("; did you mean %q?", s)
	}
	sort.Strings(names)
	return msg + " (allowed: " + strings.Join(names, ", ") + ")"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nearest returns the candidate closest to key by edit distance, when it
// is close enough to be a plausible typo: one edit for names of up to
// three letters, else up to a third of the longer name's letters, and at
// least two. A candidate that key begins (of three letters or more) is
// taken as meant when none is that close.
func nearest(key string, candidates []string) (string, bool) {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(key), strings.ToLower(c))
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if bestD < 0 {
		return "", false
	}
	// A shortened key (vocab for vocab_size) is far by edit distance but
	// plainly meant.
	if len(key) >= 3 {
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), strings.ToLower(key)) {
				return c, true
			}
		}
	}
	limit := 1
	if n := max(len(key), len(best)); n > 3 {
		limit = max(2, n/3)
	}
	return best, bestD <= limit
}

// editDistance is the optimal-string-alignment distance between a and
// b: insertions, deletions, substitutions and swaps of adjacent letters
// (the commonest typo) each count one. It works over bytes since recipe
// keys are ASCII.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// checkKeys walks n against t and returns an error for the first unknown
// key, naming its line and path and suggesting the nearest allowed key.
// Other type mismatches than a fraction for an integer are left to the
// decoder.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && t != modelSpecType && reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // a type that decodes itself (lora.Targets) knows its forms
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		fs, ok := fieldsOf(t)
		if !ok {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := lookupField(fs, k.Value)
			if !ok {
				return fmt.Errorf("%s%s", lineOf(k), unknownKey(path, k.Value, fs))
			}
			if err := checkKeys(n.Content[i+1], ft, joinPath(path, k.Value)); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		// Checked here rather than left to the decoder: yaml.v3 would
		// truncate 1.5 into an integer field silently, and the model
		// section's fields go through encoding/json, whose messages name
		// Go types.
		if want := scalarMismatch(n.Tag, n.Value, t); want != "" {
			return fmt.Errorf("%s%s: %q has the wrong type (allowed: %s)", lineOf(n), orRoot(path), n.Value, want)
		}
	case yaml.SequenceNode:
		if t == nil || (t.Kind() != reflect.Slice && t.Kind() != reflect.Array) {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

// scalarMismatch returns what a field of type t allows when a scalar
// tagged tag cannot be decoded into it, or "" when it can (or t is not
// known). An empty value (!!null) leaves any field at its zero value.
func scalarMismatch(tag, value string, t reflect.Type) string {
	if t == nil || tag == "!!null" || t == modelSpecType {
		return ""
	}
	switch k := t.Kind(); {
	case isInteger(k):
		if tag != "!!int" {
			return "an integer"
		}
	case k == reflect.Float32 || k == reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			return "a number"
		}
	case k == reflect.Bool:
		// yaml.v3 still reads YAML 1.1's yes/no/on/off into a bool.
		switch strings.ToLower(value) {
		case "yes", "no", "on", "off", "y", "n":
			return ""
		}
		if tag != "!!bool" {
			return "true or false"
		}
	case k == reflect.Slice || k == reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	case k == reflect.Struct || k == reflect.Map:
		return "a mapping"
	}
	return ""
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// setLine is the first line number given to --set values, so that errors
// about them can say so instead of naming a line no file has.
const setLine = 1 << 24

// lineOf is the "line N: " prefix of an error about n.
func lineOf(n *yaml.Node) string {
	if n.Line >= setLine {
		return "--set "
	}
	return "line " + strconv.Itoa(n.Line) + ": "
}

// Override is one command-line --set: a dotted key path such as
// train.schedule.peak_lr (with [i] for a list element, as in data.text[0])
// and a value written as YAML.
type Override struct {
	Path, Value string
}

// ParseOverride splits "key.path=value". It returns an error when there
// is no "=" or the path is empty.
func ParseOverride(s string) (Override, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return Override{}, fmt.Errorf("--set %q: want key.path=value, such as train.steps=100", s)
	}
	return Override{Path: k, Value: v}, nil
}

// pathStep is one segment of an override path: a key, and the list index
// that follows it (-1 for none).
type pathStep struct {
	key   string
	index int
}

func splitPath(p string) ([]pathStep, error) {
	var steps []pathStep
	for _, seg := range strings.Split(p, ".") {
		st := pathStep{key: seg, index: -1}
		if open := strings.IndexByte(seg, '['); open >= 0 && strings.HasSuffix(seg, "]") {
			i, err := strconv.Atoi(seg[open+1 : len(seg)-1])
			if err != nil || i < 0 {
				return nil, fmt.Errorf("bad list index in %q", seg)
			}
			st.key, st.index = seg[:open], i
		}
		if st.key == "" {
			return nil, fmt.Errorf("empty key in %q", p)
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// apply sets o's value in the document root, creating the mappings on
// the way. line is the line number the new value carries. It returns an
// error naming the path when a key is unknown (with the nearest allowed
// key), an index is out of range, or the value is not YAML.
func (o Override) apply(root *yaml.Node, line int) error {
	steps, err := splitPath(o.Path)
	if err != nil {
		return fmt.Errorf("--set %s: %w", o.Path, err)
	}
	var val yaml.Node
	if err := yaml.Unmarshal([]byte(o.Value), &val); err != nil {
		return fmt.Errorf("--set %s: value %q is not YAML: %w", o.Path, o.Value, err)
	}
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: ""}
	if len(val.Content) == 1 {
		v = val.Content[0]
	}
	setLines(v, line)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 0 {
		root.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	cur := root
	if cur.Kind == yaml.DocumentNode {
		cur = cur.Content[0]
	}
	t := recipeType
	path := ""
	for i, st := range steps {
		fs, ok := fieldsOf(t)
		if cur.Kind != yaml.MappingNode {
			return fmt.Errorf("--set %s: %s is not a mapping", o.Path, orRoot(path))
		}
		ft, known := lookupField(fs, st.key)
		if ok && !known {
			return fmt.Errorf("--set %s", unknownKey(path, st.key, fs))
		}
		path = joinPath(path, st.key)
		last := i == len(steps)-1
		var child *yaml.Node
		for j := 0; j+1 < len(cur.Content); j += 2 {
			if cur.Content[j].Value == st.key {
				child = cur.Content[j+1]
				if last && st.index < 0 {
					cur.Content[j+1] = v
					return nil
				}
			}
		}
		if child == nil {
			if st.index >= 0 {
				return fmt.Errorf("--set %s: %s has no list to index", o.Path, path)
			}
			child = v
			if !last {
				child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: st.key, Line: line}
			cur.Content = append(cur.Content, k, child)
			if last {
				return nil
			}
		}
		if st.index >= 0 {
			if child.Kind != yaml.SequenceNode || st.index > len(child.Content) {
				return fmt.Errorf("--set %s: %s has no element %d", o.Path, path, st.index)
			}
			if ft != nil && (ft.Kind() == reflect.Slice || ft.Kind() == reflect.Array) {
				ft = ft.Elem()
			}
			path += "[" + strconv.Itoa(st.index) + "]"
			if last {
				if st.index == len(child.Content) {
					child.Content = append(child.Content, v)
				} else {
					child.Content[st.index] = v
				}
				return nil
			}
			child = child.Content[st.index]
		}
		cur, t = child, ft
		if t == nil {
			t = reflect.TypeOf(map[string]any{})
		}
	}
	return nil
}

func orRoot(path string) string {
	if path == "" {
		return "the recipe"
	}
	return path
}

// setLines gives n and its children line number line.
func setLines(n *yaml.Node, line int) {
	n.Line = line
	for _, c := range n.Content {
		setLines(c, line)
	}
}
