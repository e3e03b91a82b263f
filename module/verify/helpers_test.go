package verify

import "context"

var t0ctx = context.Background()
