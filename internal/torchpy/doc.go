// Package torchpy runs the repository's PyTorch reference scripts
// (scripts/*.py) from Go tests, with Debian's python3 and its python3-torch
// (PyTorch 1.13 CPU, in Debian as python3-torch and python3-torchvision; run
// with the system python3): the side-by-side reference for numerics.
//
// A test calls Python to get the interpreter, which skips the test in
// -short mode (starting python3 with torch takes seconds) and when the
// interpreter cannot import the modules the test needs; Run does that and
// then exchanges JSON with a script over stdin and stdout. Script names a
// script's path for tests that exchange files instead.
package torchpy
