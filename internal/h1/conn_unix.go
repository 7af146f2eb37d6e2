//go:build unix

package h1

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// pollSend makes send write from inside its poll for the answer, on a
// plain TCP connection.
func (cn *conn) pollSend() {
	if tc, ok := cn.nc.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			cn.raw, cn.sendFn = raw, cn.writeThenWait
		}
	}
}

// writeThenWait is send's poll function: its first pass writes the
// request and asks to wait; the next (the socket is readable) ends it.
func (cn *conn) writeThenWait(fd uintptr) bool {
	if cn.sendPass++; cn.sendPass > 1 {
		return true
	}
	for cn.sent < len(cn.wbuf) {
		n, err := syscall.Write(int(fd), cn.wbuf[cn.sent:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			cn.sendErr = err
			return true
		}
		cn.sent += n
	}
	return false
}

// alive reports whether an idle connection is still open: a peek at the
// socket that does not wait finds nothing to read. A plain connection
// with bytes waiting is not usable either (they answer nothing we sent);
// a TLS one may hold a session ticket, which is fine.
func (cn *conn) alive() bool {
	nc := cn.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// The last exchange's deadline may have passed: without clearing it,
	// the poll would fail before the peek.
	if cn.nc.SetReadDeadline(time.Time{}) != nil {
		return false
	}
	var n int
	var rerr error
	var buf [1]byte
	if err := raw.Read(func(fd uintptr) bool {
		// The socket is non-blocking: the peek does not wait.
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
		return true
	}); err != nil {
		return false
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EWOULDBLOCK):
		return cn.br.Buffered() == 0
	case rerr != nil, n == 0:
		return false // reset, or closed by the server
	}
	return cn.tls
}
