// Package atomicfile writes a file so that readers see either its previous
// content or the new one, never a partial write.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempPattern matches the temporary files Write makes beside their target
// (path.tmp-NNN); one is left behind only when the process dies mid-write.
const TempPattern = "*.tmp-*"

// Write writes b to path through a temporary file in the same folder renamed
// into place, with mode 0644 (CreateTemp's 0600 would make it less readable
// than a run's other files). On failure the temporary file is removed and
// path keeps its previous content.
func Write(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
