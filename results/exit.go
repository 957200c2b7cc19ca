package results

import (
	"fmt"

	"github.com/faultline/faultline/checker"
)

// ExitCode is what faultline's commands exit with: the one vocabulary of docs/design.md,
// used by test, check, campaign and their Go API alike.
type ExitCode int

// The exit codes.
const (
	ExitValid   ExitCode = 0 // the history is valid
	ExitInvalid ExitCode = 1 // a safety violation was found (or a campaign's expectation failed)
	ExitUnknown ExitCode = 2 // the checker could not tell: too little evidence, out of time
	ExitError   ExitCode = 3 // a harness or infrastructure error, or interrupted
	ExitUsage   ExitCode = 4 // bad usage or spec: nothing was started
)

// ExitFor is the exit code of a verdict alone.
func ExitFor(v checker.Verdict) ExitCode {
	switch v {
	case checker.Valid:
		return ExitValid
	case checker.Invalid:
		return ExitInvalid
	}
	return ExitUnknown
}

// String names the code's meaning.
func (c ExitCode) String() string {
	switch c {
	case ExitValid:
		return "valid"
	case ExitInvalid:
		return "invalid"
	case ExitUnknown:
		return "unknown"
	case ExitError:
		return "error"
	case ExitUsage:
		return "usage"
	}
	return fmt.Sprintf("exit %d", int(c))
}

// UsageError is bad usage or a bad spec: found before anything started, it is exit 4.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }
