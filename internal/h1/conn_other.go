//go:build !unix

package h1

// pollSend leaves send to net.Conn's Write and Read here.
func (cn *conn) pollSend() {}

// alive cannot peek at a socket here: an idle connection is taken as
// open, and one the server closed is replayed on a new one.
func (cn *conn) alive() bool { return cn.br.Buffered() == 0 }
