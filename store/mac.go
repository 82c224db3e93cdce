package store

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// ParseMAC accepts an Ethernet MAC as aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff (iPXE's
// ${mac:hexhyp}), aabb.ccdd.eeff or aabbccddeeff, in either case, and returns it in the one
// normalised form used as the key everywhere: lower-case, colon-separated.
func ParseMAC(s string) (string, error) {
	if len(s) == 12 {
		b, err := hex.DecodeString(s)
		if err != nil {
			return "", fmt.Errorf("%w: %q", ErrBadMAC, s)
		}
		return net.HardwareAddr(b).String(), nil
	}
	// net.ParseMAC also takes 8- and 20-byte addresses; bootstrapd boots Ethernet NICs only.
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%w: %q (want aa:bb:cc:dd:ee:ff)", ErrBadMAC, s)
	}
	return strings.ToLower(hw.String()), nil
}
