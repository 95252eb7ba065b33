// Package torchpy runs the repository's PyTorch reference scripts
// (scripts/*.py) from Go tests, with Debian's python3 and its python3-torch
// (PyTorch 1.13 CPU).
//
// A test calls Need first, which skips the test in -short mode (starting
// python3 with torch takes seconds) and, through testenv.Missing, skips it
// (fails it under CI=true) when the interpreter cannot import the modules the
// test needs. Exchange then runs a script, exchanging JSON over stdin and
// stdout; Run does both for a script of scripts/ that needs torch alone.
// Script names a script's path.
package torchpy
