// Package privfs keeps files of recordings private to the server's user:
// what older versions or other tools left readable by others is tightened
// when a part opens its directory (the spool, the local store).
package privfs

import (
	"fmt"
	"io/fs"
	"os"
)

// Restrict takes every permission of group and others away from an
// existing file or directory met in a walk (symlinks are left alone: chmod
// would follow them).
func Restrict(p string, d fs.DirEntry) error {
	if d.Type()&fs.ModeSymlink != 0 {
		return nil
	}
	info, err := d.Info()
	if err != nil {
		return nil // removed meanwhile
	}
	perm := info.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(p, perm&^0o077); err != nil {
		return fmt.Errorf("make private: %w", err)
	}
	return nil
}
