package distill

import (
	"strings"

	"github.com/minnowml/minnow/data"
)

// JudgeArith is the programmatic preference of the arithmetic task:
// an answer that states the right final answer beats one that does not,
// and between two right answers the shorter (fewer bytes, trimmed) wins,
// so that correct and concise beats wrong or rambling. It returns 1 when
// a wins, 0 when b wins and 0.5 for a tie (both wrong, or both right and
// of equal length).
func JudgeArith(p data.Problem, a, b string) float64 {
	ra, rb := p.Correct(a), p.Correct(b)
	switch {
	case ra && !rb:
		return 1
	case rb && !ra:
		return 0
	case !ra:
		return 0.5
	}
	la, lb := len(strings.TrimSpace(a)), len(strings.TrimSpace(b))
	switch {
	case la < lb:
		return 1
	case lb < la:
		return 0
	}
	return 0.5
}

// WinRate returns the mean JudgeArith verdict of answers a against
// answers b to the same problems, and a's accuracy. It returns 0, 0 for
// no problems; the slices must be of equal length.
func WinRate(ps []data.Problem, a, b []string) (win, accuracy float64) {
	if len(ps) == 0 {
		return 0, 0
	}
	for i, p := range ps {
		win += JudgeArith(p, a[i], b[i])
		if p.Correct(a[i]) {
			accuracy++
		}
	}
	n := float64(len(ps))
	return win / n, accuracy / n
}

// RejectedArith returns a dispreferred answer to p, wrong and rambling:
// the worked solution with its last step repeated and a final answer off
// by one. It is the rejected response of the arithmetic preference
// triples, a choice of ours, since the task has no dataset of rejected
// answers.
func RejectedArith(p data.Problem) string {
	lines := strings.Split(p.Solution, "\n")
	if p.Solution == "" {
		lines = nil
	}
	if n := len(lines); n > 0 {
		lines = append(lines, lines[n-1])
	}
	wrong := offByOne(p.Answer)
	lines = append(lines, data.AnswerMarker+" "+wrong)
	return strings.Join(lines, "\n")
}

// offByOne changes the last digit of a numeric answer (9 becomes 8, any
// other digit goes up by one), and appends "1" to anything else, so the
// result always differs from ans.
func offByOne(ans string) string {
	b := []byte(ans)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] >= '0' && b[i] <= '9' {
			if b[i] == '9' {
				b[i] = '8'
			} else {
				b[i]++
			}
			return string(b)
		}
	}
	return ans + "1"
}
