package tftpd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// lossyGet reads name with blksize 512 like tftp-hpa's client: it ACKs each expected block,
// ACKs again the block before the expected one when it comes again (and ignores other
// duplicates), and sends its last ACK again after 300 ms of silence. It loses, once each,
// the DATA blocks in dropData and the ACKs in dropACK.
func (c *rawClient) lossyGet(name string, dropData, dropACK map[uint16]bool) ([]byte, error) {
	c.send(c.server, request(opRRQ, name, "octet"))
	var (
		data   []byte
		tid    = c.server
		want   = uint16(1)
		last   []byte // the last ACK sent
		silent int
	)
	ack := func(block uint16) {
		last = ackPacket(block)
		if dropACK[block] {
			delete(dropACK, block)
			return
		}
		c.send(tid, last)
	}
	for {
		p, from, err := c.recv(300 * time.Millisecond)
		if err != nil {
			if silent++; silent > 10 || last == nil {
				return data, fmt.Errorf("stalled at block %d: %w", want, err)
			}
			c.send(tid, last)
			continue
		}
		silent = 0
		tid = from
		switch op := binary.BigEndian.Uint16(p); {
		case op == opERROR:
			return data, fmt.Errorf("error packet: %q", p[4:])
		case op != opDATA:
			return data, fmt.Errorf("unexpected packet % x", p[:4])
		}
		block := binary.BigEndian.Uint16(p[2:])
		if block == want && dropData[block] {
			delete(dropData, block)
			continue
		}
		switch block {
		case want:
			data = append(data, p[4:]...)
			ack(block)
			if len(p)-4 < 512 {
				return data, nil
			}
			want++
		case want - 1:
			c.send(tid, ackPacket(block))
		}
	}
}

// TestLossRecovery loses single packets. Lock-step recovers from any loss. pin/tftp's
// anticipate mode does not recover when a window is partly received: after its timeout it
// sends the whole window again and then waits for the ACK of the window's first block,
// which a client past that block never sends again. This is why Config.Anticipate is off
// by default; if the anticipate cases start to pass, pin/tftp has fixed it.
func TestLossRecovery(t *testing.T) {
	content := testFiles()["undionly.kpxe"].Data // 137 blocks of 512
	tests := map[string]struct {
		anticipate uint
		retries    int // 0: Config's default, 2
		dropData   []uint16
		dropACK    []uint16
		wantOK     bool
	}{
		"lock-step, lost DATA":             {retries: 3, dropData: []uint16{5, 60}, wantOK: true},
		"lock-step, default retries":       {dropData: []uint16{5, 60}, dropACK: []uint16{30, 136}, wantOK: true},
		"lock-step, lost ACK":              {retries: 3, dropACK: []uint16{5, 60}, wantOK: true},
		"lock-step, lost last":             {retries: 3, dropData: []uint16{137}, dropACK: []uint16{136}, wantOK: true},
		"anticipate, lost first of window": {retries: 3, anticipate: 8, dropData: []uint16{9}, wantOK: true},
		"anticipate, lost mid-window DATA": {retries: 3, anticipate: 8, dropData: []uint16{12}, wantOK: false},
		"anticipate, lost mid-window ACK":  {retries: 3, anticipate: 8, dropACK: []uint16{12}, wantOK: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{Anticipate: tc.anticipate, Timeout: 200 * time.Millisecond, Retries: tc.retries})
			set := func(blocks []uint16) map[uint16]bool {
				m := map[uint16]bool{}
				for _, b := range blocks {
					m[b] = true
				}
				return m
			}
			c := newRawClient(t, ts.Addr())
			data, err := c.lossyGet("undionly.kpxe", set(tc.dropData), set(tc.dropACK))
			tr := ts.next(t)
			ok := err == nil && bytes.Equal(data, content) && tr.Err == nil
			if ok != tc.wantOK {
				t.Errorf("transfer ok = %v, want %v (client: %d bytes, %v; server: %v)", ok, tc.wantOK, len(data), err, tr.Err)
			}
		})
	}
}
