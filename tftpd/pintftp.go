package tftpd

import (
	"net"
	"reflect"
)

// What this file reads from pin/tftp v3.1.0's unexported state, and why.
//
// When a handler returns an error, pin/tftp sends it as an ERROR packet with code 1 ("file
// not found") whatever the error is: sender.abort and receiver.abort call packERROR with a
// literal 1, and no error type, option or hook changes that. Its public API offers no way
// around it either:
//   - calling ReadFrom with a reader that fails still ends in abort (code 1), and for a
//     request with a blksize option ReadFrom first sends an OACK and waits for its ACK;
//   - a handler that returns nil leaves the transfer's socket open until the garbage
//     collector finds it;
//   - handing Serve a wrapped net.PacketConn, to read requests first, makes pin/tftp drop the
//     request's destination address and cap every transfer at 512-byte blocks.
//
// So the handler takes the transfer's own UDP socket (sender.conn / receiver.conn, a
// *connConnection holding a *net.UDPConn), sends the ERROR packet with the right code on it,
// from the port the client expects a reply from, and closes it. pin/tftp's abort then fails
// to send its code-1 packet on the closed socket and sends nothing: the client gets exactly
// one ERROR packet. The same socket lets Serve close abandoned transfers at the end of its
// grace period. Nothing is written into pin/tftp's structures.
//
// The transfer mode is read the same way: pin/tftp does not pass it to handlers, and serves
// any mode but "netascii" as octet.
//
// Every step checks the type it finds. If pin/tftp changes these fields, transferConn returns
// nil and transferMode "": the server falls back to pin/tftp's own code-1 ERROR packets and
// serves every mode, and TestErrorCodes fails, which is the signal to revisit this file.

// transferConn returns the UDP socket pin/tftp opened for the transfer given to a handler
// (the io.ReaderFrom or io.WriterTo), or nil. Call it from the handler, before ReadFrom or
// WriteTo: pin/tftp clears the field when the transfer ends.
func transferConn(transfer any) *net.UDPConn {
	st, ok := structOf(reflect.ValueOf(transfer))
	if !ok {
		return nil
	}
	c := st.FieldByName("conn")
	if c.Kind() != reflect.Interface || c.IsNil() {
		return nil
	}
	cc, ok := structOf(c.Elem())
	if !ok {
		return nil
	}
	u := cc.FieldByName("conn")
	if !u.IsValid() || u.Type() != reflect.TypeFor[*net.UDPConn]() || u.IsNil() {
		return nil
	}
	// The field is unexported, so reflect will not hand out the value; its address is that of
	// an ordinary *net.UDPConn, which pin/tftp only ever uses through its methods.
	return (*net.UDPConn)(u.UnsafePointer())
}

// transferMode returns the mode of the request given to a handler, as sent, or "" if it
// cannot be read.
func transferMode(transfer any) string {
	st, ok := structOf(reflect.ValueOf(transfer))
	if !ok {
		return ""
	}
	if m := st.FieldByName("mode"); m.Kind() == reflect.String {
		return m.String()
	}
	return ""
}

// structOf returns the struct a non-nil pointer points to.
func structOf(v reflect.Value) (reflect.Value, bool) {
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return v.Elem(), true
}
