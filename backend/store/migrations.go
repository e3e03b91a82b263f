package store

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migration is one migrations/<engine>/NNNN_name.sql file.
type migration struct {
	version int
	file    string // path in the FS
}

// listMigrations returns migrations/<engine>/NNNN_name.sql of fsys by
// number (10_x.sql after 9_y.sql); a name without a positive number, or two
// files with one number, is an error. Both engines' migrators use it.
func listMigrations(fsys fs.FS, engine string) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/"+engine+"/*.sql")
	if err != nil {
		return nil, fmt.Errorf("store: list %s migrations: %w", engine, err)
	}
	seen := map[int]string{}
	list := make([]migration, 0, len(names))
	for _, name := range names {
		base := path.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("store: migration %s: name must start with a positive number (NNNN_name.sql)", base)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("store: migrations %s and %s have the same version %d", other, base, version)
		}
		seen[version] = base
		list = append(list, migration{version, name})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].version < list[j].version })
	return list, nil
}

// applyAll lists migrations/<engine> of fsys and hands each, in order, to
// apply (which skips one already recorded).
func applyAll(fsys fs.FS, engine string, apply func(version int, name, body string) error) error {
	list, err := listMigrations(fsys, engine)
	if err != nil {
		return err
	}
	for _, m := range list {
		base := path.Base(m.file)
		body, err := fs.ReadFile(fsys, m.file)
		if err != nil {
			return fmt.Errorf("store: read migration %s: %w", base, err)
		}
		if err := apply(m.version, base, string(body)); err != nil {
			return err
		}
	}
	return nil
}
