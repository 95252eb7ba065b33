package dist

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
)

// CheckConfig makes sure every rank trains with the same effective config:
// effective is this rank's config as text (values only, no provenance, e.g.
// config.WriteYAML without a Provenance). It is collective. Every rank
// all-gathers the SHA-256 of every rank's text and compares it with rank
// 0's, so all ranks agree on the outcome and fail together; on a mismatch
// rank 0's text is broadcast as well, so that a differing rank names the
// first line that differs. The error names the differing ranks.
func CheckConfig(c Comm, effective []byte) error {
	sum := sha256.Sum256(effective)
	sums := make([]byte, c.Size()*len(sum))
	if err := c.AllGatherBytes(sum[:], sums); err != nil {
		return fmt.Errorf("dist: config check: %w", err)
	}
	var differ []string
	for r := 1; r < c.Size(); r++ {
		if !bytes.Equal(sums[r*len(sum):(r+1)*len(sum)], sums[:len(sum)]) {
			differ = append(differ, fmt.Sprint(r))
		}
	}
	if len(differ) == 0 {
		return nil
	}
	rank0, err := broadcastText(c, effective)
	if err != nil {
		return fmt.Errorf("dist: config check: %w", err)
	}
	const fix = "start every rank with the same config file, MOCHI_ environment variables and flags"
	if bytes.Equal(sum[:], sums[:len(sum)]) {
		return fmt.Errorf("dist: rank %d: the effective config of rank %s differs from rank 0's: %s",
			c.Rank(), strings.Join(differ, ", "), fix)
	}
	line, here, there := firstDifference(effective, rank0)
	return fmt.Errorf("dist: rank %d's effective config differs from rank 0's at line %d (%q here, %q on rank 0; ranks that differ: %s): %s",
		c.Rank(), line, here, there, strings.Join(differ, ", "), fix)
}

// broadcastText sends rank 0's text to every rank.
func broadcastText(c Comm, text []byte) ([]byte, error) {
	n := []int{len(text)}
	if err := Broadcast(c, n, 0); err != nil {
		return nil, err
	}
	buf := make([]byte, n[0])
	if c.Rank() == 0 {
		copy(buf, text)
	}
	if err := c.BroadcastBytes(buf, 0); err != nil {
		return nil, err
	}
	return buf, nil
}

// firstDifference returns the first line (counted from 1) at which a and b
// differ, and that line of each ("" past the end).
func firstDifference(a, b []byte) (int, string, string) {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; ; i++ {
		x, y := lineAt(la, i), lineAt(lb, i)
		if x != y || i >= len(la) || i >= len(lb) {
			return i + 1, x, y
		}
	}
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}
