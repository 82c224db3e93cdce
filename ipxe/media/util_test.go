package media

import (
	"sort"
	"time"
)

func sortStrings(s []string) { sort.Strings(s) }

// sleepPastSecond waits until the wall clock's second changes, so anything stamped from
// the clock would differ.
func sleepPastSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond).Sub(now))
}
