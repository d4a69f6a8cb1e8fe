package gguf

import (
	"strings"
	"testing"
)

func TestGGMLTypeString(t *testing.T) {
	tests := []struct {
		typ  GGMLType
		want string
	}{
		{F32, "F32"}, {F16, "F16"}, {Q4_0, "Q4_0"}, {Q8_0, "Q8_0"}, {Q4_K, "Q4_K"},
		{Q6_K, "Q6_K"}, {BF16, "BF16"}, {I32, "I32"}, {F64, "F64"},
		{4, "GGMLType(4)"}, {31, "GGMLType(31)"}, {1000, "GGMLType(1000)"},
	}
	for _, tt := range tests {
		if got := tt.typ.String(); got != tt.want {
			t.Errorf("GGMLType(%d).String() = %q, want %q", uint32(tt.typ), got, tt.want)
		}
	}
}

// TestGGMLTypeNumbering pins the numbers llama.cpp's enum ggml_type uses;
// a renumbering would silently corrupt every file written.
func TestGGMLTypeNumbering(t *testing.T) {
	want := map[GGMLType]uint32{
		F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q8_1: 9,
		Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13, Q6_K: 14, Q8_K: 15,
		I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, BF16: 30,
	}
	for typ, n := range want {
		if uint32(typ) != n {
			t.Errorf("%s = %d, want %d", typ, uint32(typ), n)
		}
	}
}

func TestBlockLayout(t *testing.T) {
	tests := []struct {
		typ          GGMLType
		block, bytes uint64
	}{
		{F32, 1, 4}, {F16, 1, 2}, {BF16, 1, 2}, {F64, 1, 8},
		{I8, 1, 1}, {I16, 1, 2}, {I32, 1, 4}, {I64, 1, 8},
		{Q4_0, 32, 18}, {Q4_1, 32, 20}, {Q5_0, 32, 22}, {Q5_1, 32, 24},
		{Q8_0, 32, 34}, {Q8_1, 32, 36},
		{Q2_K, 256, 84}, {Q3_K, 256, 110}, {Q4_K, 256, 144}, {Q5_K, 256, 176},
		{Q6_K, 256, 210}, {Q8_K, 256, 292},
		{IQ4_NL, 32, 18}, {IQ4_XS, 256, 136}, {MXFP4, 32, 17},
	}
	for _, tt := range tests {
		b, err := tt.typ.BlockSize()
		if err != nil || b != tt.block {
			t.Errorf("%s.BlockSize() = %d, %v; want %d", tt.typ, b, err, tt.block)
		}
		n, err := tt.typ.BlockBytes()
		if err != nil || n != tt.bytes {
			t.Errorf("%s.BlockBytes() = %d, %v; want %d", tt.typ, n, err, tt.bytes)
		}
	}
	if _, err := GGMLType(5).BlockSize(); err == nil {
		t.Error("BlockSize of removed type 5: no error")
	}
	if _, err := GGMLType(99).BlockBytes(); err == nil {
		t.Error("BlockBytes of unknown type 99: no error")
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		name    string
		typ     GGMLType
		dims    []uint64
		want    uint64
		wantErr string
	}{
		{"scalar", F32, nil, 4, ""},
		{"vector", F32, []uint64{7}, 28, ""},
		{"matrix f16", F16, []uint64{3, 5}, 30, ""},
		{"4d", I8, []uint64{2, 3, 4, 5}, 120, ""},
		{"q4_0 rows", Q4_0, []uint64{64, 3}, 2 * 3 * 18, ""},
		{"q4_k", Q4_K, []uint64{512, 2}, 2 * 2 * 144, ""},
		{"empty", F32, []uint64{0, 1 << 62}, 0, ""},
		{"q8_0 not multiple", Q8_0, []uint64{33}, 0, "not a multiple of its block size 32"},
		{"q6_k not multiple", Q6_K, []uint64{128, 2}, 0, "block size 256"},
		{"unknown type", GGMLType(77), []uint64{1}, 0, "unknown tensor type 77"},
		{"five dims", F32, []uint64{1, 1, 1, 1, 1}, 0, "5 dimensions"},
		{"dim over int64", F32, []uint64{1 << 63}, 0, "does not fit in int64"},
		{"elements overflow", F32, []uint64{1 << 32, 1 << 32}, 0, "more elements than fit"},
		{"bytes overflow", F64, []uint64{1 << 61}, 0, "byte size overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.typ.ByteSize(tt.dims)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ByteSize(%v) = %d, %v; want error containing %q", tt.dims, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ByteSize(%v) = %d, %v; want %d", tt.dims, got, err, tt.want)
			}
		})
	}
}
