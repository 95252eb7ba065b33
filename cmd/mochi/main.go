// Command mochi pretrains image encoders with MoCo-v2 and MoCHi hard negative
// mixing, and evaluates them. Run `mochi --help` for the commands.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(exitCode(err))
	}
}
