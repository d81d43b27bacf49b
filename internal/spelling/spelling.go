// Package spelling finds the key a user probably meant, for "did you mean"
// hints in configuration errors: a misspelt key is the commonest mistake in
// hand-written YAML.
package spelling

// Closest returns the candidate nearest to s by edit distance, if it is
// nearer than maxDist, else "". Ties go to the earlier candidate.
func Closest(s string, candidates []string, maxDist int) string {
	best, bestDist := "", maxDist
	for _, c := range candidates {
		if d := distance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	if len(a) > 64 {
		return len(a) // a key that long is no typo; spare the quadratic work
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
