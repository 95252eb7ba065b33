package main

import "github.com/mochi-ssl/mochi/pkg/device/backend"

// openBackend returns the compute backend named by run.device.
var openBackend = backend.Open
