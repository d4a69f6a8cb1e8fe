package gguf

import "fmt"

// Type is the type tag of a GGUF metadata value, as the GGUF specification
// numbers them.
type Type uint32

// The metadata value types.
const (
	TypeUint8   Type = 0
	TypeInt8    Type = 1
	TypeUint16  Type = 2
	TypeInt16   Type = 3
	TypeUint32  Type = 4
	TypeInt32   Type = 5
	TypeFloat32 Type = 6
	TypeBool    Type = 7
	TypeString  Type = 8
	TypeArray   Type = 9
	TypeUint64  Type = 10
	TypeInt64   Type = 11
	TypeFloat64 Type = 12
)

// KV is one metadata entry. Value holds a Go value of the entry's type:
// uint8, int8, uint16, int16, uint32, int32, float32, bool, string, uint64,
// int64 or float64 for scalars, and a slice of one of those ([]string,
// []float32, []int32, ...) for arrays. Writers choose the GGUF type from the
// Go type, so a count that llama.cpp reads as u32 must be a uint32.
type KV struct {
	Key   string
	Value any
}

// Metadata is a file's key-value section, in file order.
type Metadata []KV

// Get returns the value stored under key.
func (m Metadata) Get(key string) (any, bool) {
	for _, kv := range m {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Set replaces the value under key, or appends the entry when absent.
func (m *Metadata) Set(key string, value any) {
	for i := range *m {
		if (*m)[i].Key == key {
			(*m)[i].Value = value
			return
		}
	}
	*m = append(*m, KV{Key: key, Value: value})
}

// lookup returns the value under key converted to T, with an error naming
// the key when it is missing or of another type.
func lookup[T any](m Metadata, key string) (T, error) {
	var zero T
	v, ok := m.Get(key)
	if !ok {
		return zero, fmt.Errorf("gguf: metadata key %q is missing", key)
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("gguf: metadata key %q holds %T, not %T", key, v, zero)
	}
	return t, nil
}

// String returns the string under key; it returns an error naming the key
// when it is missing or not a string.
func (m Metadata) String(key string) (string, error) { return lookup[string](m, key) }

// Strings returns the string array under key; it returns an error naming
// the key when it is missing or not a string array.
func (m Metadata) Strings(key string) ([]string, error) { return lookup[[]string](m, key) }

// Float32s returns the float32 array under key; it returns an error naming
// the key when it is missing or of another type.
func (m Metadata) Float32s(key string) ([]float32, error) { return lookup[[]float32](m, key) }

// Int32s returns the int32 array under key; it returns an error naming the
// key when it is missing or of another type.
func (m Metadata) Int32s(key string) ([]int32, error) { return lookup[[]int32](m, key) }

// Uint32 returns the integer under key, accepting any unsigned or signed
// integer type that fits in a uint32 (writers differ in the width they
// use); it returns an error naming the key when it is missing, not an
// integer, or out of range.
func (m Metadata) Uint32(key string) (uint32, error) {
	v, ok := m.Get(key)
	if !ok {
		return 0, fmt.Errorf("gguf: metadata key %q is missing", key)
	}
	var n int64
	switch x := v.(type) {
	case uint8:
		n = int64(x)
	case int8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case int16:
		n = int64(x)
	case uint32:
		n = int64(x)
	case int32:
		n = int64(x)
	case uint64:
		if x > 1<<32-1 {
			return 0, fmt.Errorf("gguf: metadata key %q = %d overflows uint32", key, x)
		}
		n = int64(x)
	case int64:
		n = x
	default:
		return 0, fmt.Errorf("gguf: metadata key %q holds %T, not an integer", key, v)
	}
	if n < 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("gguf: metadata key %q = %d is out of uint32 range", key, n)
	}
	return uint32(n), nil
}

// Bool returns the bool under key; it returns an error naming the key when
// it is missing or not a bool.
func (m Metadata) Bool(key string) (bool, error) { return lookup[bool](m, key) }
