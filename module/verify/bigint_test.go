package verify

import "math/big"

// bigInt is a big.Int that allocates itself, for the raw ECDSA benchmark.
type bigInt struct{ *big.Int }

func (b *bigInt) SetBytes(p []byte) {
	if b.Int == nil {
		b.Int = new(big.Int)
	}
	b.Int.SetBytes(p)
}
