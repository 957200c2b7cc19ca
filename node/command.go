package node

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// The data of a normal raft entry is a Command in a compact binary form: the version
// byte commandV1, the id as a uvarint, the op as one byte, then the key, the value and
// the from string, each a uvarint length and its bytes. Every node applies every entry,
// so this decode runs three times per write; JSON's cost there (reflection, a decoder
// per entry) was a twentieth of a follower's CPU under load. Entries written as JSON by
// older nodes (their first byte is '{') still decode.
const commandV1 = 0x01

var opCodes = map[Op]byte{OpPut: 1, OpCAS: 2, OpAppend: 3}

var codeOps = [...]Op{1: OpPut, 2: OpCAS, 3: OpAppend}

// MarshalBinary encodes c as entry data. An unknown op is an error.
func (c Command) MarshalBinary() ([]byte, error) {
	code, ok := opCodes[c.Op]
	if !ok {
		return nil, fmt.Errorf("encode command: unknown op %q", c.Op)
	}
	b := make([]byte, 0, 2+binary.MaxVarintLen64+3*binary.MaxVarintLen32+len(c.Key)+len(c.Value)+len(c.From))
	b = append(b, commandV1)
	b = binary.AppendUvarint(b, c.ID)
	b = append(b, code)
	for _, s := range [...]string{c.Key, c.Value, c.From} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

var errBadCommand = errors.New("malformed command")

// UnmarshalBinary decodes entry data written by MarshalBinary, or the JSON of older
// nodes. Trailing bytes, a truncated field or an unknown op are errors.
func (c *Command) UnmarshalBinary(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		*c = Command{}
		return json.Unmarshal(b, c)
	}
	if len(b) == 0 || b[0] != commandV1 {
		return fmt.Errorf("decode command: %w: unknown version", errBadCommand)
	}
	b = b[1:]
	id, k := binary.Uvarint(b)
	if k <= 0 || len(b) < k+1 {
		return fmt.Errorf("decode command: %w: id", errBadCommand)
	}
	code := b[k]
	b = b[k+1:]
	if int(code) >= len(codeOps) || codeOps[code] == "" {
		return fmt.Errorf("decode command: %w: op %d", errBadCommand, code)
	}
	var s [3]string
	for i := range s {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return fmt.Errorf("decode command: %w: field %d", errBadCommand, i)
		}
		s[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	if len(b) != 0 {
		return fmt.Errorf("decode command: %w: %d trailing bytes", errBadCommand, len(b))
	}
	*c = Command{ID: id, Op: codeOps[code], Key: s[0], Value: s[1], From: s[2]}
	return nil
}
