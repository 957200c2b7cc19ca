//go:build !linux

package checker

type prefaulter struct{}

func newPrefaulter([]op) *prefaulter { return nil }
func (*prefaulter) at(int)           {}
func (*prefaulter) stop()            {}
