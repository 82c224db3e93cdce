package main

import (
	"net"
	"os"
)

// notify tells systemd (Type=notify) about the service's state; without NOTIFY_SOCKET it does
// nothing. The protocol is one datagram on a unix socket (sd_notify(3)); an abstract socket
// is named with a leading '@'.
func notify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
