package audit

// AddBool writes a boolean as zap's JSON encoder prints it (true/false),
// type b of the canonical form: revocation records carry one (shared).
func (c *canonEncoder) AddBool(key string, v bool) {
	c.name(key)
	if v {
		c.value('b', []byte("true"))
		return
	}
	c.value('b', []byte("false"))
}
