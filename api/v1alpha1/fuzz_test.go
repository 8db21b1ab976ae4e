package v1alpha1

import (
	"os"
	"path/filepath"
	"testing"
)

// addCorpus seeds f with every testdata YAML file.
func addCorpus(f *testing.F) {
	f.Helper()
	var n int
	err := filepath.WalkDir("testdata", func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f.Add(data)
		n++
		return nil
	})
	if err != nil || n == 0 {
		f.Fatalf("seeding corpus: %d files, %v", n, err)
	}
	f.Add([]byte(validBase))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("kind: Service\nspec: {port: 0x10, endpoints: [{weight: .inf}]}\n"))
}

// FuzzDecode checks that Decode never panics and that every violation it
// reports carries a position in the file it was given.
func FuzzDecode(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, vs := Decode("f.yaml", data)
		for _, v := range vs {
			if v.Pos.File != "f.yaml" || v.Pos.Line < 1 || v.Message == "" {
				t.Errorf("violation without position or message: %#v", v)
			}
		}
		for _, d := range docs {
			switch d.(type) {
			case *Service, *RouteBudget, *MeshConfig:
			default:
				t.Errorf("Decode() returned %T", d)
			}
		}
	})
}

// FuzzLoadValidate runs the whole pipeline after decoding (defaults and
// validation) on arbitrary input: it must not panic, must return a Config
// exactly when there is no error, and a returned Config must validate
// without errors again.
func FuzzLoadValidate(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, vs := decodeFile("f.yaml", data)
		cfg, vs := check([]string{"f.yaml"}, docs, vs)
		if (cfg == nil) != (len(vs.Errors()) > 0) {
			t.Fatalf("config %v with errors %v", cfg != nil, vs.Errors())
		}
		if cfg == nil {
			return
		}
		if errs := Validate(cfg).Errors(); len(errs) > 0 {
			t.Errorf("Validate() on a loaded config: %v", errs)
		}
	})
}
