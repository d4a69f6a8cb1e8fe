package model

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/minnowml/minnow/tensor"
)

// NamedParam is one parameter tensor with its GGUF name.
type NamedParam struct {
	// Name is the full tensor name as llama.cpp spells it, such as
	// "blk.0.attn_q.weight".
	Name string
	// Tensor is the parameter.
	Tensor *tensor.Tensor
	// Slot is the struct field holding Tensor; assigning through it
	// replaces the parameter, as a checkpoint or weight loader does.
	Slot **tensor.Tensor
}

// Decays reports whether weight decay conventionally applies to the
// parameter: it does to the matrices of linear layers and not to
// embedding tables, norm gains or biases.
func (p NamedParam) Decays() bool {
	base := strings.TrimSuffix(p.Name, ".weight")
	return p.Tensor.Rank() >= 2 && !strings.HasSuffix(base, "_embd")
}

// DecaySplit returns the tensors of ps split as AdamW usually groups them:
// those that take weight decay (matrices) and those that do not (norms,
// biases, embeddings), each in order.
func DecaySplit(ps []NamedParam) (decay, noDecay []*tensor.Tensor) {
	for _, p := range ps {
		if p.Decays() {
			decay = append(decay, p.Tensor)
		} else {
			noDecay = append(noDecay, p.Tensor)
		}
	}
	return decay, noDecay
}

// Tensors returns the tensors of ps in order, as an optimizer takes them.
func Tensors(ps []NamedParam) []*tensor.Tensor {
	ts := make([]*tensor.Tensor, len(ps))
	for i, p := range ps {
		ts[i] = p.Tensor
	}
	return ts
}

var tensorType = reflect.TypeFor[*tensor.Tensor]()

// Params returns the parameters of m, a pointer to a struct, by walking its
// exported fields in declaration order (depth first, slice elements in
// index order) and joining their `gguf` tags with dots: a tensor field's tag
// is its last name part, a nested layer's tag prefixes its fields' names, a
// slice adds the element's index after its tag ("blk" -> "blk.3."), and
// ",inline" adds no prefix. Nil tensors and layers (an absent bias, a tied
// output layer) are skipped; a tag of "-" excludes a field. The order and
// names are therefore fixed by the types. It panics when m is not a pointer
// to a struct or an exported field that holds tensors has no gguf tag, both
// programmer errors.
func Params(m any) []NamedParam {
	v := checkModel("Params", m)
	var out []NamedParam
	walk(v.Elem(), "", func(name string, v reflect.Value) bool {
		if v.Type() != tensorType {
			return false
		}
		if !v.IsNil() {
			out = append(out, NamedParam{Name: name, Tensor: v.Interface().(*tensor.Tensor), Slot: v.Addr().Interface().(**tensor.Tensor)})
		}
		return true
	})
	return out
}

// visitor is called on every tagged value the walk reaches, with its dotted
// name; it returns true when it took the value, which the walk then does
// not descend into.
type visitor func(name string, v reflect.Value) bool

// checkModel panics unless m is a non-nil pointer to a struct whose tensor
// fields all carry gguf tags; what names the caller.
func checkModel(what string, m any) reflect.Value {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("model: %s needs a non-nil pointer to a struct, got %T", what, m))
	}
	if bad := untagged(v.Elem().Type()); len(bad) > 0 {
		panic(fmt.Sprintf("model: fields hold tensors without a gguf tag: %s", strings.Join(bad, ", ")))
	}
	return v
}

func walk(v reflect.Value, prefix string, fn visitor) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("gguf")
		if !f.IsExported() || !ok {
			continue
		}
		name, opt, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		sub := prefix + name + "."
		if opt == "inline" {
			sub = prefix
		}
		visit(fv, prefix+name, sub, fn)
	}
}

// visit offers v, named name, to fn and, unless fn takes it, descends: into
// a pointer's target, a layer's fields under prefix, or a slice's elements.
func visit(v reflect.Value, name, prefix string, fn visitor) {
	if fn(name, v) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			visit(v.Elem(), name, prefix, fn)
		}
	case reflect.Struct:
		walk(v, prefix, fn)
	case reflect.Slice, reflect.Array:
		for j := range v.Len() {
			n := name + "." + strconv.Itoa(j)
			visit(v.Index(j), n, n+".", fn)
		}
	}
}

// untagged lists the exported fields reachable from t that hold tensors
// but carry no gguf tag, as "Type.Field".
func untagged(t reflect.Type) []string {
	var bad []string
	seen := map[reflect.Type]bool{}
	var rec func(t reflect.Type)
	rec = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			if t == tensorType {
				return
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || !holdsTensors(f.Type, map[reflect.Type]bool{}) {
				continue
			}
			tag, ok := f.Tag.Lookup("gguf")
			if !ok {
				bad = append(bad, t.Name()+"."+f.Name)
				continue
			}
			if tag != "-" {
				rec(f.Type)
			}
		}
	}
	rec(t)
	return bad
}

// holdsTensors reports whether a value of type t can hold a tensor through
// exported fields, pointers, slices or arrays.
func holdsTensors(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == tensorType {
		return true
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsTensors(t.Elem(), seen)
	case reflect.Struct:
		if seen[t] {
			return false
		}
		seen[t] = true
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && holdsTensors(f.Type, seen) {
				return true
			}
		}
	}
	return false
}
