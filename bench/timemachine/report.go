package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// machineHeader describes where the numbers come from.
func machineHeader(o options) string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			var kb int64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	kernel := runtime.GOOS
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel += " " + strings.TrimSpace(string(b))
	}
	gitVersion := "git ?"
	if out, err := exec.Command("git", "--version").Output(); err == nil {
		gitVersion = strings.TrimSpace(string(out))
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	commit := ""
	if o.commit != "" {
		commit = "; commit " + o.commit
	}
	return fmt.Sprintf("Machine: %d CPUs (nproc), %s, %s RAM; %s; %s in %s; %s; %s; load average before the run %s%s; %s",
		runtime.NumCPU(), cpu, mem, kernel, fsType(o.tmp), o.tmp, runtime.Version(), gitVersion, load, commit,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

// fsType names the filesystem of dir: it changes every number here.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown filesystem"
	}
	switch uint32(st.Type) {
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs"
	case 0x9123683E:
		return "btrfs"
	case 0x58465342:
		return "xfs"
	case 0x794C7630:
		return "overlayfs"
	case 0x2FC12FC1:
		return "zfs"
	}
	return fmt.Sprintf("filesystem 0x%x", uint32(st.Type))
}

func (res *result) table(o options) string {
	var b strings.Builder
	ws := res.ws
	fmt.Fprintf(&b, "### %s\n\n", res.title)
	fmt.Fprintf(&b, "%s files in %s directories, %s; sessiond captured %s files",
		commas(int64(ws.nFiles)), commas(int64(ws.nDirs)), fmtBytes(ws.bytes), commas(int64(res.engFiles)))
	if res.engSkipped > 0 {
		fmt.Fprintf(&b, " (and %d skipped as too big)", res.engSkipped)
	}
	fmt.Fprintf(&b, ", git indexed %s.\n\n", commas(int64(res.gitFiles)))
	b.WriteString("| measurement | sessiond | git method | ratio | target | ok? |\n")
	b.WriteString("|---|---|---|--:|---|---|\n")
	row := func(what, eng, git, ratio, target, ok string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", what, eng, git, ratio, target, ok)
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}

	row("first full index", fmtDur(res.firstEng), fmtDur(res.firstGit), fmtRatio(res.firstGit, res.firstEng),
		"no slower than git", yes(res.firstEng <= res.firstGit))

	one, oneGit := median(res.oneEng), median(res.oneGit)
	row(fmt.Sprintf("capture after one file changed, with the watcher's dirty path (median of %d / %d)", len(res.oneEng), len(res.oneGit)),
		fmtDur(one), fmtDur(oneGit), fmtRatio(oneGit, one),
		fmt.Sprintf("≤ %s and ≥ %.0f× faster than git", fmtDur(targetCapture), targetCaptureRatio),
		yes(one <= targetCapture && float64(oneGit) >= targetCaptureRatio*float64(one)))

	scan := median(res.scanEng)
	row(fmt.Sprintf("capture after one file changed, full stat scan, no watcher (median of %d / %d)", len(res.scanEng), len(res.oneGit)),
		fmtDur(scan), fmtDur(oneGit), fmtRatio(oneGit, scan), "— (information)", "")

	turnE, turnG := median(res.turnEng), median(res.turnGit)
	row(fmt.Sprintf("capture after a turn that changed 10 files (median of %d)", len(res.turnEng)),
		fmtDur(turnE), fmtDur(turnG), fmtRatio(turnG, turnE), "— (information)", "")

	rev, revGit := median(res.revertEng), median(res.revertGit)
	row(fmt.Sprintf("revert of a turn that changed 10 files (median of %d)", len(res.revertEng)),
		fmtDur(rev), fmtDur(revGit), fmtRatio(revGit, rev),
		fmt.Sprintf("≤ %s", fmtDur(targetRevert)), yes(rev <= targetRevert))

	w := float64(res.written)
	grow, loose := res.engGrowth.apparent, res.gitLooseGrow.apparent
	row(fmt.Sprintf("store growth after %d turns × 10 files (%s written)", len(res.turnEng), fmtBytes(res.written)),
		fmt.Sprintf("%s (%.2f× written)", fmtBytes(grow), float64(grow)/w),
		fmt.Sprintf("%s loose (%.2f× written)", fmtBytes(loose), float64(loose)/w),
		fmtRatioF(float64(loose)/float64(grow)),
		fmt.Sprintf("≤ %.1f× written", targetStoreGrowth), yes(float64(grow) <= targetStoreGrowth*w))
	switch o.gc {
	case "pack":
		row("↳ the turns' git objects packed (`git pack-objects` of them, as a repack does)", "",
			fmt.Sprintf("%s (%.2f× written)", fmtBytes(res.gitPacked), float64(res.gitPacked)/w),
			fmtRatioF(float64(res.gitPacked)/float64(grow)), "— (information)", "")
	case "full":
		row("↳ the turns' git objects after `git gc --prune=now`", "",
			fmt.Sprintf("%s (%.2f× written)", fmtBytes(res.gitPacked), float64(res.gitPacked)/w),
			fmtRatioF(float64(res.gitPacked)/float64(grow)), "— (information)", "")
	}

	b.WriteString("\n")
	fmt.Fprintf(&b, "- Ratio: git method ÷ sessiond (above 1: sessiond is faster or smaller).\n")
	fmt.Fprintf(&b, "- CPU time (user+sys) of the first index: sessiond %s (all its threads, Badger's included), git %s (add and write-tree): %s.\n",
		fmtDur(res.firstEngCPU), fmtDur(res.firstGitCPU), fmtRatio(res.firstGitCPU, res.firstEngCPU))
	fmt.Fprintf(&b, "- Spread (min–max): capture after one change %s / git %s; full scan %s; turn capture %s / git %s; revert %s / git %s.\n",
		spread(res.oneEng), spread(res.oneGit), spread(res.scanEng), spread(res.turnEng), spread(res.turnGit), spread(res.revertEng), spread(res.revertGit))
	fmt.Fprintf(&b, "- Store on disk (allocated blocks): sessiond data dir %s before the turns, +%s after; git objects +%s for %s new loose objects",
		fmtBytes(res.engBefore.allocated), fmtBytes(res.engGrowth.allocated), fmtBytes(res.gitLooseGrow.allocated), commas(int64(res.gitLooseObjects)))
	b.WriteString(".\n")
	fmt.Fprintf(&b, "- Tree ready in %s (generation or copy); measurements took %s.\n", fmtDur(res.prepare), fmtDur(res.total))
	return b.String()
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "—"
	}
	return fmtDur(slices.Min(ds)) + "–" + fmtDur(slices.Max(ds))
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func fmtRatio(git, eng time.Duration) string {
	if eng <= 0 {
		return "—"
	}
	return fmtRatioF(float64(git) / float64(eng))
}

func fmtRatioF(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f×", r)
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

func fmtBytes(n int64) string {
	f := float64(n)
	switch a := max(f, -f); {
	case a >= 1<<30:
		return fmt.Sprintf("%.2f GiB", f/(1<<30))
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", f/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.0f KiB", f/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
