package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sessiond/sessiond/workspace/ignore"
)

// workspace is one tree under test, and the files a turn may edit.
type workspace struct {
	root   string
	nFiles int   // regular files in the tree, ignored or not
	nDirs  int   // directories in the tree, the root excluded
	bytes  int64 // bytes of those files
	// editable lists, per directory ("" for the root), the regular files
	// that neither method ignores and that are not ignore rule files:
	// what the benchmark's turns edit.
	editable map[string][]string
	dirs     []string // keys of editable, sorted, for reproducible picks
}

// --- the generated tree ---------------------------------------------------

// plannedFile is one file of the generated tree.
type plannedFile struct {
	rel  string
	size int
	seed uint64
}

// planTree lays out n files in nested directories: a source tree's shape,
// with 3–32 files per directory, a few subdirectories each, up to nine
// levels deep, and sizes that are mostly 1–8 KiB (10% smaller, 5% of
// 8–64 KiB). It is deterministic for a given seed.
func planTree(n int, seed uint64) (dirs []string, files []plannedFile) {
	r := rand.New(rand.NewPCG(seed, 0x7ee))
	var gen func(rel string, depth, budget int)
	gen = func(rel string, depth, budget int) {
		if budget <= 0 {
			return
		}
		nf := 3 + r.IntN(30)
		if depth == 0 {
			nf = 8
		}
		if depth >= 9 {
			nf = budget
		}
		nf = min(nf, budget)
		used := make(map[string]bool)
		for range nf {
			name := uniqueName(r, used, fileName)
			files = append(files, plannedFile{rel: joinRel(rel, name), size: fileSize(r), seed: r.Uint64()})
		}
		rest := budget - nf
		if rest == 0 {
			return
		}
		var k int
		if depth == 0 {
			k = min(max(rest/5000, 4), 40)
		} else {
			k = min(max(1, rest/40), 2+r.IntN(7))
		}
		k = min(k, rest)
		weights := make([]float64, k)
		var sum float64
		for i := range weights {
			weights[i] = 0.5 + r.Float64()
			sum += weights[i]
		}
		left := rest
		for i := range k {
			part := left
			if i < k-1 {
				part = max(1, int(float64(rest)*weights[i]/sum))
				part = min(part, left-(k-1-i)) // leave at least one per sibling
			}
			left -= part
			name := uniqueName(r, used, dirName)
			sub := joinRel(rel, name)
			dirs = append(dirs, sub)
			gen(sub, depth+1, part)
		}
	}
	gen("", 0, n)
	return dirs, files
}

func uniqueName(r *rand.Rand, used map[string]bool, mk func(*rand.Rand) string) string {
	for {
		name := mk(r)
		if !used[name] {
			used[name] = true
			return name
		}
	}
}

var extensions = []string{".go", ".go", ".go", "_test.go", ".ts", ".ts", ".py", ".md", ".json", ".c", ".h", ".txt", ".yaml", ".rs"}

func fileName(r *rand.Rand) string {
	name := words.pick(r)
	if r.IntN(2) == 0 {
		name += "_" + words.pick(r)
	}
	return name + extensions[r.IntN(len(extensions))]
}

func dirName(r *rand.Rand) string {
	name := words.pick(r)
	if r.IntN(3) == 0 {
		name += fmt.Sprint(r.IntN(10))
	}
	return name
}

// fileSize draws a file size: 85% 1–8 KiB, 10% 100 B–1 KiB, 5% 8–64 KiB
// (log-uniform).
func fileSize(r *rand.Rand) int {
	switch u := r.Float64(); {
	case u < 0.10:
		return 100 + r.IntN(924)
	case u < 0.95:
		return 1024 + r.IntN(7*1024+1)
	default:
		return int(8192 * math.Pow(8, r.Float64()))
	}
}

// generateTree writes the planned tree under root with a few writers.
func generateTree(root string, n int, seed uint64) (*workspace, error) {
	dirs, files := planTree(n, seed)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	var (
		next  atomic.Int64
		total atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range 4 {
		wg.Go(func() {
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				f := files[i]
				r := rand.New(rand.NewPCG(f.seed, uint64(i)))
				buf = appendText(buf[:0], r, f.size, f.rel)
				if err := os.WriteFile(filepath.Join(root, f.rel), buf, 0o644); err != nil {
					errMu.Lock()
					first = cmpErr(first, err)
					errMu.Unlock()
					return
				}
				total.Add(int64(len(buf)))
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	ws := &workspace{root: root, nFiles: len(files), nDirs: len(dirs), bytes: total.Load(), editable: make(map[string][]string)}
	for _, f := range files {
		d, _ := path.Split(f.rel)
		d = strings.TrimSuffix(d, "/")
		ws.editable[d] = append(ws.editable[d], f.rel)
	}
	ws.sortDirs()
	return ws, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// --- the copy of GOROOT/src ----------------------------------------------

// copyTree copies src to root with cp -a (modes and mtimes kept) and lists
// what a turn may edit, asking the project's ignore matcher, which reads
// the same .gitignore files git does.
func copyTree(src, root string) (*workspace, error) {
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return nil, err
	}
	out, err := exec.Command("cp", "-a", src, root).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("cp -a %s %s: %v: %s", src, root, err, out)
	}
	return scanTree(root)
}

func scanTree(root string) (*workspace, error) {
	m, err := ignore.New(root, ignore.Options{})
	if err != nil {
		return nil, err
	}
	ws := &workspace{root: root, editable: make(map[string][]string)}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		if d.IsDir() {
			ws.nDirs++
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		ws.nFiles++
		ws.bytes += fi.Size()
		base := path.Base(rel)
		if base == ignore.GitIgnoreFile || base == ignore.SessiondIgnoreFile || m.Ignored(rel, false) {
			return nil
		}
		dir := path.Dir(rel)
		if dir == "." {
			dir = ""
		}
		ws.editable[dir] = append(ws.editable[dir], rel)
		return nil
	})
	if err != nil {
		return nil, err
	}
	ws.sortDirs()
	return ws, nil
}

func (ws *workspace) sortDirs() {
	ws.dirs = ws.dirs[:0]
	for d := range ws.editable {
		ws.dirs = append(ws.dirs, d)
	}
	slices.Sort(ws.dirs)
}

// pick returns n distinct editable files clustered the way an agent's turn
// is: from `clusters` random directories (more if those run short), not
// any of avoid.
func (ws *workspace) pick(r *rand.Rand, n, clusters int, avoid map[string]bool) []string {
	per := (n + clusters - 1) / clusters
	taken := make(map[string]bool)
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 100_000 {
			panic("timemachine: the tree has too few editable files")
		}
		cands := ws.editable[ws.dirs[r.IntN(len(ws.dirs))]]
		want := min(per, n-len(out))
		for _, i := range r.Perm(len(cands)) {
			if want == 0 {
				break
			}
			f := cands[i]
			if taken[f] || avoid[f] {
				continue
			}
			taken[f] = true
			out = append(out, f)
			want--
		}
	}
	return out
}

// warm reads every file under root once, so that both methods find the
// same things in the page cache (and the dentry and inode caches).
func warm(root string) (int64, error) {
	paths := make(chan string, 256)
	var total atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var first error
	for range 4 {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for p := range paths {
				f, err := os.Open(p)
				if err == nil {
					var n int64
					n, err = io.CopyBuffer(io.Discard, onlyReader{f}, buf)
					total.Add(n)
					f.Close()
				}
				if err != nil {
					errMu.Lock()
					first = cmpErr(first, err)
					errMu.Unlock()
				}
			}
		})
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths <- p
		}
		return nil
	})
	close(paths)
	wg.Wait()
	return total.Load(), errors.Join(err, first)
}

// onlyReader hides WriterTo, so io.CopyBuffer really reads into buf.
type onlyReader struct{ io.Reader }

// --- text ----------------------------------------------------------------

// vocabulary is the words generated text is made of: a few keywords, and
// identifiers drawn with a Zipf law. With each file's own handful of local
// names and some repeated lines, zstd -3 compresses 1–8 KiB files of it
// about 2.7:1, as it does the Go files of that size in GOROOT/src.
type vocabulary struct {
	list  []string
	table []uint16 // precomputed Zipf draws: a uniform index into it is one
}

// keywords is the number of leading entries of the vocabulary that are
// keywords.
const keywords = 24

var words = newVocabulary()

func newVocabulary() *vocabulary {
	r := rand.New(rand.NewPCG(1, 2))
	v := &vocabulary{list: []string{
		"func", "return", "if", "err", "nil", "for", "range", "the", "var", "x", "i", "string",
		"int", "type", "struct", "ctx", "to", "a", "of", "is", "in", "const", "import", "package",
	}}
	syll := []string{"ka", "lo", "ri", "con", "text", "er", "re", "turn", "map", "set", "get", "in",
		"de", "ex", "pre", "load", "node", "tree", "user", "id", "name", "buf", "val", "key", "sta",
		"ble", "io", "pt", "ser", "ver", "han", "dle", "req", "resp", "con", "fig", "cache", "len",
		"row", "col", "tab", "path", "file", "dir", "log", "msg", "item", "list", "new", "old"}
	seen := make(map[string]bool)
	for _, w := range v.list {
		seen[w] = true
	}
	for len(v.list) < 4096 {
		var sb strings.Builder
		for range 1 + r.IntN(3) {
			sb.WriteString(syll[r.IntN(len(syll))])
		}
		w := sb.String()
		if r.IntN(4) == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		if !seen[w] {
			seen[w] = true
			v.list = append(v.list, w)
		}
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.1, 1, uint64(len(v.list)-1))
	v.table = make([]uint16, 1<<16)
	for i := range v.table {
		v.table[i] = uint16(z.Uint64())
	}
	return v
}

func (v *vocabulary) pick(r *rand.Rand) string {
	return v.list[v.table[r.Uint32()&0xffff]]
}

var separators = []string{" ", " ", " ", " ", ".", "(", ") ", ", ", " := ", " = ", " { ", "}", "[", "] ", ": ", " + ", " && ", " // "}

// commonLines are boilerplate lines that recur across files.
var commonLines = func() [][]byte {
	r := rand.New(rand.NewPCG(5, 6))
	out := make([][]byte, 512)
	for i := range out {
		out[i] = appendLine(nil, r, nil)
	}
	return out
}()

// appendLine appends one line of code-like text: mostly the file's local
// names, keywords, and identifiers from the whole vocabulary.
func appendLine(b []byte, r *rand.Rand, local []string) []byte {
	for range r.IntN(4) {
		b = append(b, '\t')
	}
	n := 3 + r.IntN(9)
	for i := range n {
		switch u := r.Float64(); {
		case local != nil && u < 0.6:
			b = append(b, local[r.IntN(len(local))]...)
		case u < 0.85:
			b = append(b, words.list[r.IntN(keywords)]...)
		default:
			b = append(b, words.pick(r)...)
		}
		if i < n-1 {
			b = append(b, separators[r.IntN(len(separators))]...)
		}
	}
	return append(b, '\n')
}

// appendText appends exactly size bytes of code-like text, starting with a
// line that names the file so that no two files are the same.
func appendText(b []byte, r *rand.Rand, size int, name string) []byte {
	start := len(b)
	b = fmt.Appendf(b, "// %s %x\n", name, r.Uint64())
	local := make([]string, 24)
	for i := range local {
		local[i] = words.pick(r)
	}
	var lines []int // where this file's lines start
	for len(b)-start < size {
		lines = append(lines, len(b))
		switch u := r.Float64(); {
		case u < 0.05:
			b = append(b, commonLines[r.IntN(len(commonLines))]...)
		case u < 0.15 && len(lines) > 2:
			i := r.IntN(len(lines) - 2)
			b = append(b, b[lines[i]:lines[i+1]]...)
		default:
			b = appendLine(b, r, local)
		}
	}
	b = b[:start+size]
	if size > 0 {
		b[len(b)-1] = '\n'
	}
	return b
}
