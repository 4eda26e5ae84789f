package quic

// VanishForTest closes the transport's socket without telling its peers, as a
// killed process or a cut cable would: they hear nothing more from it.
func (t *Transport) VanishForTest() { t.udp.Close() }
