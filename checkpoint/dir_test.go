package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// step returns a small checkpoint of the given step.
func step(s int64) *Checkpoint {
	c := small()
	c.Step = s
	return c
}

func TestDirKeep(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keep  int
		saves []int64
		want  []int64
	}{
		{"keep 1", 1, []int64{10, 20, 30}, []int64{30}},
		{"keep 3", 3, []int64{10, 20, 30, 40, 50, 60}, []int64{40, 50, 60}},
		{"keep all", 0, []int64{10, 20, 30, 40}, []int64{10, 20, 30, 40}},
		{"fewer than keep", 5, []int64{10, 20}, []int64{10, 20}},
		{"same step twice", 2, []int64{10, 20, 20}, []int64{10, 20}},
		{"big steps sort numerically", 2, []int64{999999, 1000000, 1000001}, []int64{1000000, 1000001}},
		// After a resume from step 20 of a run that reached 40, the new
		// step-30 file stays although 40 counts as newer.
		{"older step after newer", 2, []int64{20, 40, 30}, []int64{30, 40}},
		{"keep 1 after newer", 1, []int64{20, 40, 30}, []int64{30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := OpenDir(filepath.Join(t.TempDir(), "run", "ckpt"), tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.saves {
				path, err := d.Save(step(s))
				if err != nil {
					t.Fatal(err)
				}
				if path != d.StepPath(s) {
					t.Fatalf("Save returned %s, want %s", path, d.StepPath(s))
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("the checkpoint just saved is gone: %v", err)
				}
			}
			got, err := d.Steps()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("steps %v, want %v", got, tc.want)
			}
			entries, _ := os.ReadDir(d.Path())
			if len(entries) != len(tc.want) {
				t.Fatalf("directory holds %d files, want %d (temporary files left behind?)", len(entries), len(tc.want))
			}
		})
	}
}

func TestDirNames(t *testing.T) {
	d, err := OpenDir(t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Base(d.StepPath(120)), "step-000120.ckpt"; got != want {
		t.Fatalf("StepPath(120) = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		name string
		step int64
		ok   bool
	}{
		{"step-000120.ckpt", 120, true},
		{"step-1234567.ckpt", 1234567, true},
		{"step-000000.ckpt", 0, true},
		{".step-000120.ckpt.tmp-12345", 0, false},
		{"step-120.ckpt", 0, false},
		{"step-0000120.ckpt", 0, false},
		{"step-00012a.ckpt", 0, false},
		{"step--00012.ckpt", 0, false},
		{"step-000120.ckpt.bak", 0, false},
		{"notes.txt", 0, false},
		{"step-99999999999999999999.ckpt", 0, false},
	} {
		s, ok := parseStep(tc.name)
		if ok != tc.ok || s != tc.step {
			t.Errorf("parseStep(%q) = %d, %v; want %d, %v", tc.name, s, ok, tc.step, tc.ok)
		}
	}
}

func TestDirLatest(t *testing.T) {
	type setup func(t *testing.T, d *Dir)
	save := func(steps ...int64) setup {
		return func(t *testing.T, d *Dir) {
			for _, s := range steps {
				if _, err := d.Save(step(s)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	damage := func(s int64) setup {
		return func(t *testing.T, d *Dir) {
			b, err := os.ReadFile(d.StepPath(s))
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x40
			if err := os.WriteFile(d.StepPath(s), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(name, data string) setup {
		return func(t *testing.T, d *Dir) {
			if err := os.WriteFile(filepath.Join(d.Path(), name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	rename := func(from, to int64) setup {
		return func(t *testing.T, d *Dir) {
			if err := os.Rename(d.StepPath(from), d.StepPath(to)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		setup   []setup
		step    int64
		ok      bool
		skipped []string // file names the warning must mention
	}{
		{"empty directory", nil, 0, false, nil},
		{"newest", []setup{save(1, 2, 3)}, 3, true, nil},
		{"damaged newest falls back", []setup{save(1, 2, 3), damage(3)}, 2, true, []string{"step-000003.ckpt", "checksum"}},
		{"two damaged", []setup{save(1, 2, 3), damage(3), damage(2)}, 1, true, []string{"step-000003.ckpt", "step-000002.ckpt"}},
		{"all damaged", []setup{save(1, 2), damage(1), damage(2)}, 0, false, []string{"step-000001.ckpt", "step-000002.ckpt"}},
		{"truncated newest", []setup{save(1, 2), write("step-000002.ckpt", "\xb1minnow.checkpoint")}, 1, true, []string{"truncated"}},
		{"foreign newest", []setup{save(5), write("step-000009.ckpt", "GGUF....")}, 5, true, []string{"GGUF"}},
		{"renamed file", []setup{save(1, 2), rename(2, 7)}, 1, true, []string{"holds step 2"}},
		{"temp and other files ignored", []setup{
			save(4),
			write(".step-000009.ckpt.tmp-123", "partial"),
			write("step-9.ckpt", "x"),
			write("notes.txt", "x"),
		}, 4, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := OpenDir(t.TempDir(), 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.setup {
				s(t, d)
			}
			path, s, ok, err := d.Latest()
			if ok != tc.ok || s != tc.step {
				t.Fatalf("Latest = %s, %d, %v, %v; want step %d ok %v", path, s, ok, err, tc.step, tc.ok)
			}
			if ok && path != d.StepPath(s) {
				t.Fatalf("Latest path %s, want %s", path, d.StepPath(s))
			}
			if len(tc.skipped) == 0 {
				if err != nil {
					t.Fatalf("Latest warned %v with nothing to skip", err)
				}
				return
			}
			var se *SkippedError
			if !errors.As(err, &se) {
				t.Fatalf("Latest error %v is not a *SkippedError", err)
			}
			for _, want := range tc.skipped {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("warning %q does not mention %q", err, want)
				}
			}
			if ok {
				if _, err := Load(path); err != nil {
					t.Fatalf("Latest chose %s, which does not load: %v", path, err)
				}
			}
		})
	}
}

func TestOpenDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		keep int
		want string
	}{
		{"negative keep", t.TempDir(), -1, "keep -1"},
		{"path is a file", file, 1, file},
		{"under a file", filepath.Join(file, "sub"), 1, file},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenDir(tc.path, tc.keep)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenDir = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	d, err := OpenDir(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Checkpoint{nil, step(-1)} {
		if _, err := d.Save(c); err == nil {
			t.Errorf("Dir.Save of %v succeeded", c)
		}
	}
	if _, err := d.Save(&Checkpoint{Tensors: []NamedTensor{{Name: ""}}}); err == nil || !strings.Contains(err.Error(), d.Path()) {
		t.Errorf("Dir.Save of an invalid checkpoint: %v, want an error naming the file", err)
	}
	if steps, _ := d.Steps(); len(steps) != 0 {
		t.Errorf("failed saves left checkpoints %v", steps)
	}
}
